"""Tables of venue devices: the devices, the batches and items they sent, and
the venue plays held back by the fraud rules (DESIGN.md 8).

A device's identity is its Ed25519 public key; its private key lives only in
the credential file handed to the venue. Items are kept one row per window
(or declared track) so a batch sent again, in whole or in part, is answered
from what was stored and changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from node.models.base import Base, IdMixin, TimestampMixin, UTCDateTime, new_uuid, utcnow

DEVICE_STATES = ("active", "revoked", "quarantined")
ITEM_STATUSES = ("matched", "unmatched", "rejected")


class Device(IdMixin, TimestampMixin, Base):
    """A listening device in a venue, known by its public key."""

    __tablename__ = "detection_devices"
    __table_args__ = (Index("ix_detection_devices_venue_state", "venue_id", "state"),)

    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid, nullable=False)
    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    venue_id: Mapped[int] = mapped_column(
        ForeignKey("venues.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    public_key_pem: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    state_reason: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    state_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    registered_by: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # 0..100; starts trusting, loses points for each held-back play.
    reputation: Mapped[int] = mapped_column(Integer, nullable=False, default=100)
    items_total: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    items_matched: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    # Daily match counts, newest last: [{"day": "YYYY-MM-DD", "items": n, "matched": m}].
    history: Mapped[list] = mapped_column(JSON, nullable=False, default=list)


class DetectionBatch(IdMixin, Base):
    """One batch as first received; the same `batch_id` again adds nothing."""

    __tablename__ = "detection_batches"
    __table_args__ = (
        UniqueConstraint("device_id", "batch_id", name="uq_detection_batches_device_batch"),
    )

    device_id: Mapped[int] = mapped_column(
        ForeignKey("detection_devices.id", ondelete="CASCADE"), nullable=False
    )
    batch_id: Mapped[str] = mapped_column(String(64), nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    items: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    matched: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class DetectionItem(IdMixin, Base):
    """One captured window or declared track, by the device's sequence number."""

    __tablename__ = "detection_items"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", name="uq_detection_items_device_seq"),
        Index("ix_detection_items_device_captured", "device_id", "captured_at"),
    )

    device_id: Mapped[int] = mapped_column(
        ForeignKey("detection_devices.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    batch_id: Mapped[str] = mapped_column(String(64), nullable=False)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # fingerprint | declared
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str | None] = mapped_column(String(200))
    track_id: Mapped[int | None] = mapped_column(ForeignKey("tracks.id", ondelete="SET NULL"))
    play_id: Mapped[int | None] = mapped_column(ForeignKey("plays.id", ondelete="SET NULL"))
    offset_ms: Mapped[int | None] = mapped_column(Integer)
    confidence: Mapped[float | None] = mapped_column(Float)


class PlayHold(IdMixin, Base):
    """A venue play held back from royalties by a fraud rule, until an admin releases it."""

    __tablename__ = "detection_holds"
    __table_args__ = (
        UniqueConstraint("play_id", "rule", name="uq_detection_holds_play_rule"),
        Index("ix_detection_holds_device_created", "device_id", "created_at"),
    )

    play_id: Mapped[int] = mapped_column(ForeignKey("plays.id", ondelete="CASCADE"), nullable=False)
    device_id: Mapped[int] = mapped_column(
        ForeignKey("detection_devices.id", ondelete="CASCADE"), nullable=False
    )
    rule: Mapped[str] = mapped_column(String(32), nullable=False)
    reason: Mapped[str] = mapped_column(String(300), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(64))
