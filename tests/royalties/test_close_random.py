"""Random months on a real database: the SQL close agrees with a plain-Python reading of the rules.

Seeded random worlds (fans with and without subscriptions, local and remote
artists, plays that overlap, repeat past the daily cap, are too short or are
held back) are closed by `close_period`; an independent Python reading of
the qualification rules over the same plays, fed to the same split, must
give every artist the same amount, and every cent must be accounted for.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from node.models import Play
from royalties.close import _compute, close_period, finish
from royalties.holds import hold_play
from royalties.ledger import trial_balance
from royalties.models import HeldPlay, RoyaltyLine
from royalties.qualify import OVERLAP_SLACK_MS

PERIOD = "2026-10"
START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)
AFTER = datetime(2026, 11, 3, tzinfo=UTC)


def reference_rows(plays: list[Play], held: set[int], min_ms: int, cap: int):
    """(listener, artist, plays) by the rules as written, in plain Python."""
    by_listener: dict[int, list[Play]] = defaultdict(list)
    for p in plays:
        if p.origin == "local" and p.source not in ("venue", "dj") and p.listener_id:
            if START <= p.started_at < END + timedelta(days=1):
                by_listener[p.listener_id].append(p)
    counts: dict[tuple[int, str, str, str], int] = defaultdict(int)
    for listener, ps in by_listener.items():
        ps.sort(key=lambda p: (p.started_at, p.id))
        for i, p in enumerate(ps):
            if p.started_at >= END or p.ms_listened < min_ms or p.id in held:
                continue
            if i + 1 < len(ps):
                gap = (ps[i + 1].started_at - p.started_at).total_seconds() * 1000
                if p.ms_listened > gap + OVERLAP_SLACK_MS:
                    continue
            counts[(listener, p.artist_uri, p.track_uri, p.started_at.date().isoformat())] += 1
    per: dict[tuple[int, str], int] = defaultdict(int)
    for (listener, artist, _, _), n in counts.items():
        per[(listener, artist)] += min(n, cap)
    return sorted((listener, artist, n) for (listener, artist), n in per.items())


async def _rows(rows):
    for r in rows:
        yield r


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_random_month_closes_as_the_rules_say(scene, node, seed):
    rng = random.Random(seed)
    for i in range(3):
        await scene.local_artist(f"local{i}")
    for i in range(2):
        scene.remote_artist(f"far{i}", host=f"n{i}.example")
    artists = list(scene.artists)
    fees = {}
    for i in range(6):
        fee = rng.choice([None, 499, 999, 1001])
        await scene.fan(f"fan{i}", fee=fee)
        fees[f"fan{i}"] = fee
    for i in range(6):
        t = START + timedelta(hours=rng.randint(0, 24 * 30))
        for _ in range(rng.randint(5, 40)):
            artist = rng.choice(artists)
            burst = 12 if rng.random() < 0.1 else 1  # loops past the daily cap
            ms = rng.choice([5_000, 29_000, 30_000, 120_000, 240_000])
            gap = ms + rng.randint(-90_000, 600_000)  # some overlap the next play
            await scene.play(f"fan{i}", artist, track=f"t{rng.randint(0, 2)}", at=t, ms=ms,
                             gap_ms=max(0, gap), times=burst)  # fmt: skip
            t = scene.clock[scene.fans[f"fan{i}"].actor_id]
    async with node.ctx.db.transaction() as s:
        ids = list((await s.scalars(select(Play.id))).all())
        for pid in rng.sample(ids, k=min(5, len(ids))):
            await hold_play(s, pid, "random hold", "admin")

    summary = await close_period(node.ctx, PERIOD, now=AFTER)

    async with node.ctx.db.read_session() as s:
        plays = list((await s.scalars(select(Play))).all())
        held = set((await s.scalars(select(HeldPlay.play_id))).all())
        lines = {
            ln.artist_uri: ln
            for ln in (await s.scalars(select(RoyaltyLine).where(RoyaltyLine.period == PERIOD)))
        }
        assert await trial_balance(s) in ({}, {"USD": 0})
    rows = reference_rows(plays, held, 30_000, int(node.settings.royalties.daily_track_cap))
    # the rules did drop plays (short, overlapping, capped, held), or the test proves little
    assert 0 < sum(n for _, _, n in rows) < len(plays)
    actor_fees = {
        scene.fans[f].actor_id: {"USD": fee} for f, fee in fees.items() if fee is not None
    }
    curs = await _compute(_rows(rows), actor_fees, 1000, 500, None)
    finish(curs, zero_play_to="foundation")
    expected = curs.get("USD")
    if expected is None:
        assert not lines
        return
    got = {a: (ln.amount_minor, ln.plays, ln.listeners) for a, ln in lines.items()}
    want = {
        a: (expected.amount.get(a, 0), expected.plays.get(a, 0), expected.listeners.get(a, 0))
        for a in set(expected.amount) | set(expected.pro_rata)
    }
    assert got == want
    usd = summary.totals["USD"]
    parts = usd["artists_local"] + usd["artists_remote"] + usd["node_share"] + usd["foundation"]
    assert parts == usd["collected"] == sum(f for f in fees.values() if f)
