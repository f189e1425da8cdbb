"""Live sessions and chat bans: what outlives one WebRTC connection.

A `LiveSession` row is written when an artist goes live (local) or when a
followed artist on another node announces one (remote, learned through
federation). The media itself is never stored here; the in-memory hub
(`hub.py`) holds the peer connections of the sessions that are on the air.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from node.models import Actor
from node.models.base import Base, IdMixin, TimestampMixin, UTCDateTime, new_uuid, utcnow

LIVE_STATES = ("live", "ended")


class LiveSession(IdMixin, TimestampMixin, Base):
    __tablename__ = "live_sessions"
    __table_args__ = (
        Index("ix_live_sessions_state_started", "state", "started_at", "id"),
        Index("ix_live_sessions_actor_started", "actor_id", "started_at"),
    )

    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid, nullable=False)
    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    actor_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    local: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="live")
    title: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    # The origin's WHEP endpoint (ours for local sessions): where a relay subscribes.
    whep_url: Mapped[str] = mapped_column(String(512), nullable=False)
    has_video: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    viewers_peak: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    viewers_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    recording: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    recording_track_id: Mapped[int | None] = mapped_column(
        ForeignKey("tracks.id", ondelete="SET NULL")
    )
    end_reason: Mapped[str] = mapped_column(String(64), nullable=False, default="")

    actor: Mapped[Actor] = relationship(lazy="joined")


class ChatBan(IdMixin, Base):
    """A fan banned (or muted until a time) from an artist's live chats."""

    __tablename__ = "live_chat_bans"
    __table_args__ = (UniqueConstraint("artist_id", "account_id", name="uq_live_chat_bans_pair"),)

    artist_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # ban | mute
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    by: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class RemoteChatBan(IdMixin, Base):
    """A fan of another node (`user@host`, no account here) banned or muted from an
    artist's live chats: kept like `ChatBan`, so it holds across sessions and restarts."""

    __tablename__ = "live_chat_remote_bans"
    __table_args__ = (UniqueConstraint("artist_id", "acct", name="uq_live_chat_remote_bans_pair"),)

    artist_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    acct: Mapped[str] = mapped_column(String(320), nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # ban | mute
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    by: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
