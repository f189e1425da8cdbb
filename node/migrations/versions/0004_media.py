"""media: imported masters by content hash (media_imports)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "media_imports",
        sa.Column("artist_id", ID, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("track_id", ID, nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.ForeignKeyConstraint(
            ["artist_id"],
            ["actors.id"],
            name=op.f("fk_media_imports_artist_id_actors"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.id"],
            name=op.f("fk_media_imports_track_id_tracks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_imports")),
        sa.UniqueConstraint("artist_id", "sha256", name="uq_media_imports_artist_sha"),
    )
    with op.batch_alter_table("media_imports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_media_imports_track_id"), ["track_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("media_imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_imports_track_id"))
    op.drop_table("media_imports")
