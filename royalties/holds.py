"""Held-back plays: kept out of every close until an admin releases them.

Detection calls `hold_play` for venue plays of a flagged device (its fraud
rules decide); an admin can hold any play from the console too. A hold is
one row per play; a second reason is appended to the first, and a play
held again after a release is held afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.models import Play, utcnow

from .models import HeldPlay

MAX_REASON = 2000


async def hold_play(session: AsyncSession, play_id: int, reason: str, source: str) -> None:
    """Hold one play back from royalties (idempotent per play; reasons accumulate)."""
    reason = (reason or "held").strip()[:MAX_REASON]
    source = (source or "admin")[:32]
    row = (
        await session.execute(select(HeldPlay).where(HeldPlay.play_id == play_id))
    ).scalar_one_or_none()
    if row is None:
        session.add(HeldPlay(play_id=play_id, reason=reason, source=source, created_at=utcnow()))
        await session.flush()
        return
    if row.released_at is not None:
        row.reason, row.source, row.created_at = reason, source, utcnow()
        row.released_at, row.released_by = None, None
    elif reason not in row.reason.split("; "):
        row.reason = f"{row.reason}; {reason}"[:MAX_REASON]
    await session.flush()


async def release_play(session: AsyncSession, play_id: int, by: str) -> bool:
    """Release a held play: it counts in the next close of its period. False if not held."""
    row = (
        await session.execute(
            select(HeldPlay).where(HeldPlay.play_id == play_id, HeldPlay.released_at.is_(None))
        )
    ).scalar_one_or_none()
    if row is None:
        return False
    row.released_at = utcnow()
    row.released_by = (by or "")[:64]
    await session.flush()
    return True


@dataclass(frozen=True)
class HeldRow:
    play_id: int
    play_uuid: str
    track_uri: str
    artist_uri: str | None
    listener_uri: str
    source: str
    venue_id: int | None
    device_id: int | None
    started_at: datetime
    ms_listened: int
    reason: str
    held_by: str
    held_at: datetime


async def list_held(
    session: AsyncSession, *, limit: int = 100, offset: int = 0
) -> tuple[list[HeldRow], int]:
    """Plays held now, newest first, with their reason; and how many there are."""
    where = HeldPlay.released_at.is_(None)
    total = (
        await session.execute(select(func.count()).select_from(HeldPlay).where(where))
    ).scalar_one()
    res = await session.execute(
        select(HeldPlay, Play)
        .join(Play, Play.id == HeldPlay.play_id)
        .where(where)
        .order_by(HeldPlay.created_at.desc(), HeldPlay.id.desc())
        .limit(max(1, min(limit, 500)))
        .offset(max(0, offset))
    )
    rows = [
        HeldRow(
            play_id=p.id,
            play_uuid=p.uuid,
            track_uri=p.track_uri,
            artist_uri=p.artist_uri,
            listener_uri=p.listener_uri,
            source=p.source,
            venue_id=p.venue_id,
            device_id=p.device_id,
            started_at=p.started_at,
            ms_listened=p.ms_listened,
            reason=h.reason,
            held_by=h.source,
            held_at=h.created_at,
        )
        for h, p in res.all()
    ]
    return rows, int(total)
