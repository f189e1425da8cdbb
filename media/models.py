"""The media part's own table: which masters were imported for which artist.

`nycmg import` records each file's SHA-256 here with the track it became, so
running the import again over the same folder (or a copy with other file
names) creates nothing twice. Deleting the track forgets the row, so a
deliberate re-import after a delete works.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from node.models.base import Base, BigID, IdMixin, UTCDateTime, utcnow


class MediaImport(IdMixin, Base):
    __tablename__ = "media_imports"
    __table_args__ = (UniqueConstraint("artist_id", "sha256", name="uq_media_imports_artist_sha"),)

    artist_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("actors.id", ondelete="CASCADE"), nullable=False
    )
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    track_id: Mapped[int] = mapped_column(
        BigID, ForeignKey("tracks.id", ondelete="CASCADE"), nullable=False, index=True
    )
    path: Mapped[str] = mapped_column(String(1024), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
