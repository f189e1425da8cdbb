"""Tables of the fingerprint index (DESIGN.md 8): landmark hashes with their
track and anchor frame, and one row per indexed track.

`detection_hashes` is the inverted index. Its primary key (hash, track_id,
frame) doubles as the index on hash that lookups use, and keeps a re-run of
the same track from storing a posting twice. `detection_tracks` says which
tracks are indexed, with which fingerprint version; its ids also give the
in-process cache a cheap "has the index changed?" token.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from node.models.base import Base, BigID, UTCDateTime, utcnow


class FingerprintHash(Base):
    """One landmark hash of one track at one anchor frame (32 ms frames)."""

    __tablename__ = "detection_hashes"
    __table_args__ = (Index("ix_detection_hashes_track", "track_id"),)

    hash: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    track_id: Mapped[int] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    frame: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)


class IndexedTrack(Base):
    """A track whose fingerprint is in `detection_hashes`."""

    __tablename__ = "detection_tracks"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    track_id: Mapped[int] = mapped_column(
        ForeignKey("tracks.id", ondelete="CASCADE"), unique=True, nullable=False
    )
    hashes: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    indexed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # The same postings packed (uint32 hashes, then int32 frames), so the
    # matcher's in-process snapshot loads one row per track.
    postings: Mapped[bytes] = mapped_column(LargeBinary, nullable=False, default=b"")
