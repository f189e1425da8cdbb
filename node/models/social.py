"""Follows and plays: who listens to whom."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .actors import Actor
from .base import Base, IdMixin, UTCDateTime, new_uuid, utcnow

FOLLOW_STATES = ("pending", "accepted", "rejected")
PLAY_SOURCES = ("stream", "subsonic", "venue", "dj", "radio")


class Follow(IdMixin, Base):
    __tablename__ = "follows"
    __table_args__ = (
        UniqueConstraint("follower_id", "target_id", name="uq_follows_pair"),
        Index("ix_follows_target_state", "target_id", "state", "id"),
    )

    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    follower_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    target_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    follower: Mapped[Actor] = relationship(foreign_keys=[follower_id], lazy="joined")
    target: Mapped[Actor] = relationship(foreign_keys=[target_id], lazy="joined")


class Play(IdMixin, Base):
    """One listen, recorded once on the listener's home node (DESIGN.md 6).

    `uuid` is the play's id: a retried report carries the same one, so it is
    never counted twice. Remote tracks are kept by URI.
    """

    __tablename__ = "plays"
    __table_args__ = (
        Index("ix_plays_track_started", "track_uri", "started_at"),
        Index("ix_plays_listener_started", "listener_id", "started_at"),
        Index("ix_plays_artist_started", "artist_uri", "started_at"),
    )

    uuid: Mapped[str] = mapped_column(String(64), unique=True, default=new_uuid, nullable=False)
    uri: Mapped[str | None] = mapped_column(String(512), unique=True)
    listener_id: Mapped[int | None] = mapped_column(ForeignKey("actors.id", ondelete="SET NULL"))
    listener_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    track_id: Mapped[int | None] = mapped_column(ForeignKey("tracks.id", ondelete="SET NULL"))
    track_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    artist_uri: Mapped[str | None] = mapped_column(String(512))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ms_listened: Mapped[int] = mapped_column(Integer, nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False, default="stream")
    device_id: Mapped[int | None] = mapped_column(Integer)
    venue_id: Mapped[int | None] = mapped_column(ForeignKey("venues.id", ondelete="SET NULL"))
    origin: Mapped[str] = mapped_column(
        String(16), nullable=False, default="local"
    )  # local | remote
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Like(IdMixin, Base):
    """A fan likes a track, release or event (local or remote object, by URI)."""

    __tablename__ = "likes"
    __table_args__ = (
        UniqueConstraint("actor_id", "object_uri", name="uq_likes_actor_object"),
        Index("ix_likes_object", "object_uri"),
    )

    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    actor_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    object_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Comment(IdMixin, Base):
    """A comment (an ActivityPub Note) on a track, release or event.

    `content` is sanitized HTML: sanitized on the way in, whoever wrote it.
    """

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_object_created", "object_uri", "created_at", "id"),)

    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid, nullable=False)
    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    actor_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    object_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    local: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    actor: Mapped[Actor] = relationship(lazy="joined")


class Announce(IdMixin, Base):
    """A repost: a collective (or anyone) boosts an artist or an object."""

    __tablename__ = "announces"
    __table_args__ = (UniqueConstraint("actor_id", "object_uri", name="uq_announces_actor_object"),)

    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    actor_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    object_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Report(IdMixin, Base):
    """A report (ActivityPub Flag) for moderators, from a local user or another node."""

    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_state_created", "state", "created_at", "id"),)

    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    reporter_uri: Mapped[str] = mapped_column(String(512), nullable=False)
    target_uris: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    state: Mapped[str] = mapped_column(
        String(16), nullable=False, default="open"
    )  # open | resolved | dismissed
    origin_host: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
