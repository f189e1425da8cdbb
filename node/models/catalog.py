"""Releases, tracks, venues and events: the catalog an artist publishes.

Rows are local (created here, `local=True`) or remote (learned through
federation); both carry the object's ActivityPub `uri`.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .actors import Actor
from .base import Base, IdMixin, TimestampMixin, UTCDateTime, new_uuid

RELEASE_KINDS = ("album", "ep", "single", "compilation", "mixtape", "live")
RELEASE_STATES = ("draft", "published")
TRACK_STATES = ("draft", "processing", "ready", "failed")
EVENT_STATES = ("scheduled", "cancelled")


class Release(IdMixin, TimestampMixin, Base):
    __tablename__ = "releases"
    __table_args__ = (
        # Newest-first public listings with keyset pagination on (published_at, id).
        Index("ix_releases_state_published", "state", "published_at", "id"),
        Index("ix_releases_artist_published", "artist_id", "published_at", "id"),
    )

    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid, nullable=False)
    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    artist_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="album")
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    genres: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    release_date: Mapped[date | None] = mapped_column(Date)
    cover_url: Mapped[str | None] = mapped_column(String(512))
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="draft")
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    local: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    artist: Mapped[Actor] = relationship(lazy="joined")
    tracks: Mapped[list[Track]] = relationship(
        back_populates="release", order_by="Track.position", lazy="selectin"
    )


class Track(IdMixin, TimestampMixin, Base):
    __tablename__ = "tracks"
    __table_args__ = (
        Index("ix_tracks_artist_created", "artist_id", "created_at", "id"),
        Index("ix_tracks_release_position", "release_id", "position"),
    )

    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid, nullable=False)
    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    artist_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id", ondelete="SET NULL"))
    position: Mapped[int | None] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    isrc: Mapped[str | None] = mapped_column(String(12), index=True)
    genres: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="draft")
    original_path: Mapped[str | None] = mapped_column(String(512))
    original_mime: Mapped[str | None] = mapped_column(String(100))
    original_size: Mapped[int | None] = mapped_column(Integer)
    media: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    local: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    artist: Mapped[Actor] = relationship(lazy="joined")
    release: Mapped[Release | None] = relationship(back_populates="tracks")

    @property
    def public(self) -> bool:
        """A track is public once its release is published (or it stands alone as ready)."""
        if self.release is not None:
            return self.release.state == "published"
        return self.state == "ready"


class Venue(IdMixin, TimestampMixin, Base):
    __tablename__ = "venues"
    __table_args__ = (Index("ix_venues_borough_name", "borough", "name", "id"),)

    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid, nullable=False)
    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    address: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    borough: Mapped[str | None] = mapped_column(String(64))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    capacity: Mapped[int | None] = mapped_column(Integer)
    website: Mapped[str | None] = mapped_column(String(512))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("actors.id", ondelete="SET NULL"))
    local: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Event(IdMixin, TimestampMixin, Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_state_starts", "state", "starts_at", "id"),
        Index("ix_events_organizer_starts", "organizer_id", "starts_at", "id"),
    )

    uuid: Mapped[str] = mapped_column(String(36), unique=True, default=new_uuid, nullable=False)
    uri: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    organizer_id: Mapped[int] = mapped_column(
        ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    venue_id: Mapped[int | None] = mapped_column(
        ForeignKey("venues.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ticket_url: Mapped[str | None] = mapped_column(String(512))
    price_amount: Mapped[int | None] = mapped_column(Integer)
    price_currency: Mapped[str | None] = mapped_column(String(3))
    genres: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    lineup: Mapped[list] = mapped_column(JSON, nullable=False, default=list)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="scheduled")
    local: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    organizer: Mapped[Actor] = relationship(lazy="joined")
    venue: Mapped[Venue | None] = relationship(lazy="joined")
