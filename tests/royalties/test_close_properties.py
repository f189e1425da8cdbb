"""For any subscribers, artists and plays, every cent of every fee is accounted for.

The close's arithmetic (royalties.close `_compute`, `_venues`, `finish`, `book`)
runs here on random inputs without a database; test_close.py runs the same
code end to end on real databases.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from royalties.close import _compute, _venues, book, finish, split_groups
from royalties.ledger import check_balanced
from royalties.money import split_ints

BASE = "https://home.example/"
ARTISTS = [f"https://home.example/actors/a{i}" for i in range(4)] + [
    f"https://n{j}.example/actors/b{i}" for j in range(3) for i in range(2)
]


async def _rows(rows):
    for r in rows:
        yield r


@st.composite
def worlds(draw):
    n_subs = draw(st.integers(0, 12))
    fees = {}
    for sub in range(1, n_subs + 1):
        cur = draw(st.sampled_from(["USD", "JPY", "KWD"]))
        fees[sub] = {cur: draw(st.integers(-2000, 50_000))}
    plays = {}
    for listener in range(1, n_subs + 4):  # some listeners are not subscribers
        chosen = draw(st.lists(st.sampled_from(ARTISTS), unique=True, max_size=5))
        for a in chosen:
            plays[(listener, a)] = draw(st.integers(1, 40))
    licences = [
        (vid, f"venue-{vid}", draw(st.integers(1, 100_000)), draw(st.sampled_from(["USD", "JPY"])))
        for vid in range(draw(st.integers(0, 3)))
    ]
    venue_plays = {
        vid: {
            a: draw(st.integers(1, 9)) for a in draw(st.lists(st.sampled_from(ARTISTS), max_size=3))
        }
        for vid, *_ in licences
    }
    node_bps = draw(st.integers(0, 5000))
    found_bps = draw(st.integers(0, 10_000 - node_bps))
    zero = draw(st.sampled_from(["foundation", "pro_rata"]))
    return fees, plays, licences, venue_plays, node_bps, found_bps, zero


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_artists_plus_node_plus_foundation_equals_collected(world):
    fees, plays, licences, venue_plays, node_bps, found_bps, zero = world
    rows = sorted((listener, a, n) for (listener, a), n in plays.items())
    curs = asyncio.run(_compute(_rows(rows), fees, node_bps, found_bps, None))
    _venues(curs, licences, venue_plays, node_bps, found_bps)
    finish(curs, zero_play_to=zero)

    collected = defaultdict(int)
    for by_cur in fees.values():
        for cur, amount in by_cur.items():
            collected[cur] += amount
    for _, _, fee, cur in licences:
        collected[cur] += fee
    for cur, acc in curs.items():
        b = book("2026-10", cur, acc, BASE)
        artists = b.local_total + b.remote_total
        assert artists + acc.node + acc.foundation == collected[cur]
        assert not check_balanced(b.ledger), check_balanced(b.ledger)
        assert sum(p["amount_minor"] for p in b.payables) == b.remote_total
        # money only reaches artists someone played (here or at a venue)
        played = {a for (_, a) in plays} | {a for v in venue_plays.values() for a in v}
        assert {ln["artist_uri"] for ln in b.lines if ln["amount_minor"]} <= played
        # the pro-rata comparison splits the same pools
        if acc.pro_rata:
            assert sum(acc.pro_rata.values()) == acc.pools
        assert all(ln["amount_minor"] >= 0 for ln in b.lines)


@settings(max_examples=200, deadline=None)
@given(
    fee=st.integers(1, 10**7),
    weights=st.lists(st.integers(1, 1000), min_size=1, max_size=8),
)
def test_one_subscriber_pays_only_the_artists_they_played_in_proportion(fee, weights):
    artists = ARTISTS[: len(weights)]
    rows = [(1, a, w) for a, w in sorted(zip(artists, weights, strict=False))]
    curs = asyncio.run(_compute(_rows(rows), {1: {"USD": fee}}, 1000, 500, None))
    acc = curs["USD"]
    pool = fee - fee * 1000 // 10_000 - fee * 500 // 10_000
    assert sum(acc.amount.values()) == pool
    total_w = sum(weights)
    for a, w in zip(artists, weights, strict=False):
        assert abs(acc.amount[a] * total_w - pool * w) < total_w


@settings(max_examples=300, deadline=None)
@given(
    groups=st.lists(
        st.tuples(
            st.integers(0, 10**9),
            st.lists(st.integers(1, 10**6), min_size=1, max_size=7),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_the_batched_split_is_split_ints_for_every_subscriber(groups):
    # every listener's pool, split for all listeners at once, is exactly split_ints of it
    pools = np.array([g[0] for g in groups], dtype=np.int64)
    weights = np.array([w for g in groups for w in g[1]], dtype=np.int64)
    starts = np.cumsum([0] + [len(g[1]) for g in groups[:-1]]).astype(np.int64)
    parts = split_groups(pools, starts, weights).tolist()
    at = 0
    for pool, ws in groups:
        keys = [f"k{i:02d}" for i in range(len(ws))]
        assert parts[at : at + len(ws)] == split_ints(pool, ws, keys)
        at += len(ws)
