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

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.context import NodeContext
from node.models import Play, new_uuid, utcnow

from .bulk import insert_many

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
    rows = await session.execute(
        select(
            Play.id,
            Play.uuid,
            Play.track_id,
            Play.track_uri,
            Play.artist_uri,
            Play.source,
            Play.started_at,
            Play.ms_listened,
        ).where(
            Play.device_id == device_id,
            Play.started_at >= lo,
            Play.started_at <= hi,
        )
    )
    # Open plays by track, so joining is a short scan of the track's plays.
    by_track: dict[int, list[VenuePlay]] = {}
    existing: list[VenuePlay] = []
    for r in rows.all():
        existing.append(
            VenuePlay(
                id=r.id,
                uuid=r.uuid,
                track_id=r.track_id,
                track_uri=r.track_uri,
                artist_uri=r.artist_uri,
                track_local=True,
                source=r.source,
                start=r.started_at,
                end=r.started_at + timedelta(milliseconds=r.ms_listened),
            )
        )
        by_track.setdefault(r.track_id, []).append(existing[-1])
    assigned: dict[int, VenuePlay] = {}
    new: list[VenuePlay] = []
    for d in detections:
        play = next((p for p in by_track.get(d.track_id, ()) if p.touches(d, gap)), None)
        if play is None:
            play = VenuePlay(
                id=None,
                uuid=new_uuid(),
                track_id=d.track_id,
                track_uri=d.track_uri,
                artist_uri=d.artist_uri,
                track_local=d.track_local,
                source=d.source,
                start=d.captured_at,
                end=d.end,
            )
            by_track.setdefault(d.track_id, []).append(play)
            new.append(play)
        elif d.captured_at < play.start or d.end > play.end:
            play.start = min(play.start, d.captured_at)
            play.end = max(play.end, d.end)
            play.changed = True
        play.members.append(d.index)
        assigned[d.index] = play

    await _write(ctx, session, device_id, venue_id, listener, new, by_track)
    return assigned, new, existing


async def _write(
    ctx: NodeContext,
    session: AsyncSession,
    device_id: int,
    venue_id: int,
    listener: tuple[int, str],
    new: list[VenuePlay],
    by_track: dict[int, list[VenuePlay]],
) -> None:
    listener_id, listener_uri = listener
    now = utcnow()
    grown = [p for plays in by_track.values() for p in plays if p.changed and p.id is not None]
    if new:
        # One executemany for the batch's new plays, then their ids by uuid in
        # a few reads: the ingest target is tens of thousands of declared plays
        # a second, and INSERT ... RETURNING in parameter order falls back to
        # one statement per row on SQLite.
        uri = ctx.urls.obj("plays", "")
        await insert_many(
            session,
            Play.__table__,
            PLAY_COLUMNS,
            [
                (
                    p.uuid,
                    uri + p.uuid,
                    listener_id,
                    listener_uri,
                    p.track_id,
                    p.track_uri,
                    p.artist_uri,
                    p.start,
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
        by_uuid = {p.uuid: p for p in new}
        uuids = list(by_uuid)
        for i in range(0, len(uuids), 500):
            rows = await session.execute(
                select(Play.uuid, Play.id).where(Play.uuid.in_(uuids[i : i + 500]))
            )
            for uuid, play_id in rows.all():
                by_uuid[uuid].id = play_id
    for p in grown:
        await session.execute(
            update(Play).where(Play.id == p.id).values(started_at=p.start, ms_listened=p.ms)
        )
    for p in new:
        await ctx.bus.emit(
            session,
            "play.recorded",
            play_id=p.id,
            uri=ctx.urls.obj("plays", p.uuid),
            track_local=p.track_local,
            origin="local",
        )
