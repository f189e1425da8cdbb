"""fingerprints: the landmark hash index and the indexed tracks (detection/models.py)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detection_hashes",
        sa.Column("hash", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("track_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("frame", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.id"],
            name=op.f("fk_detection_hashes_track_id_tracks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("hash", "track_id", "frame", name=op.f("pk_detection_hashes")),
    )
    op.create_index("ix_detection_hashes_track", "detection_hashes", ["track_id"], unique=False)
    op.create_table(
        "detection_tracks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("track_id", sa.Integer(), nullable=False),
        sa.Column("hashes", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("postings", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.id"],
            name=op.f("fk_detection_tracks_track_id_tracks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_tracks")),
        sa.UniqueConstraint("track_id", name=op.f("uq_detection_tracks_track_id")),
    )


def downgrade() -> None:
    op.drop_table("detection_tracks")
    op.drop_index("ix_detection_hashes_track", table_name="detection_hashes")
    op.drop_table("detection_hashes")
