"""Fraud rules for venue plays: suspicious plays are held back, with a reason.

Rules (DESIGN.md 8), each a pure function over plays the caller loaded:

- rate: more than `detection.max_plays_per_hour` plays from one device in an hour;
- overlap: two different tracks heard by one device at the same time (a room
  plays one song at a time; window overlap at a song change is allowed);
- loop: the same track more than `detection.max_repeats` times in 3 hours, or
  one play far longer than the track (an endless loop);
- match-rate: a batch whose share of matched windows departs from the
  device's own history by more than `detection.match_rate_drift` (a device
  that suddenly recognises everything is being fed the catalogue).

A held play stays a `Play` row; a `PlayHold` says why, and royalties'
`hold_play` keeps it out of the close until an admin releases it. After
`detection.quarantine_after_holds` held plays in a day the device is
quarantined (with `detection.auto_quarantine`), and its batches are refused.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.context import NodeContext
from node.models import utcnow

from .device_models import Device, PlayHold
from .plays import VenuePlay

log = logging.getLogger("nycmg.detection.fraud")

HOUR = timedelta(hours=1)
LOOP_WINDOW = timedelta(hours=3)
OVERLAP_ALLOWED = timedelta(seconds=20)
LOOP_LENGTH_FACTOR = 3  # a play this many times the track's length is a loop
HISTORY_MIN_ITEMS = 200  # a device's history must be this large to judge drift
BATCH_MIN_ITEMS = 20


@dataclass(frozen=True)
class Flag:
    play_id: int
    rule: str
    reason: str


class Span(Protocol):
    """What the rules read of a play (a PlaySpan, or detection.plays' VenuePlay)."""

    @property
    def id(self) -> int | None: ...
    @property
    def track_id(self) -> int | None: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...


class PlaySpan(NamedTuple):
    id: int
    track_id: int | None
    start: datetime
    end: datetime


def _count_in(starts: list[datetime], lo: datetime, hi: datetime) -> int:
    """How many of the sorted `starts` fall in (lo, hi]."""
    return bisect_right(starts, hi) - bisect_right(starts, lo)


def rate_flags(new: Iterable[Span], recent_starts: list[datetime], limit: int) -> list[Flag]:
    """Plays beyond `limit` in the hour before each new play's start."""
    starts = sorted(recent_starts)
    flags = []
    for p in new:
        n = _count_in(starts, p.start - HOUR, p.start)
        if n > limit:
            flags.append(Flag(p.id, "rate", f"{n} plays from this device within an hour"))
    return flags


def overlap_flags(new: Iterable[Span], others: Sequence[Span]) -> list[Flag]:
    """New or grown plays that overlap another track's play by more than a song change
    (of two new plays that overlap, the later one)."""
    ordered = sorted(others, key=_start)
    starts = [o.start for o in ordered]
    longest = max((o.end - o.start for o in ordered), default=timedelta(0))
    checked = list(new)
    ids = {p.id for p in checked}
    flags = []
    for p in checked:
        # Only plays that start before p ends and not so early they must have ended.
        k = bisect_left(starts, p.start - longest)
        hi = bisect_right(starts, p.end, k)
        while k < hi:
            o = ordered[k]
            k += 1
            if o.id == p.id or o.track_id == p.track_id:
                continue
            if o.id in ids and (o.start, o.id) > (p.start, p.id):
                continue  # of two suspects, the one that started later is held
            overlap = min(p.end, o.end) - max(p.start, o.start)
            if overlap > OVERLAP_ALLOWED:
                secs = int(overlap.total_seconds())
                flags.append(Flag(p.id, "overlap", f"overlaps another track's play by {secs} s"))
                break
    return flags


def _start(span: Span) -> datetime:
    return span.start


def loop_flags(
    new: Iterable[Span],
    recent: Sequence[Span],
    limit: int,
    durations: dict[int, int | None],
) -> list[Flag]:
    """The same track again and again, or one play many times the track's length."""
    by_track: dict[int | None, list[datetime]] = {}
    for o in recent:
        by_track.setdefault(o.track_id, []).append(o.start)
    for starts in by_track.values():
        starts.sort()
    flags = []
    for p in new:
        n = _count_in(by_track.get(p.track_id, []), p.start - LOOP_WINDOW, p.start)
        if n > limit:
            flags.append(Flag(p.id, "loop", f"the same track {n} times within 3 hours"))
            continue
        length = durations.get(p.track_id or -1)
        played = (p.end - p.start).total_seconds() * 1000
        if length and played > LOOP_LENGTH_FACTOR * length and played > 20 * 60 * 1000:
            flags.append(
                Flag(p.id, "loop", f"heard for {int(played // 60000)} min, the track is shorter")
            )
    return flags


def drift_flag_reason(history: list[dict], items: int, matched: int, drift: float) -> str | None:
    """Why a batch's match rate is suspicious given the device's history, or None."""
    hist_items = sum(int(h.get("items", 0)) for h in history)
    hist_matched = sum(int(h.get("matched", 0)) for h in history)
    if items < BATCH_MIN_ITEMS or hist_items < HISTORY_MIN_ITEMS:
        return None
    usual, now = hist_matched / hist_items, matched / items
    if abs(now - usual) > drift:
        return f"match rate {now:.0%} in this batch, {usual:.0%} usually"
    return None


async def check(
    ctx: NodeContext,
    session: AsyncSession,
    device_id: int,
    new: list[VenuePlay],
    grown: list[VenuePlay],
    existing: list[VenuePlay],
    drift_reason: str | None,
    durations: dict[int, int | None],
) -> list[Flag]:
    """Apply every rule to a batch's new and grown plays; hold what they flag.

    `existing` is the device's plays around them as `assign_plays` read them
    (grown ones already extended), and `durations` (ms by track id) come from
    the batch's own track lookup, so the rules need no second read."""
    touched = [*new, *grown]
    if not touched:
        return []
    s = ctx.settings.detection
    # VenuePlay has the fields of a PlaySpan (id, track_id, start, end): the
    # rules read the plays as they are, with no copy per play.
    recent = [*existing, *new]
    flags = [
        *rate_flags(new, [r.start for r in recent], s.max_plays_per_hour),
        *overlap_flags(touched, recent),
        *loop_flags(new, recent, s.max_repeats, durations),
    ]
    if drift_reason:
        flags += [Flag(p.id, "match-rate", drift_reason) for p in new]
    if flags:
        # Batches written before this one in the same transaction changed the
        # device in SQL (detection.batches._touch): read it afresh.
        device = await session.get(Device, device_id, populate_existing=True)
        assert device is not None
        await hold(ctx, session, device, flags)
    return flags


async def hold(ctx: NodeContext, session: AsyncSession, device: Device, flags: list[Flag]) -> None:
    """Record the holds (once per play and rule), tell royalties, update the device."""
    have = set(
        (
            await session.execute(
                select(PlayHold.play_id, PlayHold.rule).where(
                    PlayHold.play_id.in_({f.play_id for f in flags})
                )
            )
        ).all()
    )
    now = utcnow()
    fresh = []
    for f in flags:
        if (f.play_id, f.rule) in have:
            continue
        have.add((f.play_id, f.rule))
        fresh.append(f)
        session.add(
            PlayHold(
                play_id=f.play_id, device_id=device.id, rule=f.rule, reason=f.reason, created_at=now
            )
        )
    if not fresh:
        return
    await session.flush()
    await _hold_in_royalties(session, fresh)
    day = await session.scalar(
        select(func.count(func.distinct(PlayHold.play_id))).where(
            PlayHold.device_id == device.id, PlayHold.created_at > now - timedelta(days=1)
        )
    )
    month = await session.scalar(
        select(func.count(func.distinct(PlayHold.play_id))).where(
            PlayHold.device_id == device.id, PlayHold.created_at > now - timedelta(days=30)
        )
    )
    device.reputation = max(0, 100 - 2 * int(month or 0))
    s = ctx.settings.detection
    if s.auto_quarantine and device.state == "active" and (day or 0) >= s.quarantine_after_holds:
        device.state = "quarantined"
        device.state_reason = f"automatic: {day} plays held back within 24 hours"
        device.state_changed_at = now
        log.warning("device %s quarantined: %s", device.uri, device.state_reason)


async def _hold_in_royalties(session: AsyncSession, flags: list[Flag]) -> None:
    """Royalties keeps held plays out of the close; it may not be installed yet."""
    try:
        from royalties.holds import hold_play  # type: ignore[import-not-found]
    except ImportError:
        return  # our PlayHold rows still show the hold; the close reads them (see report)
    for f in flags:
        await hold_play(session, f.play_id, f.reason, "detection")


async def release(session: AsyncSession, play_id: int, by: str) -> int:
    """An admin releases every open hold of one play; returns how many."""
    holds = (
        await session.scalars(
            select(PlayHold).where(PlayHold.play_id == play_id, PlayHold.released_at.is_(None))
        )
    ).all()
    now = utcnow()
    for h in holds:
        h.released_at = now
        h.released_by = by[:64]
    if holds:
        try:
            from royalties.holds import release_play  # type: ignore[import-not-found]
        except ImportError:
            return len(holds)
        await release_play(session, play_id, by)
    return len(holds)
