"""Federation's own tables: known instances, inbound and outbound activities.

Deliveries themselves are jobs (`federation.deliver`), so retries, backoff
and dead letters come from the one job table (STYLE.md, Takahē).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from node.models.base import Base, IdMixin, UTCDateTime, utcnow

INSTANCE_POLICIES = ("default", "allow", "limit", "block")


class Instance(IdMixin, Base):
    """A remote host we talk to: what it runs, how delivery to it is going, and our policy."""

    __tablename__ = "instances"

    host: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    software: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[str | None] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(16), nullable=False, default="default")
    policy_reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    circuit_open_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    received: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    nodeinfo_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InboxItem(IdMixin, Base):
    """One verified inbound activity, stored before it is processed.

    `activity_id` is unique: a redelivered activity is acknowledged and
    dropped, which is how "processed once, however often it arrives" holds.
    """

    __tablename__ = "inbox_items"
    __table_args__ = (Index("ix_inbox_items_state_received", "state", "received_at", "id"),)

    activity_id: Mapped[str] = mapped_column(String(1024), unique=True, nullable=False)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    object_type: Mapped[str | None] = mapped_column(String(64))
    actor_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    key_id: Mapped[str] = mapped_column(String(600), nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    state: Mapped[str] = mapped_column(
        String(16), nullable=False, default="received"
    )  # received|processed|ignored|failed
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxItem(IdMixin, Base):
    """An activity a local actor sent; kept for the outbox collection and redelivery."""

    __tablename__ = "outbox_items"
    __table_args__ = (Index("ix_outbox_items_actor_created", "actor_id", "created_at", "id"),)

    activity_id: Mapped[str] = mapped_column(String(1024), unique=True, nullable=False)
    actor_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict] = mapped_column(JSON, nullable=False)
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    inboxes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
