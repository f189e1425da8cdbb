"""Qualified plays: which of this node's plays a period's money follows (issue 5.4).

A fan's play qualifies when, in SQL over the whole period at once:

- it lasted at least `royalties.min_play_ms` (30 s by default);
- it claims no more listening than the wall-clock time until the same
  listener's next play started (with `OVERLAP_SLACK_MS` for players that
  report a little late); a listener running plays side by side, or a
  client claiming more than it can have played, gets only the last of
  them, which also rules out overlapping plays by one listener;
- it is within `royalties.daily_track_cap` plays of that track by that
  listener that UTC day (the rest are not paid);
- it is not held (holds.py: flagged devices, admin holds).

Only this node's own listeners count (`origin = 'local'`): Listens that
other nodes reported for our artists are theirs to pay. Venue and DJ plays
are not a fan's plays; they split the venue's licence fee instead (same
length and hold rules, counted per venue).

Everything is aggregated in the database and streamed as (listener,
artist, plays) sorted by listener, so a close never holds every play in
memory. Qualification is per listener, so the same query filtered to one
listener gives exactly that listener's part of the close (the fan page).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from operator import itemgetter

import numpy as np
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from node.models import UTCDateTime

from .periods import bounds

OVERLAP_SLACK_MS = 2000
# The next play that bounds a play's length may start after the month ends.
LOOKAHEAD = timedelta(days=1)
VENUE_SOURCES = ("venue", "dj")
NO_WATERMARK = 2**62  # "every play so far" (open months, fan pages)


@dataclass(frozen=True)
class Rules:
    min_ms: int = 30_000
    daily_cap: int = 10

    @classmethod
    def from_settings(cls, settings) -> Rules:
        r = settings.royalties
        return cls(min_ms=int(r.min_play_ms), daily_cap=max(1, int(r.daily_track_cap)))


def _fragments(dialect: str) -> dict[str, str]:
    if dialect == "postgresql":
        return {
            "day": "CAST(p.started_at AT TIME ZONE 'UTC' AS DATE)",
            "gap": "EXTRACT(EPOCH FROM (p.next_start - p.started_at)) * 1000",
            "least": "LEAST",
        }
    # SQLite keeps UTC datetimes as ISO text ("YYYY-MM-DD HH:MM:SS.ffffff").
    return {
        "day": "substr(p.started_at, 1, 10)",
        "gap": "(julianday(p.next_start) - julianday(p.started_at)) * 86400000.0",
        "least": "MIN",
    }


_HELD = "NOT EXISTS (SELECT 1 FROM play_holds h WHERE h.play_id = p.id AND h.released_at IS NULL)"


def _qualified_cte(dialect: str, *, scan: str, only: str) -> str:
    """The month's fan plays that qualify, one row each (listener, artist, track, UTC day)."""
    f = _fragments(dialect)
    return f"""
WITH p AS (
  SELECT id, listener_id, track_uri, artist_uri, started_at, ms_listened,
         LEAD(started_at) OVER (PARTITION BY listener_id ORDER BY started_at, id) AS next_start
  FROM {scan}
  WHERE origin = 'local' AND source NOT IN ('venue', 'dj') AND listener_id IS NOT NULL
    AND started_at >= :start AND started_at < :lookahead AND id <= :max_id {only}
),
ok AS (
  SELECT p.listener_id, p.artist_uri, p.track_uri, {f["day"]} AS day
  FROM p
  WHERE p.started_at < :end AND p.artist_uri IS NOT NULL AND p.ms_listened >= :min_ms
    AND (p.next_start IS NULL OR p.ms_listened <= {f["gap"]} + :slack)
    AND {_HELD}
)"""


def fan_plays_sql(dialect: str, *, one_listener: bool = False) -> str:
    """(listener, artist, qualified plays), sorted by listener, then artist as Python sorts it.

    Plays up to the watermark `:max_id` (the last play id the close saw).
    The daily cap applies per track and day, then the database sums each
    listener's tracks and days per artist: one row per (listener, artist),
    as many as a bare GROUP BY of the same plays returns. On SQLite the
    month is read by a table scan and sorted once for the window (NOT
    INDEXED): walking the listener index would fetch every row by random
    access instead. On PostgreSQL artists sort by code point (COLLATE "C"),
    the order `split_ints` breaks ties in.
    """
    f = _fragments(dialect)
    only = "AND listener_id = :listener_id" if one_listener else ""
    scan = "plays NOT INDEXED" if dialect == "sqlite" and not one_listener else "plays"
    artist = 'artist_uri COLLATE "C"' if dialect == "postgresql" else "artist_uri"
    return (
        _qualified_cte(dialect, scan=scan, only=only)
        + f""",
g AS (
  SELECT listener_id, artist_uri, {f["least"]}(COUNT(*), :cap) AS n
  FROM ok GROUP BY listener_id, artist_uri, track_uri, day
)
SELECT listener_id, {artist} AS artist, SUM(n) AS plays
FROM g GROUP BY listener_id, {artist} ORDER BY listener_id, {artist}
"""
    )


def _late_groups_sql(dialect: str, *, one_listener: bool = False) -> str:
    """Capped plays per (listener, artist, track, day) of listeners with plays in (lo, hi]."""
    f = _fragments(dialect)
    only = "AND listener_id = :listener_id " if one_listener else ""
    only += """AND listener_id IN (
      SELECT listener_id FROM plays
      WHERE id > :lo AND id <= :hi AND started_at >= :start AND started_at < :end
        AND origin = 'local' AND source NOT IN ('venue', 'dj') AND listener_id IS NOT NULL)"""
    return (
        _qualified_cte(dialect, scan="plays", only=only)
        + f"""
SELECT listener_id, artist_uri, track_uri, day, {f["least"]}(COUNT(*), :cap)
FROM ok GROUP BY listener_id, artist_uri, track_uri, day
"""
    )


def venue_plays_sql(*, late: bool = False) -> str:
    window = "AND p.id > :lo AND p.id <= :hi" if late else "AND p.id <= :max_id"
    return f"""
SELECT p.venue_id, p.artist_uri, COUNT(*) AS plays
FROM plays p
WHERE p.origin = 'local' AND p.source IN ('venue', 'dj') AND p.venue_id IS NOT NULL
  AND p.artist_uri IS NOT NULL AND p.started_at >= :start AND p.started_at < :end
  AND p.ms_listened >= :min_ms AND {_HELD} {window}
GROUP BY p.venue_id, p.artist_uri ORDER BY p.venue_id, p.artist_uri
"""


def _params(period: str, rules: Rules, max_id: int | None = None) -> dict:
    start, end = bounds(period)
    return {
        "start": start,
        "end": end,
        "lookahead": end + LOOKAHEAD,
        "min_ms": rules.min_ms,
        "cap": rules.daily_cap,
        "slack": OVERLAP_SLACK_MS,
        "max_id": NO_WATERMARK if max_id is None else max_id,
    }


def _typed(sql: str, names: tuple[str, ...]):
    return text(sql).bindparams(*(bindparam(n, type_=UTCDateTime) for n in names))


async def watermark(session: AsyncSession) -> int:
    """The last play id recorded: a close counts plays up to it, later ones are late."""
    return int((await session.execute(text("SELECT COALESCE(MAX(id), 0) FROM plays"))).scalar())


Batch = tuple[np.ndarray, list[str], np.ndarray]


async def fan_play_batches(
    session: AsyncSession,
    period: str,
    rules: Rules,
    *,
    max_id: int | None = None,
    chunk: int = 50_000,
) -> AsyncIterator[Batch]:
    """Qualified plays as numpy batches (listener ids, artist URIs, plays), sorted by listener
    then artist; a batch never splits one listener's rows. Streamed with a server-side cursor."""
    stmt = _typed(fan_plays_sql(session.bind.dialect.name), ("start", "end", "lookahead"))
    result = await session.stream(
        stmt, _params(period, rules, max_id), execution_options={"yield_per": chunk}
    )
    ls = np.zeros(0, dtype=np.int64)
    ws = np.zeros(0, dtype=np.int64)
    arts: list[str] = []
    first, second, third = itemgetter(0), itemgetter(1), itemgetter(2)
    async for part in result.partitions(chunk):
        n = len(part)
        ls = np.concatenate((ls, np.fromiter(map(first, part), dtype=np.int64, count=n)))
        ws = np.concatenate((ws, np.fromiter(map(third, part), dtype=np.int64, count=n)))
        arts += map(second, part)
        cut = int(np.searchsorted(ls, ls[-1]))  # the last listener waits for the next batch
        if cut:
            yield ls[:cut], arts[:cut], ws[:cut]
            ls, arts, ws = ls[cut:], arts[cut:], ws[cut:]
    if len(ls):
        yield ls, arts, ws


async def fan_plays(
    session: AsyncSession, period: str, rules: Rules, *, max_id: int | None = None
) -> AsyncIterator[tuple[int, str, int]]:
    """(listener actor id, artist URI, qualified plays), sorted by listener then artist."""
    async for ls, arts, ws in fan_play_batches(session, period, rules, max_id=max_id):
        for row in zip(ls.tolist(), arts, ws.tolist(), strict=True):
            yield row


async def listener_plays(
    session: AsyncSession,
    period: str,
    rules: Rules,
    listener_id: int,
    *,
    max_id: int | None = None,
) -> dict[str, int]:
    """One listener's qualified plays per artist in the period (exactly their part of the close)."""
    stmt = _typed(
        fan_plays_sql(session.bind.dialect.name, one_listener=True), ("start", "end", "lookahead")
    )
    params = _params(period, rules, max_id) | {"listener_id": listener_id}
    out: dict[str, int] = {}
    for _, artist, n in (await session.execute(stmt, params)).all():
        out[artist] = out.get(artist, 0) + int(n)
    return out


# ---- late plays ------------------------------------------------------------------------------
#
# A play recorded after its month closed (a device batch uploaded late, a client
# syncing offline listening) never reopens that month (DESIGN.md 7): it counts in
# the close of a later month, marked late. Each close records the last play id
# it saw (its watermark). At the close of month P, the plays of an earlier closed
# month Q with ids in (lo, hi] are late: hi is P's watermark; lo is the highest
# watermark of Q and of every later month closed since, so no play is counted by
# two closes. A late fan play counts what it adds to its own month's qualified
# plays (the same rules over everything now known, less what was known at lo):
# a late play that overlaps a counted one, or repeats a track past the day's
# cap, adds nothing.


@dataclass(frozen=True)
class LateWindow:
    period: str  # the closed month the plays belong to
    lo: int  # play ids above this ...
    hi: int  # ... up to this one are late in this close

    def as_list(self) -> list:
        return [self.period, self.lo, self.hi]


def late_windows(closed: dict[str, int], period: str, hi: int) -> list[LateWindow]:
    """The late windows of closing `period` with watermark `hi`, given the watermarks of the
    months closed before (month -> watermark; months closed without one are skipped)."""
    out = []
    for q, wq in sorted(closed.items()):
        if q >= period:
            continue
        lo = max([wq, *(w for p2, w in closed.items() if p2 > q)])
        if lo < hi:
            out.append(LateWindow(q, lo, hi))
    return out


async def late_fan_plays(
    session: AsyncSession,
    windows: list[LateWindow],
    rules: Rules,
    *,
    listener_id: int | None = None,
) -> dict[tuple[int, str], dict[str, int]]:
    """(listener, artist) -> {closed month: late plays that count} over the windows."""
    sql = _late_groups_sql(session.bind.dialect.name, one_listener=listener_id is not None)
    stmt = _typed(sql, ("start", "end", "lookahead"))
    out: dict[tuple[int, str], dict[str, int]] = {}
    for w in windows:
        base = _params(w.period, rules) | {"lo": w.lo, "hi": w.hi}
        if listener_id is not None:
            base["listener_id"] = listener_id
        then: dict[tuple, int] = {}
        for row in (await session.execute(stmt, base | {"max_id": w.lo})).all():
            then[tuple(row[:4])] = int(row[4])
        for row in (await session.execute(stmt, base | {"max_id": w.hi})).all():
            more = int(row[4]) - then.get(tuple(row[:4]), 0)
            if more > 0:
                by = out.setdefault((int(row[0]), row[1]), {})
                by[w.period] = by.get(w.period, 0) + more
    return out


async def late_venue_plays(
    session: AsyncSession, windows: list[LateWindow], rules: Rules
) -> dict[tuple[int, str], dict[str, int]]:
    """(venue id, artist) -> {closed month: late detected plays that count}."""
    stmt = _typed(venue_plays_sql(late=True), ("start", "end"))
    out: dict[tuple[int, str], dict[str, int]] = {}
    for w in windows:
        start, end = bounds(w.period)
        params = {"start": start, "end": end, "min_ms": rules.min_ms, "lo": w.lo, "hi": w.hi}
        for venue_id, artist, n in (await session.execute(stmt, params)).all():
            by = out.setdefault((int(venue_id), artist), {})
            by[w.period] = by.get(w.period, 0) + int(n)
    return out


async def venue_plays(
    session: AsyncSession, period: str, rules: Rules, *, max_id: int | None = None
) -> dict[int, dict[str, int]]:
    """Per venue id: qualified detected plays per artist URI in the period."""
    stmt = _typed(venue_plays_sql(), ("start", "end"))
    params = _params(period, rules, max_id)
    params.pop("lookahead")
    params.pop("cap")
    params.pop("slack")
    res = await session.execute(stmt, params)
    out: dict[int, dict[str, int]] = {}
    for venue_id, artist, n in res.all():
        out.setdefault(int(venue_id), {})[artist] = int(n)
    return out


async def disqualified(
    session: AsyncSession, period: str, rules: Rules, listener_id: int
) -> dict[str, int]:
    """Why a listener's plays in the period did not all count: reason -> plays (for the fan page)."""
    f = _fragments(session.bind.dialect.name)
    sql = f"""
WITH p AS (
  SELECT id, started_at, ms_listened, artist_uri,
         LEAD(started_at) OVER (PARTITION BY listener_id ORDER BY started_at, id) AS next_start
  FROM plays
  WHERE origin = 'local' AND source NOT IN ('venue', 'dj') AND listener_id = :listener_id
    AND started_at >= :start AND started_at < :lookahead
)
SELECT
  SUM(CASE WHEN p.ms_listened < :min_ms THEN 1 ELSE 0 END),
  SUM(CASE WHEN p.ms_listened >= :min_ms AND p.next_start IS NOT NULL
           AND p.ms_listened > {f["gap"]} + :slack THEN 1 ELSE 0 END),
  SUM(CASE WHEN NOT ({_HELD}) THEN 1 ELSE 0 END),
  COUNT(*)
FROM p WHERE p.started_at < :end
"""
    stmt = _typed(sql, ("start", "end", "lookahead"))
    params = _params(period, rules) | {"listener_id": listener_id}
    params.pop("cap")
    params.pop("max_id")
    short, overlap, held, total = (await session.execute(stmt, params)).one()
    return {
        "too_short": int(short or 0),
        "overlapping": int(overlap or 0),
        "held": int(held or 0),
        "total": int(total or 0),
    }


async def plays_as_closed(
    session: AsyncSession, period: str, rules: Rules, listener_id: int, stats: dict | None
) -> tuple[dict[str, int], dict[str, int]]:
    """One listener's plays per artist as the close of `period` counted them (up to its
    watermark, plus the late plays of earlier months it took in), and the late part of them.
    `stats` is the closed month's RoyaltyPeriod.stats; None or {} for an open month."""
    stats = stats or {}
    plays = await listener_plays(session, period, rules, listener_id, max_id=stats.get("watermark"))
    windows = [LateWindow(*w) for w in stats.get("late_windows") or []]
    late: dict[str, int] = {}
    if windows:
        got = await late_fan_plays(session, windows, rules, listener_id=listener_id)
        for (_, artist), by in got.items():
            late[artist] = sum(by.values())
            plays[artist] = plays.get(artist, 0) + late[artist]
    return plays, late
