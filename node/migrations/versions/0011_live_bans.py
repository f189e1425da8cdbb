"""live: chat bans and mutes of fans on other nodes

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "live_chat_remote_bans",
        sa.Column("artist_id", sa.Integer(), nullable=False),
        sa.Column("acct", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(
            ["artist_id"],
            ["actors.id"],
            name=op.f("fk_live_chat_remote_bans_artist_id_actors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_chat_remote_bans")),
        sa.UniqueConstraint("artist_id", "acct", name="uq_live_chat_remote_bans_pair"),
    )


def downgrade() -> None:
    op.drop_table("live_chat_remote_bans")
