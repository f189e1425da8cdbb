"""live: live sessions and chat bans

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "live_sessions",
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("uri", sa.String(length=512), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=False),
        sa.Column("local", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("whep_url", sa.String(length=512), nullable=False),
        sa.Column("has_video", sa.Boolean(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("viewers_peak", sa.Integer(), nullable=False),
        sa.Column("viewers_total", sa.Integer(), nullable=False),
        sa.Column("recording", sa.Boolean(), nullable=False),
        sa.Column("recording_track_id", sa.Integer(), nullable=True),
        sa.Column("end_reason", sa.String(length=64), nullable=False),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["actors.id"],
            name=op.f("fk_live_sessions_actor_id_actors"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["recording_track_id"],
            ["tracks.id"],
            name=op.f("fk_live_sessions_recording_track_id_tracks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_sessions")),
        sa.UniqueConstraint("uri", name=op.f("uq_live_sessions_uri")),
        sa.UniqueConstraint("uuid", name=op.f("uq_live_sessions_uuid")),
    )
    with op.batch_alter_table("live_sessions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_live_sessions_actor_started", ["actor_id", "started_at"], unique=False
        )
        batch_op.create_index(
            "ix_live_sessions_state_started", ["state", "started_at", "id"], unique=False
        )

    op.create_table(
        "live_chat_bans",
        sa.Column("artist_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_live_chat_bans_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["artist_id"],
            ["actors.id"],
            name=op.f("fk_live_chat_bans_artist_id_actors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_chat_bans")),
        sa.UniqueConstraint("artist_id", "account_id", name="uq_live_chat_bans_pair"),
    )


def downgrade() -> None:
    op.drop_table("live_chat_bans")
    with op.batch_alter_table("live_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_live_sessions_state_started")
        batch_op.drop_index("ix_live_sessions_actor_started")
    op.drop_table("live_sessions")
