"""Venue plays from detections: consecutive matches of one track, one play.

A device sends overlapping windows (say 10 s every 5 s), so one song heard
for three minutes is some 35 matches. They become ONE core `Play` (source
`venue`, or `dj` for a DJ integration's declared tracks) whose start is the
first window's and whose length reaches the end of the last one; a later
batch that continues the song extends the same play. Batches may arrive out
of order: a detection joins any play of the same track from the same device
that it touches within `detection.play_gap_seconds`.

The listener of a venue play is the node's own actor (the room has no
account); the play carries the venue and the device, which is what the
royalty close splits a venue's fee by (DESIGN.md 7).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.context import NodeContext
from node.models import Play, utcnow

from .bulk import db_time, execute_many, fetch_all, from_db, insert_many

PLAY_COLUMNS = (
    "uuid",
    "uri",
    "listener_id",
    "listener_uri",
    "track_id",
    "track_uri",
    "artist_uri",
    "started_at",
    "ms_listened",
    "source",
    "device_id",
    "venue_id",
    "origin",
    "created_at",
)
PLAY_COLUMNS_WITH_ID = ("id", *PLAY_COLUMNS)

# A song (or a DJ's extended mix) is not longer than this; older plays are
# not looked at when joining detections, which bounds the query.
LOOKBACK = timedelta(hours=3)


@dataclass(slots=True)
class Detection:
    """One item that named a track: a matched window or a declared track."""

    index: int
    track_id: int
    track_uri: str
    artist_uri: str | None
    track_local: bool
    captured_at: datetime
    duration_ms: int
    source: str  # venue | dj
    captured_db: Any = None  # captured_at as the database stores it
    end: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.end = self.captured_at + timedelta(milliseconds=self.duration_ms)


@dataclass(eq=False, slots=True)
class VenuePlay:
    """A play being built: an existing row (`id` set) or a new one."""

    id: int | None
    uuid: str
    track_id: int
    track_uri: str
    artist_uri: str | None
    track_local: bool
    source: str
    start: datetime
    end: datetime
    changed: bool = False
    members: list[int] = field(default_factory=list)  # indexes of detections
    start_db: Any = None  # start as the database stores it, when known

    @property
    def ms(self) -> int:
        return int((self.end - self.start).total_seconds() * 1000)

    def touches(self, d: Detection, gap: timedelta) -> bool:
        return (
            d.track_id == self.track_id
            and d.source == self.source
            and d.captured_at <= self.end + gap
            and d.end >= self.start - gap
        )


async def assign_plays(
    ctx: NodeContext,
    session: AsyncSession,
    *,
    device_id: int,
    venue_id: int,
    listener: tuple[int, str],
    detections: list[Detection],
) -> tuple[dict[int, VenuePlay], list[VenuePlay], list[VenuePlay]]:
    """Join `detections` into plays and write them; returns (play by detection
    index, the plays that are new, the device's other plays around them, which
    the fraud rules compare with). Emits `play.recorded` for each new play."""
    if not detections:
        return {}, [], []
    gap = timedelta(seconds=ctx.settings.detection.play_gap_seconds)
    detections = sorted(detections, key=lambda d: (d.captured_at, d.index))
    lo = detections[0].captured_at - LOOKBACK
    hi = max(d.end for d in detections) + gap
    # The device's plays that started in [lo, hi]. `plays` has no index by
    # device, but every venue play has an item captured exactly at its start
    # (a play starts at its earliest member), so the items' (device,
    # captured_at) index finds them without scanning every play.
    to_db = db_time(ctx.db.dialect)
    rows = await fetch_all(
        session,
        "SELECT id, uuid, track_id, track_uri, artist_uri, source, started_at, ms_listened"
        " FROM plays WHERE id IN (SELECT play_id FROM detection_items"
        " WHERE device_id = ? AND captured_at >= ? AND captured_at <= ?"
        " AND play_id IS NOT NULL) AND device_id = ? AND started_at >= ? AND started_at <= ?",
        (device_id, to_db(lo), to_db(hi), device_id, to_db(lo), to_db(hi)),
    )
    # Open plays by track, so joining is a short scan of the track's plays.
    by_track: dict[int, list[VenuePlay]] = {}
    existing: list[VenuePlay] = []
    for play_id, uuid, track_id, track_uri, artist_uri, source, started, ms in rows:
        start = from_db(started)
        existing.append(
            VenuePlay(
                id=play_id,
                uuid=uuid,
                track_id=track_id,
                track_uri=track_uri,
                artist_uri=artist_uri,
                track_local=True,
                source=source,
                start=start,
                end=start + timedelta(milliseconds=ms),
            )
        )
        by_track.setdefault(track_id, []).append(existing[-1])
    assigned: dict[int, VenuePlay] = {}
    new: list[VenuePlay] = []
    uuids = iter(new_uuids(len(detections)))
    for d in detections:
        play = None
        same = by_track.get(d.track_id)
        if same is not None:
            for p in same:
                if p.touches(d, gap):
                    play = p
                    break
        else:
            same = by_track[d.track_id] = []
        if play is None:
            play = VenuePlay(
                None,
                next(uuids),
                d.track_id,
                d.track_uri,
                d.artist_uri,
                d.track_local,
                d.source,
                d.captured_at,
                d.end,
                start_db=d.captured_db,
            )
            same.append(play)
            new.append(play)
        elif d.captured_at < play.start or d.end > play.end:
            if d.captured_at < play.start:
                play.start, play.start_db = d.captured_at, d.captured_db
            play.end = max(play.end, d.end)
            play.changed = True
        play.members.append(d.index)
        assigned[d.index] = play

    await _write(ctx, session, device_id, venue_id, listener, new, existing)
    return assigned, new, existing


def new_uuids(n: int) -> list[str]:
    """`n` time-ordered UUIDs (version 7, RFC 9562 section 5.7) as text.

    A play's uuid and URI are unique indexes: random (version 4) keys land
    on a different page of each index per row, and with SQLite's WAL every
    touched page is written again at commit, which made the uuids the
    costliest part of recording a play. Version 7 keys start with the
    millisecond, so a batch's plays go to the end of both indexes. The
    other 74 bits are random, so they are still not guessable."""
    stamp = f"{time.time_ns() // 1_000_000:012x}"
    head = f"{stamp[:8]}-{stamp[8:]}-7"
    raw = os.urandom(10 * n).hex()
    out = []
    for k in range(0, 20 * n, 20):
        r = raw[k : k + 20]
        out.append(f"{head}{r[:3]}-{_VARIANT[r[3]]}{r[4:7]}-{r[8:20]}")
    return out


# The RFC 9562 variant: the two top bits of the 17th hex digit are 10.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


async def _write(
    ctx: NodeContext,
    session: AsyncSession,
    device_id: int,
    venue_id: int,
    listener: tuple[int, str],
    new: list[VenuePlay],
    existing: list[VenuePlay],
) -> None:
    listener_id, listener_uri = listener
    conn = await session.connection()
    sqlite = conn.dialect.name == "sqlite"
    to_db = db_time(conn.dialect.name)
    if new:
        # One insert for the batch's new plays (the ingest target is tens of
        # thousands of declared plays a second; see bulk). On SQLite this
        # transaction holds the only write lock (BEGIN IMMEDIATE), so the ids
        # are given here, exactly as SQLite would (max + 1 onwards), and need
        # no read back; on PostgreSQL the sequence gives them and they are
        # read back.
        if sqlite:
            top = (await fetch_all(session, "SELECT max(id) FROM plays"))[0][0] or 0
            for k, p in enumerate(new, start=top + 1):
                p.id = k
        uri = ctx.urls.obj("plays", "")
        now = to_db(utcnow())
        await insert_many(
            session,
            Play.__table__,
            PLAY_COLUMNS_WITH_ID if sqlite else PLAY_COLUMNS,
            [
                (
                    *((p.id,) if sqlite else ()),
                    p.uuid,
                    uri + p.uuid,
                    listener_id,
                    listener_uri,
                    p.track_id,
                    p.track_uri,
                    p.artist_uri,
                    p.start_db if p.start_db is not None else to_db(p.start),
                    p.ms,
                    p.source,
                    device_id,
                    venue_id,
                    "local",
                    now,
                )
                for p in new
            ],
        )
        if not sqlite:
            by_uuid = {p.uuid: p for p in new}
            uuids = list(by_uuid)
            for i in range(0, len(uuids), 1000):
                rows = await session.execute(
                    select(Play.uuid, Play.id).where(Play.uuid.in_(uuids[i : i + 1000]))
                )
                for uuid, play_id in rows.all():
                    by_uuid[uuid].id = play_id
    grown = [p for p in existing if p.changed]
    if grown:
        await execute_many(
            session,
            "UPDATE plays SET started_at = ?, ms_listened = ? WHERE id = ?",
            [(to_db(p.start), p.ms, p.id) for p in grown],
        )
    prefix = ctx.urls.obj("plays", "")
    emit = ctx.bus.emit
    for p in new:
        await emit(
            session,
            "play.recorded",
            play_id=p.id,
            uri=prefix + p.uuid,
            track_local=p.track_local,
            origin="local",
        )
