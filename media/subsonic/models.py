"""Tables of the Subsonic API: credentials, API keys, playlists, stars and ratings.

The Subsonic password is a second, per-user password, kept apart from the
login password because token auth (`t = md5(password + salt)`) needs the
clear text on the server: it is stored encrypted with a key derived from the
node's secret (see `credentials.py`), never hashed. OpenSubsonic API keys are
random and only their SHA-256 is kept.

Stars and ratings point at an artist, album or song by kind and row id;
they carry no foreign key because the three kinds live in three tables, so
readers join them to the catalog (an orphan simply stops showing).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from node.models.base import Base, BigID, IdMixin, TimestampMixin, UTCDateTime, utcnow

ITEM_KINDS = ("artist", "album", "song")
# Row ids of actors, releases and tracks: BIGINT on PostgreSQL, INTEGER on SQLite.
ItemID = BigInteger().with_variant(Integer(), "sqlite")


class SubsonicCredential(TimestampMixin, Base):
    """A user's Subsonic password, encrypted (Fernet) with a key from the node secret."""

    __tablename__ = "subsonic_credentials"

    account_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    password_enc: Mapped[str] = mapped_column(Text, nullable=False)


class SubsonicApiKey(IdMixin, Base):
    """An OpenSubsonic API key (the `apiKey` parameter); only its SHA-256 is kept."""

    __tablename__ = "subsonic_api_keys"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True, nullable=False
    )
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False, default="")
    hint: Mapped[str] = mapped_column(String(16), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Playlist(IdMixin, TimestampMixin, Base):
    __tablename__ = "subsonic_playlists"
    __table_args__ = (Index("ix_subsonic_playlists_owner", "owner_id", "id"),)

    owner_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    comment: Mapped[str] = mapped_column(Text, nullable=False, default="")
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    entries: Mapped[list[PlaylistEntry]] = relationship(
        order_by="PlaylistEntry.position",
        cascade="all, delete-orphan",
        lazy="selectin",
    )


class PlaylistEntry(IdMixin, Base):
    __tablename__ = "subsonic_playlist_entries"
    __table_args__ = (Index("ix_subsonic_playlist_entries_pos", "playlist_id", "position"),)

    playlist_id: Mapped[int] = mapped_column(
        ForeignKey("subsonic_playlists.id", ondelete="CASCADE"), nullable=False
    )
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    track_id: Mapped[int] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), index=True, nullable=False
    )


class Star(IdMixin, Base):
    __tablename__ = "subsonic_stars"
    __table_args__ = (
        UniqueConstraint("account_id", "kind", "item_id", name="uq_subsonic_stars_item"),
    )

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    item_id: Mapped[int] = mapped_column(ItemID, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)


class Rating(IdMixin, Base):
    __tablename__ = "subsonic_ratings"
    __table_args__ = (
        UniqueConstraint("account_id", "kind", "item_id", name="uq_subsonic_ratings_item"),
    )

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    item_id: Mapped[int] = mapped_column(ItemID, nullable=False)
    rating: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
