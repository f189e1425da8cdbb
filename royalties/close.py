"""Closing a period: where each subscriber's fee goes, to the minor unit (DESIGN.md 7, issue 5.5).

`close_period(ctx, "YYYY-MM")`, per currency:

1. Fees. What each subscriber paid for the period, net of refunds booked
   in it. The node's share and the foundation's share (basis points,
   rounded down) come off each fee; the rest is that subscriber's pool. A
   negative net (a refund of a fee closed earlier) is charged to the node's
   share: the node gave the money back, artists already had it.
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

The plays are aggregated in SQL and streamed sorted by listener, so memory
holds one subscriber's artists at a time plus one accumulator per artist.
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

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

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
from .qualify import Rules, fan_plays, venue_plays

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


@dataclass(frozen=True)
class CloseSummary:
    period: str
    already_closed: bool
    totals: dict[str, dict[str, int]]
    closed_at: datetime | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def _shares(net: int, node_bps: int, found_bps: int) -> tuple[int, int, int]:
    """(node, foundation, pool) of one positive fee; shares round down."""
    node = net * node_bps // 10_000
    found = net * found_bps // 10_000
    return node, found, net - node - found


async def _fees(session: AsyncSession, period: str) -> dict[int, dict[str, int]]:
    """actor id -> currency -> net amount paid for the period."""
    res = await session.execute(
        select(
            Account.actor_id,
            SubscriptionPayment.currency,
            func.sum(SubscriptionPayment.amount_minor),
        )
        .join(Account, Account.id == SubscriptionPayment.account_id)
        .where(SubscriptionPayment.period == period)
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
    return CloseSummary(period, True, totals, row.closed_at)


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
    tick = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal tick
        now_ = time.perf_counter()
        phases[name] = round(now_ - tick, 3)
        tick = now_

    async with ctx.db.read_session() as s:
        fingerprint = await _fingerprint(s, period)
        fees = await _fees(s, period)
        lap("fees")
        rows = fan_plays(s, period, rules)
        curs = await _compute(rows, fees, node_bps, found_bps, progress)
        lap("plays_and_ucps")
        licences = await _licences(s)
        if licences:
            _venues(curs, licences, await venue_plays(s, period, rules), node_bps, found_bps)
        lap("venues")
    finish(curs, zero_play_to=r.zero_play_to)
    if not curs:
        curs[Money.zero(r.currency).currency] = _Cur()

    try:
        async with ctx.db.transaction() as s:
            if await summary(s, period) is not None:
                return await summary(s, period)  # type: ignore[return-value]
            if await _fingerprint(s, period) != fingerprint:
                raise PaymentsChanged(f"payments for {period} changed during the close")
            closed_at = utcnow()
            stats: dict = {c: {"subscribers": a.subscribers} for c, a in curs.items()}
            stats["seconds"] = phases
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
    return CloseSummary(period, False, totals, closed_at, phases)


async def _compute(
    rows: AsyncIterator[tuple[int, str, int]],
    fees: dict[int, dict[str, int]],
    node_bps: int,
    found_bps: int,
    progress: Progress | None,
) -> dict[str, _Cur]:
    curs: dict[str, _Cur] = {}
    pools: dict[int, list[tuple[_Cur, int]]] = {}
    for actor_id, by_cur in fees.items():
        for cur, net in by_cur.items():
            acc = curs.setdefault(cur, _Cur())
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
            pools.setdefault(actor_id, []).append((acc, pool))
    total_subs = len(pools)
    played: set[int] = set()

    def flush(listener: int, artists: list[str], weights: list[int]) -> None:
        mine = pools.get(listener)
        if not mine:
            return  # not a subscriber this period
        played.add(listener)
        for acc, pool in mine:
            n = sum(weights)
            acc.plays_total += n
            parts = split_ints(pool, weights, artists) if pool else [0] * len(weights)
            amount, plays, listeners = acc.amount, acc.plays, acc.listeners
            for a, w, part in zip(artists, weights, parts, strict=True):
                amount[a] += part
                plays[a] += w
                listeners[a] += 1
        if progress is not None and len(played) % 1000 == 0:
            progress(len(played), total_subs)

    current: int | None = None
    artists: list[str] = []
    weights: list[int] = []
    async for listener, artist, n in rows:
        if listener != current:
            if current is not None:
                flush(current, artists, weights)
            current, artists, weights = listener, [], []
        artists.append(artist)
        weights.append(n)
    if current is not None:
        flush(current, artists, weights)
    for actor_id, mine in pools.items():
        if actor_id not in played:
            for acc, pool in mine:
                acc.zero_pool += pool
                acc.zero_play += 1
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
        acc = curs.setdefault(cur, _Cur())
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
        if artist.startswith(base):
            local_total += amount
            ledger.append(_credit(f"artist:{artist}", amount, cur))
            continue
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
