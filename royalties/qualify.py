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

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from node.models import UTCDateTime

from .periods import bounds

OVERLAP_SLACK_MS = 2000
# The next play that bounds a play's length may start after the month ends.
LOOKAHEAD = timedelta(days=1)
VENUE_SOURCES = ("venue", "dj")


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


def fan_plays_sql(dialect: str, *, one_listener: bool = False) -> str:
    """(listener, artist, capped plays) per track and day, sorted by listener and artist.

    The last step (summing a listener's tracks and days per artist) is left
    to the caller, which reads the rows in that order anyway: one sort fewer
    in the database. On SQLite the whole month is read by a table scan and
    sorted once for the window (NOT INDEXED): walking the listener index
    would fetch every row by random access instead.
    """
    f = _fragments(dialect)
    only = "AND listener_id = :listener_id" if one_listener else ""
    scan = "plays NOT INDEXED" if dialect == "sqlite" and not one_listener else "plays"
    return f"""
WITH p AS (
  SELECT id, listener_id, track_uri, artist_uri, started_at, ms_listened,
         LEAD(started_at) OVER (PARTITION BY listener_id ORDER BY started_at, id) AS next_start
  FROM {scan}
  WHERE origin = 'local' AND source NOT IN ('venue', 'dj') AND listener_id IS NOT NULL
    AND started_at >= :start AND started_at < :lookahead {only}
),
ok AS (
  SELECT p.listener_id, p.artist_uri, p.track_uri, {f["day"]} AS day
  FROM p
  WHERE p.started_at < :end AND p.artist_uri IS NOT NULL AND p.ms_listened >= :min_ms
    AND (p.next_start IS NULL OR p.ms_listened <= {f["gap"]} + :slack)
    AND {_HELD}
)
SELECT listener_id, artist_uri, {f["least"]}(COUNT(*), :cap) AS plays
FROM ok GROUP BY listener_id, artist_uri, track_uri, day
ORDER BY listener_id, artist_uri, track_uri, day
"""


def venue_plays_sql() -> str:
    return f"""
SELECT p.venue_id, p.artist_uri, COUNT(*) AS plays
FROM plays p
WHERE p.origin = 'local' AND p.source IN ('venue', 'dj') AND p.venue_id IS NOT NULL
  AND p.artist_uri IS NOT NULL AND p.started_at >= :start AND p.started_at < :end
  AND p.ms_listened >= :min_ms AND {_HELD}
GROUP BY p.venue_id, p.artist_uri ORDER BY p.venue_id, p.artist_uri
"""


def _params(period: str, rules: Rules) -> dict:
    start, end = bounds(period)
    return {
        "start": start,
        "end": end,
        "lookahead": end + LOOKAHEAD,
        "min_ms": rules.min_ms,
        "cap": rules.daily_cap,
        "slack": OVERLAP_SLACK_MS,
    }


def _typed(sql: str, names: tuple[str, ...]):
    return text(sql).bindparams(*(bindparam(n, type_=UTCDateTime) for n in names))


async def fan_plays(
    session: AsyncSession, period: str, rules: Rules, *, chunk: int = 20_000
) -> AsyncIterator[tuple[int, str, int]]:
    """(listener actor id, artist URI, qualified plays), sorted by listener then artist."""
    stmt = _typed(fan_plays_sql(session.bind.dialect.name), ("start", "end", "lookahead"))
    result = await session.stream(
        stmt, _params(period, rules), execution_options={"yield_per": chunk}
    )
    key: tuple[int, str] | None = None
    total = 0
    async for part in result.partitions(chunk):
        for listener_id, artist_uri, plays in part:
            if key is not None and key[0] == listener_id and key[1] == artist_uri:
                total += plays
                continue
            if key is not None:
                yield int(key[0]), key[1], int(total)
            key, total = (listener_id, artist_uri), plays
    if key is not None:
        yield int(key[0]), key[1], int(total)


async def listener_plays(
    session: AsyncSession, period: str, rules: Rules, listener_id: int
) -> dict[str, int]:
    """One listener's qualified plays per artist in the period (exactly their part of the close)."""
    stmt = _typed(
        fan_plays_sql(session.bind.dialect.name, one_listener=True), ("start", "end", "lookahead")
    )
    params = _params(period, rules) | {"listener_id": listener_id}
    out: dict[str, int] = {}
    for _, artist, n in (await session.execute(stmt, params)).all():
        out[artist] = out.get(artist, 0) + int(n)
    return out


async def venue_plays(
    session: AsyncSession, period: str, rules: Rules
) -> dict[int, dict[str, int]]:
    """Per venue id: qualified detected plays per artist URI in the period."""
    stmt = _typed(venue_plays_sql(), ("start", "end"))
    params = _params(period, rules)
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
    short, overlap, held, total = (await session.execute(stmt, params)).one()
    return {
        "too_short": int(short or 0),
        "overlapping": int(overlap or 0),
        "held": int(held or 0),
        "total": int(total or 0),
    }
