"""devices: venue detection devices, their batches and items, held-back venue plays

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "detection_devices",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("uri", sa.String(512), nullable=False),
        sa.Column("venue_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_reason", sa.String(300), nullable=False),
        sa.Column("state_changed_at", _TS, nullable=True),
        sa.Column("registered_by", sa.String(64), nullable=False),
        sa.Column("last_seen_at", _TS, nullable=True),
        sa.Column("reputation", sa.Integer(), nullable=False),
        sa.Column("items_total", sa.BigInteger(), nullable=False),
        sa.Column("items_matched", sa.BigInteger(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["venue_id"],
            ["venues.id"],
            name=op.f("fk_detection_devices_venue_id_venues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_devices")),
        sa.UniqueConstraint("uri", name=op.f("uq_detection_devices_uri")),
        sa.UniqueConstraint("uuid", name=op.f("uq_detection_devices_uuid")),
    )
    op.create_index("ix_detection_devices_venue_state", "detection_devices", ["venue_id", "state"])
    op.create_table(
        "detection_batches",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("sent_at", _TS, nullable=True),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["detection_devices.id"],
            name=op.f("fk_detection_batches_device_id_detection_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_batches")),
        sa.UniqueConstraint("device_id", "batch_id", name="uq_detection_batches_device_batch"),
    )
    op.create_table(
        "detection_items",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=False),
        sa.Column("captured_at", _TS, nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
        sa.Column("track_id", sa.Integer(), nullable=True),
        sa.Column("play_id", sa.Integer(), nullable=True),
        sa.Column("offset_ms", sa.Integer(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["detection_devices.id"],
            name=op.f("fk_detection_items_device_id_detection_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["play_id"],
            ["plays.id"],
            name=op.f("fk_detection_items_play_id_plays"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["track_id"],
            ["tracks.id"],
            name=op.f("fk_detection_items_track_id_tracks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_items")),
        sa.UniqueConstraint("device_id", "seq", name="uq_detection_items_device_seq"),
    )
    op.create_index(
        "ix_detection_items_device_captured", "detection_items", ["device_id", "captured_at"]
    )
    op.create_table(
        "detection_holds",
        sa.Column("id", _BIGID, autoincrement=True, nullable=False),
        sa.Column("play_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("released_at", _TS, nullable=True),
        sa.Column("released_by", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["detection_devices.id"],
            name=op.f("fk_detection_holds_device_id_detection_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["play_id"],
            ["plays.id"],
            name=op.f("fk_detection_holds_play_id_plays"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detection_holds")),
        sa.UniqueConstraint("play_id", "rule", name="uq_detection_holds_play_rule"),
    )
    op.create_index(
        "ix_detection_holds_device_created", "detection_holds", ["device_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("detection_holds")
    op.drop_table("detection_items")
    op.drop_table("detection_batches")
    op.drop_table("detection_devices")
