"""Closing a period: where each subscriber's fee goes, to the minor unit (DESIGN.md 7, issue 5.5).

`close_period(ctx, "YYYY-MM")`, per currency:

1. Fees. What each subscriber paid for the period, net of refunds of those
   payments. The node's share and the foundation's share (basis points,
   rounded down) come off each fee; the rest is that subscriber's pool. A
   refund booked in the period of an earlier month's fee is taken back from
   whoever that fee paid (refunds.py): negative `refund` lines for its
   artists, less node and foundation share.
2. UCPS. Each subscriber's pool is split among the artists that subscriber
   played, by qualified plays (qualify.py), with `split_ints` (the integer
   core of `allocate`). A subscriber who played nothing funds the
   foundation (or, with `royalties.zero_play_to = pro_rata`, every artist
   by plays).
3. Pro-rata, for comparison only: the same pools summed, split over all
   those plays. Stored per artist, never paid.
4. Venues. Each venue's licence fee, less the same shares, is split over
   that venue's qualified detected plays (to the foundation when none).
5. Booking. One balanced ledger transaction per currency: subscriptions
   and venue fees debited; node share, foundation, local artists and one
   payable per creditor node credited. Remote artists' amounts are stored
   as payables (period, node, artist, currency: plays, listeners, amount),
   the lines of the statements the clearing protocol sends, and
   `royalties.period_closed` is emitted in the same transaction.

The plays are qualified and summed per (listener, artist) in SQL and
streamed sorted by listener in batches that never split a listener; each
batch is split for all its listeners at once with integer numpy arithmetic
(`split_groups`, exactly `split_ints`) and summed per artist, so memory
holds one batch plus one accumulator per artist.

Late plays: the close counts plays up to the last play id it saw (its
watermark, kept in the period's stats). Plays of an earlier closed month
recorded after that month's close count in this one, marked late
(qualify.py: LateWindow), and the report shows them.

The computation reads a snapshot; the write transaction then checks that
the period's payments did not change meanwhile, and the unique period row
makes a second close (or a concurrent one) change nothing.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

import numpy as np
from sqlalchemy import func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from node.context import NodeContext
from node.models import Account, Venue, utcnow

from .errors import BadPeriod, RoyaltiesError
from .ledger import Line, post
from .models import (
    RoyaltyLine,
    RoyaltyPayable,
    RoyaltyPeriod,
    RoyaltyTotal,
    SubscriptionPayment,
    VenueLicence,
)
from .money import Money, split_ints
from .periods import has_ended, parse_period
from .qualify import (
    Batch,
    Rules,
    fan_play_batches,
    late_fan_plays,
    late_venue_plays,
    late_windows,
    venue_plays,
    watermark,
)
from .refunds import clawbacks

Progress = Callable[[int, int], None]


class PaymentsChanged(RoyaltiesError):
    status = 409
    type_slug = "close-retry"
    title = "Payments changed while the period was being closed; close it again"


def node_of(artist_uri: str) -> str:
    """The actor URI of the node an artist lives on (nycmg nodes answer at /actor)."""
    parts = urlsplit(artist_uri)
    return f"{parts.scheme}://{parts.netloc}/actor"


@dataclass
class _Cur:
    """Running totals of one currency during a close."""

    collected: int = 0
    refunds: int = 0
    node: int = 0
    foundation: int = 0
    pools: int = 0
    zero_pool: int = 0
    subscribers: int = 0
    zero_play: int = 0
    plays_total: int = 0
    amount: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    plays: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    listeners: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    pro_rata: dict[str, int] = field(default_factory=dict)
    # (venue uuid, venue id) -> fee; (venue id, artist) -> (plays, amount)
    venue_fees: dict[tuple[str, int], int] = field(default_factory=dict)
    venue_lines: dict[tuple[int, str], tuple[int, int]] = field(default_factory=dict)
    # artist -> what refunds of earlier months' fees take back from them (refunds.py)
    clawback: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CloseSummary:
    period: str
    already_closed: bool
    totals: dict[str, dict[str, int]]
    closed_at: datetime | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    late: dict = field(default_factory=dict)


def _shares(net: int, node_bps: int, found_bps: int) -> tuple[int, int, int]:
    """(node, foundation, pool) of one positive fee; shares round down."""
    node = net * node_bps // 10_000
    found = net * found_bps // 10_000
    return node, found, net - node - found


async def _fees(
    session: AsyncSession, period: str, *, account_id: int | None = None
) -> dict[int, dict[str, int]]:
    """actor id -> currency -> what was paid for the period, net of refunds of those same
    payments booked in it (refunds of other months' fees are clawbacks: refunds.py)."""
    paid = aliased(SubscriptionPayment)
    res = await session.execute(
        select(
            Account.actor_id,
            SubscriptionPayment.currency,
            func.sum(SubscriptionPayment.amount_minor),
        )
        .join(Account, Account.id == SubscriptionPayment.account_id)
        .outerjoin(paid, paid.id == SubscriptionPayment.refunds_id)
        .where(
            SubscriptionPayment.period == period,
            or_(SubscriptionPayment.refunds_id.is_(None), paid.period == period),
            *([] if account_id is None else [SubscriptionPayment.account_id == account_id]),
        )
        .group_by(Account.actor_id, SubscriptionPayment.currency)
    )
    fees: dict[int, dict[str, int]] = defaultdict(dict)
    for actor_id, cur, total in res.all():
        fees[int(actor_id)][cur] = int(total)
    return fees


async def _fingerprint(session: AsyncSession, period: str) -> tuple[int, int]:
    res = await session.execute(
        select(func.count(), func.coalesce(func.sum(SubscriptionPayment.amount_minor), 0)).where(
            SubscriptionPayment.period == period
        )
    )
    n, total = res.one()
    return int(n), int(total)


async def summary(session: AsyncSession, period: str) -> CloseSummary | None:
    """What a closed period's close recorded (None while it is open)."""
    row = (
        await session.execute(select(RoyaltyPeriod).where(RoyaltyPeriod.period == period))
    ).scalar_one_or_none()
    if row is None:
        return None
    res = await session.execute(
        select(RoyaltyTotal).where(RoyaltyTotal.period == period).order_by(RoyaltyTotal.currency)
    )
    totals = {t.currency: _total_dict(t) for t in res.scalars().all()}
    stats = row.stats or {}
    return CloseSummary(
        period,
        True,
        totals,
        row.closed_at,
        stats.get("seconds") or {},
        stats.get("cpu_seconds") or {},
        stats.get("late") or {},
    )


def _total_dict(t: RoyaltyTotal) -> dict[str, int]:
    return {
        "collected": t.collected_minor,
        "refunds": t.refunds_minor,
        "node_share": t.node_share_minor,
        "foundation": t.foundation_minor,
        "artists_local": t.artists_local_minor,
        "artists_remote": t.artists_remote_minor,
        "venue_fees": t.venue_fees_minor,
        "subscribers": t.subscribers,
        "zero_play_subscribers": t.zero_play_subscribers,
        "qualified_plays": t.qualified_plays,
    }


async def close_period(
    ctx: NodeContext,
    period: str,
    *,
    closed_by: str = "",
    progress: Progress | None = None,
    now: datetime | None = None,
) -> CloseSummary:
    """Close a month that has ended. Closing a closed month changes nothing."""
    parse_period(period)
    if not has_ended(period, now or utcnow()):
        raise BadPeriod(f"{period} has not ended yet; a month is closed after its last day")
    async with ctx.db.read_session() as s:
        done = await summary(s, period)
    if done is not None:
        return done
    r = ctx.settings.royalties
    node_bps, found_bps = int(r.node_share_bps), int(r.foundation_share_bps)
    if node_bps < 0 or found_bps < 0 or node_bps + found_bps > 10_000:
        raise BadPeriod("node_share_bps + foundation_share_bps must be within 0..10000")
    rules = Rules.from_settings(ctx.settings)
    base = ctx.settings.base_url.rstrip("/") + "/"

    # Seconds per phase, kept in the period's stats (the benchmark reports them).
    phases: dict[str, float] = {}
    cpu: dict[str, float] = {}  # process CPU seconds (the database driver's thread too)
    tick, tock = time.perf_counter(), time.process_time()

    def lap(name: str) -> None:
        nonlocal tick, tock
        now_, cpu_ = time.perf_counter(), time.process_time()
        phases[name] = round(now_ - tick, 3)
        cpu[name] = round(cpu_ - tock, 3)
        tick, tock = now_, cpu_

    async with ctx.db.read_session() as s:
        fingerprint = await _fingerprint(s, period)
        fees = await _fees(s, period)
        hi = await watermark(s)
        windows = late_windows(await _watermarks(s), period, hi)
        late_fan = await late_fan_plays(s, windows, rules) if windows else {}
        late_venue = await late_venue_plays(s, windows, rules) if windows else {}
        lap("fees_and_late_plays")
        batches = fan_play_batches(s, period, rules, max_id=hi)
        if late_fan:
            batches = _with_late(batches, late_fan)
        curs = await _compute_batches(batches, fees, node_bps, found_bps, progress)
        lap("plays_and_ucps")
        licences = await _licences(s)
        if licences:
            by_venue = await venue_plays(s, period, rules, max_id=hi)
            for (venue_id, artist), by in late_venue.items():
                v = by_venue.setdefault(venue_id, {})
                v[artist] = v.get(artist, 0) + sum(by.values())
            _venues(curs, licences, by_venue, node_bps, found_bps)
        lap("venues")
        for cur, claw in (await clawbacks(s, period, rules, node_bps, found_bps)).items():
            acc = curs.get(cur) or curs.setdefault(cur, _Cur())
            acc.collected -= claw.amount
            acc.refunds -= claw.amount
            acc.node -= claw.node
            acc.foundation -= claw.foundation
            acc.clawback = claw.artists
        lap("refunds")
    finish(curs, zero_play_to=r.zero_play_to)
    if not curs:
        curs[Money.zero(r.currency).currency] = _Cur()
    late = _late_stats(late_fan, late_venue, fees, {v for v, *_ in licences} if licences else set())

    try:
        async with ctx.db.transaction() as s:
            if await summary(s, period) is not None:
                return await summary(s, period)  # type: ignore[return-value]
            if await _fingerprint(s, period) != fingerprint:
                raise PaymentsChanged(f"payments for {period} changed during the close")
            closed_at = utcnow()
            stats: dict = {c: {"subscribers": a.subscribers} for c, a in curs.items()}
            stats["seconds"] = phases
            stats["cpu_seconds"] = cpu
            # what the next close needs to tell late plays from counted ones (qualify.py)
            stats["watermark"] = hi
            stats["late_windows"] = [w.as_list() for w in windows]
            stats["late"] = late
            s.add(
                RoyaltyPeriod(
                    period=period, closed_at=closed_at, closed_by=closed_by[:64], stats=stats
                )
            )
            await s.flush()
            totals = {}
            for cur, acc in sorted(curs.items()):
                totals[cur] = await _book(s, period, cur, acc, base)
            lap("book")
            for cur in sorted(curs):
                await ctx.bus.emit(s, "royalties.period_closed", period=period, currency=cur)
            lap("subscribers_of_period_closed")
    except IntegrityError:
        # Someone else closed it between our check and our insert: theirs stands.
        async with ctx.db.read_session() as s:
            done = await summary(s, period)
        if done is None:
            raise
        return done
    return CloseSummary(period, False, totals, closed_at, phases, cpu, late)


async def period_stats(session: AsyncSession, period: str) -> dict | None:
    """What a closed month's close recorded beside its totals (None while it is open)."""
    res = await session.execute(select(RoyaltyPeriod.stats).where(RoyaltyPeriod.period == period))
    row = res.first()
    return None if row is None else dict(row[0] or {})


async def _watermarks(session: AsyncSession) -> dict[str, int]:
    """Closed month -> the last play id its close counted (months closed before watermarks
    were recorded have none: their late plays are not looked for)."""
    res = await session.execute(select(RoyaltyPeriod.period, RoyaltyPeriod.stats))
    out = {}
    for p, stats in res.all():
        w = (stats or {}).get("watermark")
        if isinstance(w, int):
            out[p] = w
    return out


async def _with_late(
    batches: AsyncIterator[Batch], late: dict[tuple[int, str], dict[str, int]]
) -> AsyncIterator[Batch]:
    """Add late plays to the month's rows: a listener with late plays gets their rows merged
    (moved to the end of their batch, still sorted by artist); listeners with only late
    plays come in one last batch."""
    extra: dict[int, dict[str, int]] = {}
    for (listener, artist), by in late.items():
        extra.setdefault(listener, {})[artist] = sum(by.values())

    def add_rows(ls: list[int], arts: list[str], ws: list[int], listener: int, mine: dict) -> None:
        for a in sorted(mine):
            ls.append(listener)
            arts.append(a)
            ws.append(mine[a])

    async for listeners, artists, w in batches:
        hit = np.isin(listeners, np.fromiter(extra, dtype=np.int64, count=len(extra)))
        if not hit.any():
            yield listeners, artists, w
            continue
        keep = np.flatnonzero(~hit)
        ls, arts, ws = listeners[keep].tolist(), [artists[i] for i in keep], w[keep].tolist()
        merged: dict[int, dict[str, int]] = {}
        for i in np.flatnonzero(hit).tolist():
            mine = merged.setdefault(int(listeners[i]), dict(extra[int(listeners[i])]))
            mine[artists[i]] = mine.get(artists[i], 0) + int(w[i])
        for listener, mine in merged.items():
            del extra[listener]
            add_rows(ls, arts, ws, listener, mine)
        yield np.array(ls, dtype=np.int64), arts, np.array(ws, dtype=np.int64)
    if extra:
        ls, arts, ws = [], [], []
        for listener in sorted(extra):
            add_rows(ls, arts, ws, listener, extra[listener])
        yield np.array(ls, dtype=np.int64), arts, np.array(ws, dtype=np.int64)


def _late_stats(
    late_fan: dict[tuple[int, str], dict[str, int]],
    late_venue: dict[tuple[int, str], dict[str, int]],
    fees: dict[int, dict[str, int]],
    venues: set[int],
) -> dict:
    """What the transparency report shows of late plays: how many counted in this close, from
    which closed months, and for which artists (subscribers' and licensed venues' only)."""
    by_period: dict[str, int] = defaultdict(int)
    by_artist: dict[str, int] = defaultdict(int)

    def count(late: dict[tuple[int, str], dict[str, int]], counts: Callable[[int], bool]) -> int:
        total = 0
        for (who, artist), by in late.items():
            if counts(who):
                for q, n in by.items():
                    by_period[q] += n
                    by_artist[artist] += n
                    total += n
        return total

    fan = count(late_fan, lambda listener: any(v > 0 for v in fees.get(listener, {}).values()))
    venue = count(late_venue, venues.__contains__)
    return {
        "fan_plays": fan,
        "venue_plays": venue,
        "from_periods": dict(sorted(by_period.items())),
        "artists": dict(sorted(by_artist.items())),
    }


# Above this a fee times a weight could overflow int64: such batches take the Python path.
_INT64_SAFE = 2**62


async def _batches(rows: AsyncIterator[tuple[int, str, int]], size: int = 50_000):
    """(listener, artist, plays) rows, sorted by listener then artist, as batches that never
    split a listener's rows (tests and small callers feed rows; the close feeds batches)."""
    ls: list[int] = []
    arts: list[str] = []
    ws: list[int] = []
    async for listener, artist, n in rows:
        if len(ls) >= size and listener != ls[-1]:
            yield np.array(ls, dtype=np.int64), arts, np.array(ws, dtype=np.int64)
            ls, arts, ws = [], [], []
        ls.append(listener)
        arts.append(artist)
        ws.append(n)
    if ls:
        yield np.array(ls, dtype=np.int64), arts, np.array(ws, dtype=np.int64)


def split_groups(pools: np.ndarray, starts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """`split_ints` for many groups at once: group g (rows starts[g]..starts[g+1]) splits
    pools[g] by its weights; ties go to the earlier row (rows come sorted by key).

    Integer numpy arithmetic, exactly `split_ints` (largest remainder), asserted to add up.
    """
    n = len(weights)
    counts = np.diff(np.append(starts, n))
    group = np.repeat(np.arange(len(starts)), counts)
    tot = np.add.reduceat(weights, starts)
    prod = pools[group] * weights
    base, rem = np.divmod(prod, tot[group])
    left = pools - np.add.reduceat(base, starts)
    pos = np.arange(n) - starts[group]
    order = np.lexsort((pos, -rem, group))  # by group, largest remainder, then key
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n) - starts[group[order]]
    parts = base + (rank < left[group])
    assert int(parts.sum()) == int(pools.sum()), "allocation leaks"
    return parts


class _Acc:
    """One currency's per-artist sums during the UCPS pass (numpy, grown as artists appear)."""

    def __init__(self, acc: _Cur, ids: np.ndarray, pools: np.ndarray) -> None:
        self.cur = acc
        self.ids, self.pools = ids, pools  # subscribers with a positive fee, sorted by id
        self.played = np.zeros(len(ids), dtype=bool)
        self.amount = np.zeros(0, dtype=np.int64)
        self.plays = np.zeros(0, dtype=np.int64)
        self.listeners = np.zeros(0, dtype=np.int64)
        self.max_pool = int(pools.max()) if len(pools) else 0

    def add(self, listeners: np.ndarray, art: np.ndarray, w: np.ndarray, n_art: int) -> None:
        if not len(self.ids):
            return
        at = np.searchsorted(self.ids, listeners)
        at[at >= len(self.ids)] = 0
        mine = self.ids[at] == listeners
        if not mine.any():
            return
        at, art, w, listeners = at[mine], art[mine], w[mine], listeners[mine]
        starts = np.flatnonzero(np.concatenate(([True], listeners[1:] != listeners[:-1])))
        self.played[at[starts]] = True
        pools = self.pools[at[starts]]
        if self.max_pool * int(w.max()) < _INT64_SAFE:
            parts = split_groups(pools, starts, w)
        else:  # astronomically large fees: exact Python integers
            bounds = [*starts.tolist(), len(w)]
            keys = [str(i) for i in range(len(w))]  # rows already sorted by artist
            out: list[int] = []
            for g, pool in enumerate(pools.tolist()):
                lo, hi = bounds[g], bounds[g + 1]
                out += split_ints(pool, w[lo:hi].tolist(), keys[lo:hi])
            parts = np.array(out, dtype=object)
        if len(self.amount) < n_art:
            grow = n_art - len(self.amount)
            self.amount = np.concatenate((self.amount, np.zeros(grow, dtype=np.int64)))
            self.plays = np.concatenate((self.plays, np.zeros(grow, dtype=np.int64)))
            self.listeners = np.concatenate((self.listeners, np.zeros(grow, dtype=np.int64)))
        if parts.dtype == object:
            for a, part in zip(art.tolist(), parts.tolist(), strict=True):
                self.amount[a] += part
        else:
            np.add.at(self.amount, art, parts)
        np.add.at(self.plays, art, w)
        np.add.at(self.listeners, art, 1)
        self.cur.plays_total += int(w.sum())

    def done(self, names: list[str]) -> None:
        acc = self.cur
        for i in np.flatnonzero(self.listeners).tolist():
            a = names[i]
            acc.amount[a] += int(self.amount[i])
            acc.plays[a] += int(self.plays[i])
            acc.listeners[a] += int(self.listeners[i])
        acc.zero_play += int((~self.played).sum())
        acc.zero_pool += int(self.pools[~self.played].sum())


async def _compute(
    rows: AsyncIterator[tuple[int, str, int]],
    fees: dict[int, dict[str, int]],
    node_bps: int,
    found_bps: int,
    progress: Progress | None,
) -> dict[str, _Cur]:
    """The UCPS pass over (listener, artist, plays) rows (tests feed rows; see _compute_batches)."""
    return await _compute_batches(_batches(rows), fees, node_bps, found_bps, progress)


async def _compute_batches(
    batches: AsyncIterator[Batch],
    fees: dict[int, dict[str, int]],
    node_bps: int,
    found_bps: int,
    progress: Progress | None,
) -> dict[str, _Cur]:
    """Shares off each fee, then each subscriber's pool split over the artists they played.

    Rows arrive in batches sorted by listener, then artist (the tie-break order of
    `split_ints`); a batch never splits a listener. Each batch is split for every
    listener at once (`split_groups`) and summed per artist in numpy.
    """
    curs: dict[str, _Cur] = {}
    subs: dict[str, tuple[list[int], list[int]]] = {}
    for actor_id, by_cur in fees.items():
        for cur, net in by_cur.items():
            acc = curs.get(cur) or curs.setdefault(cur, _Cur())
            acc.collected += net
            if net <= 0:
                acc.refunds += net
                acc.node += net  # refunds of closed fees are the node's to carry
                continue
            node, found, pool = _shares(net, node_bps, found_bps)
            acc.node += node
            acc.foundation += found
            acc.pools += pool
            acc.subscribers += 1
            ids, pools = subs.setdefault(cur, ([], []))
            ids.append(actor_id)
            pools.append(pool)
    accs: list[_Acc] = []
    for cur, (ids, pools) in sorted(subs.items()):
        id_arr = np.array(ids, dtype=np.int64)
        order = np.argsort(id_arr, kind="stable")
        accs.append(
            _Acc(
                curs[cur],
                id_arr[order],
                np.array(pools, dtype=object if max(pools) >= _INT64_SAFE else np.int64)[order]
                if pools
                else np.zeros(0, dtype=np.int64),
            )
        )
    total_subs = sum(1 for by in fees.values() if any(v > 0 for v in by.values()))
    index: dict[str, int] = {}
    names: list[str] = []
    seen = 0
    async for listeners, artists, w in batches:
        new = set(artists).difference(index)
        for a in sorted(new):
            index[a] = len(names)
            names.append(a)
        art = np.fromiter(map(index.__getitem__, artists), dtype=np.int64, count=len(artists))
        for a in accs:
            a.add(listeners, art, w, len(names))
        if progress is not None:
            seen += int(np.count_nonzero(np.diff(listeners))) + 1 if len(listeners) else 0
            progress(min(seen, total_subs), total_subs)
    for a in accs:
        a.done(names)
    for acc in curs.values():
        if acc.plays_total and acc.pools:
            keys = sorted(acc.plays)
            parts = split_ints(acc.pools, [acc.plays[k] for k in keys], keys)
            acc.pro_rata = dict(zip(keys, parts, strict=True))
    if progress is not None:
        progress(total_subs, total_subs)
    return curs


def _spread(acc: _Cur, amount: int) -> None:
    """Zero-play money spread over every artist by plays (`zero_play_to = pro_rata`)."""
    keys = sorted(acc.plays)
    for k, part in zip(keys, split_ints(amount, [acc.plays[k] for k in keys], keys), strict=True):
        acc.amount[k] += part


def finish(curs: dict[str, _Cur], *, zero_play_to: str) -> None:
    """Zero-play subscribers' pools: to the foundation, or spread over artists by plays."""
    for acc in curs.values():
        if zero_play_to == "pro_rata" and acc.zero_pool and acc.plays_total:
            _spread(acc, acc.zero_pool)
        else:
            acc.foundation += acc.zero_pool
        acc.zero_pool = 0


Licence = tuple[int, str, int, str]  # venue id, venue uuid, fee, currency


async def _licences(session: AsyncSession) -> list[Licence]:
    res = await session.execute(
        select(VenueLicence.venue_id, Venue.uuid, VenueLicence.amount_minor, VenueLicence.currency)
        .join(Venue, Venue.id == VenueLicence.venue_id)
        .where(VenueLicence.amount_minor > 0)
        .order_by(VenueLicence.venue_id)
    )
    return [(int(v), u, int(f), c) for v, u, f, c in res.all()]


def _venues(
    curs: dict[str, _Cur],
    licences: list[Licence],
    plays_by_venue: dict[int, dict[str, int]],
    node_bps: int,
    found_bps: int,
) -> None:
    """Each venue's fee, less the shares, split over that venue's plays (foundation if none)."""
    for venue_id, venue_uuid, fee, cur in licences:
        acc = curs.get(cur) or curs.setdefault(cur, _Cur())
        node, found, pool = _shares(fee, node_bps, found_bps)
        acc.venue_fees[(venue_uuid, venue_id)] = fee
        acc.node += node
        acc.foundation += found
        plays = plays_by_venue.get(venue_id) or {}
        if not plays:
            acc.foundation += pool
            continue
        keys = sorted(plays)
        parts = split_ints(pool, [plays[k] for k in keys], keys)
        for k, part in zip(keys, parts, strict=True):
            acc.venue_lines[(venue_id, k)] = (plays[k], part)


def _credit(account: str, signed: int, cur: str) -> Line:
    """A credit of `signed` minor units (a debit when negative)."""
    m = Money(abs(signed), cur)
    return Line(account, credit=m) if signed >= 0 else Line(account, debit=m)


@dataclass
class Booking:
    """What one currency's close writes: lines, payables, ledger lines and totals."""

    lines: list[dict]
    payables: list[dict]
    ledger: list[Line]
    local_total: int
    remote_total: int
    venue_total: int


def book(period: str, cur: str, acc: _Cur, base: str) -> Booking:
    """Turn a currency's totals into rows and ledger lines; asserts nothing leaks."""
    lines_rows: list[dict] = []
    # artist -> [plays, listeners, amount] over UCPS and venues: the ledger and payables
    owed: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])

    def line(artist: str, kind: str, venue_id, plays, listeners, amount, pro_rata) -> None:
        lines_rows.append(
            {
                "period": period,
                "currency": cur,
                "artist_uri": artist,
                "node_uri": None if artist.startswith(base) else node_of(artist),
                "kind": kind,
                "venue_id": venue_id,
                "plays": plays,
                "listeners": listeners,
                "amount_minor": amount,
                "pro_rata_minor": pro_rata,
            }
        )
        o = owed[artist]
        o[0] += plays
        o[1] += listeners
        o[2] += amount

    for artist in sorted(set(acc.amount) | set(acc.pro_rata)):
        line(
            artist,
            "ucps",
            None,
            acc.plays.get(artist, 0),
            acc.listeners.get(artist, 0),
            acc.amount.get(artist, 0),
            acc.pro_rata.get(artist, 0),
        )
    for artist, amount in sorted(acc.clawback.items()):
        line(artist, "refund", None, 0, 0, -amount, 0)
    venue_artists: set[str] = set()
    for (venue_id, artist), (plays, amount) in sorted(acc.venue_lines.items()):
        line(artist, "venue", venue_id, plays, 0, amount, amount)
        venue_artists.add(artist)
    for artist in venue_artists:  # a venue's room is one listener: the node actor
        owed[artist][1] += 1

    local_total = remote_total = 0
    payables: list[dict] = []
    per_node: dict[str, int] = defaultdict(int)
    ledger: list[Line] = []
    for artist, (plays, listeners, amount) in sorted(owed.items()):
        if artist.startswith(base):  # a local artist's balance may go below zero
            local_total += amount
            ledger.append(_credit(f"artist:{artist}", amount, cur))
            continue
        if amount < 0:  # statement lines are never negative: the node carries the rest
            acc.node += amount
            amount = 0
        remote_total += amount
        node = node_of(artist)
        per_node[node] += amount
        payables.append(
            {
                "period": period,
                "node_uri": node,
                "artist_uri": artist,
                "currency": cur,
                "plays": plays,
                "listeners": listeners,
                "amount_minor": amount,
            }
        )
    for node, amount in sorted(per_node.items()):
        ledger.append(_credit(f"node_payable:{node}", amount, cur))
    venue_total = sum(acc.venue_fees.values())
    incoming = acc.collected + venue_total
    outgoing = acc.node + acc.foundation + local_total + remote_total
    assert incoming == outgoing, f"close {period} {cur} leaks: {incoming} != {outgoing}"
    ledger += [
        _credit("subscriptions", -acc.collected, cur),
        _credit("node_share", acc.node, cur),
        _credit("foundation", acc.foundation, cur),
    ]
    for (venue_uuid, _), fee in sorted(acc.venue_fees.items()):
        ledger.append(_credit(f"venue_fees:{venue_uuid}", -fee, cur))
    return Booking(lines_rows, payables, ledger, local_total, remote_total, venue_total)


async def _book(
    session: AsyncSession, period: str, cur: str, acc: _Cur, base: str
) -> dict[str, int]:
    """Write one currency's lines, payables, totals and ledger transaction."""
    b = book(period, cur, acc, base)
    if b.lines:
        await session.execute(insert(RoyaltyLine), b.lines)
    if b.payables:
        await session.execute(insert(RoyaltyPayable), b.payables)
    await post(
        session,
        kind="close",
        memo=f"royalties close {period} ({cur})",
        ref=f"close:{period}:{cur}",
        period=period,
        lines=b.ledger,
    )
    total = RoyaltyTotal(
        period=period,
        currency=cur,
        collected_minor=acc.collected,
        refunds_minor=acc.refunds,
        node_share_minor=acc.node,
        foundation_minor=acc.foundation,
        artists_local_minor=b.local_total,
        artists_remote_minor=b.remote_total,
        venue_fees_minor=b.venue_total,
        subscribers=acc.subscribers,
        zero_play_subscribers=acc.zero_play,
        qualified_plays=acc.plays_total,
    )
    session.add(total)
    await session.flush()
    return _total_dict(total)
