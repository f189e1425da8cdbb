"""Read models of the royalties for the API and the pages (issue 5.8): who got what, and why.

- `period_report`: the node's public transparency report for a month.
- `artist_earnings`: an artist's earnings per period, per node, per venue,
  UCPS beside pro-rata.
- `fan_split`: "where my money went": one subscriber's fee, split by artist
  exactly as the close splits it (same query filtered to that listener, same
  `split_ints`), with the pro-rata figure of the same money beside it.

Other parts add to the period report through `PERIOD_EXTRAS` (the clearing
protocol adds statements and the settlement).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.context import NodeContext
from node.models import Account, Actor, Venue

from .close import _fees, _shares, node_of, period_stats, summary
from .models import RoyaltyLine, RoyaltyPeriod, SubscriptionPayment
from .money import Money, split_ints
from .periods import parse_period
from .qualify import Rules, disqualified, fan_plays, plays_as_closed

PeriodExtra = Callable[[AsyncSession, NodeContext, str], Awaitable[dict[str, Any]]]
PERIOD_EXTRAS: list[PeriodExtra] = []
_GLOBAL_CACHE: dict[tuple[int, str], tuple[float, dict[str, dict[str, int]]]] = {}
GLOBAL_TTL = 300.0


def money_json(amount: int, currency: str) -> dict[str, Any]:
    m = Money(int(amount), currency)
    return {"amount_minor": m.amount_minor, "currency": m.currency, "display": m.format()}


async def names_of(session: AsyncSession, uris: set[str]) -> dict[str, dict[str, Any]]:
    """Display names, handles and locality of actors we know, by URI."""
    out: dict[str, dict[str, Any]] = {}
    ulist = sorted(uris)
    for i in range(0, len(ulist), 500):
        res = await session.execute(
            select(Actor.uri, Actor.name, Actor.handle, Actor.domain, Actor.local).where(
                Actor.uri.in_(ulist[i : i + 500])
            )
        )
        for uri, name, handle, domain, local in res.all():
            out[uri] = {
                "name": name or handle,
                "handle": handle if local else f"{handle}@{domain}",
                "local": bool(local),
            }
    return out


def _who(uri: str, names: dict[str, dict[str, Any]]) -> dict[str, Any]:
    n = names.get(uri)
    if n:
        return {"uri": uri, **n}
    tail = uri.rstrip("/").rsplit("/", 1)[-1]
    return {"uri": uri, "name": tail, "handle": tail, "local": False}


async def period_report(
    session: AsyncSession, ctx: NodeContext, period: str, *, limit: int = 100, offset: int = 0
) -> dict[str, Any]:
    """The month's transparency report: what came in, the shares, and what each artist got."""
    parse_period(period)
    done = await summary(session, period)
    report: dict[str, Any] = {"period": period, "state": "closed" if done else "open"}
    if done is None:
        res = await session.execute(
            select(
                SubscriptionPayment.currency,
                func.sum(SubscriptionPayment.amount_minor),
                func.count(func.distinct(SubscriptionPayment.account_id)),
            )
            .where(SubscriptionPayment.period == period)
            .group_by(SubscriptionPayment.currency)
        )
        report["collected_so_far"] = {
            c: {**money_json(t, c), "subscribers": int(n)} for c, t, n in res.all()
        }
        report["currencies"] = {}
        report["artists"] = []
    else:
        report["closed_at"] = done.closed_at.isoformat() if done.closed_at else None
        # plays of earlier closed months recorded after their close, counted in this one
        report["late_plays"] = done.late or {
            "fan_plays": 0,
            "venue_plays": 0,
            "from_periods": {},
            "artists": {},
        }
        report["currencies"] = {
            cur: {
                **{
                    k: money_json(v, cur)
                    for k, v in t.items()
                    if k not in ("subscribers", "zero_play_subscribers", "qualified_plays")
                },
                "subscribers": t["subscribers"],
                "zero_play_subscribers": t["zero_play_subscribers"],
                "qualified_plays": t["qualified_plays"],
                "node_share_bps": int(ctx.settings.royalties.node_share_bps),
                "foundation_share_bps": int(ctx.settings.royalties.foundation_share_bps),
            }
            for cur, t in done.totals.items()
        }
        total = (
            await session.execute(
                select(func.count(func.distinct(RoyaltyLine.artist_uri))).where(
                    RoyaltyLine.period == period
                )
            )
        ).scalar_one()
        amount = func.sum(RoyaltyLine.amount_minor)
        res = await session.execute(
            select(
                RoyaltyLine.artist_uri,
                RoyaltyLine.currency,
                func.max(RoyaltyLine.node_uri),
                func.sum(RoyaltyLine.plays),
                func.sum(RoyaltyLine.listeners),
                amount,
                func.sum(RoyaltyLine.pro_rata_minor),
            )
            .where(RoyaltyLine.period == period)
            .group_by(RoyaltyLine.artist_uri, RoyaltyLine.currency)
            .order_by(amount.desc(), RoyaltyLine.artist_uri)
            .limit(max(1, min(limit, 1000)))
            .offset(max(0, offset))
        )
        rows = res.all()
        names = await names_of(session, {r[0] for r in rows})
        report["artists_total"] = int(total)
        report["artists"] = [
            {
                "artist": _who(a, names),
                "node": node or ctx.urls.node_actor(),
                "plays": int(p),
                "late_plays": int(report["late_plays"].get("artists", {}).get(a, 0)),
                "listeners": int(li),
                "ucps": money_json(amt, cur),
                "pro_rata": money_json(pr, cur),
            }
            for a, cur, node, p, li, amt, pr in rows
        ]
    for extra in PERIOD_EXTRAS:
        report.update(await extra(session, ctx, period))
    return report


async def clearing_extra(session: AsyncSession, ctx: NodeContext, period: str) -> dict[str, Any]:
    """The period's statements (out and in) and settlement, when the clearing protocol ran."""
    try:
        from .clearing_models import ClearingSettlement, ClearingStatement
    except ImportError:  # pragma: no cover - clearing not installed
        return {}
    stmts = (
        (
            await session.execute(
                select(ClearingStatement)
                .where(ClearingStatement.period == period, ClearingStatement.role != "copy")
                .order_by(ClearingStatement.id)
            )
        )
        .scalars()
        .all()
    )
    settlements = (
        (
            await session.execute(
                select(ClearingSettlement)
                .where(ClearingSettlement.period == period)
                .order_by(ClearingSettlement.id.desc())
            )
        )
        .scalars()
        .all()
    )
    out: dict[str, Any] = {
        "statements": [
            {
                "uri": st.uri,
                "direction": "out" if st.role == "out" else "in",
                "counterparty": st.recipient_uri if st.role == "out" else st.issuer_uri,
                "version": st.version,
                "state": st.state,
                "total": money_json(st.total_minor, st.currency),
                "total_display": Money(st.total_minor, st.currency).format(),
                "lines": len((st.document or {}).get("lines", [])),
            }
            for st in stmts
        ]
    }
    if settlements:
        st = settlements[0]
        out["settlement"] = {
            "uri": st.uri,
            "house": st.house_uri,
            "state": st.state,
            "transfers": (st.document or {}).get("transfers", []),
        }
    return out


PERIOD_EXTRAS.append(clearing_extra)


async def closed_periods(session: AsyncSession, limit: int = 36) -> list[str]:
    res = await session.execute(
        select(RoyaltyPeriod.period).order_by(RoyaltyPeriod.period.desc()).limit(limit)
    )
    return list(res.scalars().all())


async def _incoming(session: AsyncSession, artist_uri: str, periods: list[str] | None) -> list:
    """Lines for this artist in statements other nodes sent us (the clearing protocol's)."""
    try:
        from .clearing_models import ClearingStatement
    except ImportError:  # pragma: no cover - clearing not installed
        return []
    q = select(ClearingStatement).where(ClearingStatement.role == "in")
    if periods:
        q = q.where(ClearingStatement.period.in_(periods))
    out = []
    for st in (await session.execute(q.order_by(ClearingStatement.id))).scalars().all():
        if st.state == "superseded":
            continue
        for ln in (st.document or {}).get("lines", []):
            if isinstance(ln, dict) and ln.get("artist") == artist_uri:
                out.append(
                    {
                        "period": st.period,
                        "node": st.issuer_uri,
                        "currency": st.currency,
                        "plays": int(ln.get("plays", 0)),
                        "listeners": int(ln.get("listeners", 0)),
                        "amount": money_json(int(ln.get("amount", 0)), st.currency),
                        "state": st.state,
                    }
                )
    return out


async def artist_earnings(
    session: AsyncSession, ctx: NodeContext, artist: Actor, period: str | None = None
) -> dict[str, Any]:
    """One artist's earnings, per period: from this node (UCPS, pro-rata, per venue) and
    from other nodes' statements."""
    if period:
        parse_period(period)
    q = select(RoyaltyLine).where(RoyaltyLine.artist_uri == artist.uri)
    if period:
        q = q.where(RoyaltyLine.period == period)
    lines = (await session.execute(q.order_by(RoyaltyLine.period.desc()))).scalars().all()
    venue_ids = {ln.venue_id for ln in lines if ln.venue_id}
    venues = {}
    if venue_ids:
        res = await session.execute(
            select(Venue.id, Venue.name, Venue.uuid).where(Venue.id.in_(venue_ids))
        )
        venues = {i: (n, u) for i, n, u in res.all()}
    per: dict[tuple[str, str], dict[str, Any]] = {}
    here = ctx.urls.node_actor()
    for ln in lines:
        key = (ln.period, ln.currency)
        p = per.setdefault(
            key,
            {
                "period": ln.period,
                "currency": ln.currency,
                "plays": 0,
                "listeners": 0,
                "ucps_minor": 0,
                "pro_rata_minor": 0,
                "venue_minor": 0,
                "venues": [],
                "nodes": [],
            },
        )
        if ln.kind == "ucps":
            p["plays"] += ln.plays
            p["listeners"] += ln.listeners
            p["ucps_minor"] += ln.amount_minor
            p["pro_rata_minor"] += ln.pro_rata_minor
        else:
            name, uuid = venues.get(ln.venue_id, ("(venue removed)", None))
            p["venue_minor"] += ln.amount_minor
            p["venues"].append(
                {
                    "venue": name,
                    "uuid": uuid,
                    "plays": ln.plays,
                    "amount": money_json(ln.amount_minor, ln.currency),
                }
            )
    for p in per.values():
        p["nodes"].append(
            {
                "node": here,
                "plays": p["plays"] + sum(v["plays"] for v in p["venues"]),
                "amount": money_json(p["ucps_minor"] + p["venue_minor"], p["currency"]),
                "state": "closed",
            }
        )
    if artist.local:
        for inc in await _incoming(session, artist.uri, [period] if period else None):
            key = (inc["period"], inc["currency"])
            p = per.setdefault(
                key,
                {
                    "period": inc["period"],
                    "currency": inc["currency"],
                    "plays": 0,
                    "listeners": 0,
                    "ucps_minor": 0,
                    "pro_rata_minor": 0,
                    "venue_minor": 0,
                    "venues": [],
                    "nodes": [],
                },
            )
            p["nodes"].append(
                {k: inc[k] for k in ("node", "plays", "amount", "state")}
                | {"listeners": inc["listeners"]}
            )
    periods = []
    for (_, cur), p in sorted(per.items(), reverse=True):
        total = sum(n["amount"]["amount_minor"] for n in p["nodes"])
        periods.append(
            {
                "period": p["period"],
                "currency": cur,
                "plays": p["plays"],
                "listeners": p["listeners"],
                "ucps": money_json(p["ucps_minor"], cur),
                "pro_rata": money_json(p["pro_rata_minor"], cur),
                "venues": p["venues"],
                "nodes": p["nodes"],
                "total": money_json(total, cur),
            }
        )
    return {
        "artist": {
            "uri": artist.uri,
            "handle": artist.handle,
            "name": artist.name or artist.handle,
        },
        "periods": periods,
    }


async def _global_plays(
    session: AsyncSession, ctx: NodeContext, period: str
) -> dict[str, dict[str, int]]:
    """currency -> artist -> subscribers' qualified plays in the period (what pro-rata splits by)."""
    done = await summary(session, period)
    if done is not None:
        res = await session.execute(
            select(RoyaltyLine.currency, RoyaltyLine.artist_uri, RoyaltyLine.plays).where(
                RoyaltyLine.period == period, RoyaltyLine.kind == "ucps"
            )
        )
        out: dict[str, dict[str, int]] = defaultdict(dict)
        for cur, a, n in res.all():
            if n:
                out[cur][a] = int(n)
        return out
    key = (id(ctx), period)
    hit = _GLOBAL_CACHE.get(key)
    if hit and time.monotonic() - hit[0] < GLOBAL_TTL:
        return hit[1]
    fees = await _fees(session, period)
    out = defaultdict(lambda: defaultdict(int))
    async for listener, artist, n in fan_plays(session, period, Rules.from_settings(ctx.settings)):
        for cur, net in fees.get(listener, {}).items():
            if net > 0:
                out[cur][artist] += n
    plain = {c: dict(v) for c, v in out.items()}
    _GLOBAL_CACHE[key] = (time.monotonic(), plain)
    return plain


async def fan_split(
    session: AsyncSession, ctx: NodeContext, account: Account, period: str
) -> dict[str, Any]:
    """Where one subscriber's money went (or, this month, is going so far)."""
    parse_period(period)
    r = ctx.settings.royalties
    node_bps, found_bps = int(r.node_share_bps), int(r.foundation_share_bps)
    rules = Rules.from_settings(ctx.settings)
    # the month's own fees, net of refunds of them (a refund of another month's fee
    # is taken back from that month's artists: refunds.py)
    fees = (await _fees(session, period, account_id=account.id)).get(account.actor_id, {})
    # a closed month counted the plays up to its watermark, and the late plays of earlier
    # months that came in since (qualify.py): the same here, so the split is the close's
    stats = await period_stats(session, period)
    plays, late = await plays_as_closed(session, period, rules, account.actor_id, stats)
    done = await summary(session, period)
    out: dict[str, Any] = {
        "period": period,
        "state": "closed" if done else "open",
        "subscribed": any(v > 0 for v in fees.values()),
        "currencies": [],
        "not_counted": await disqualified(session, period, rules, account.actor_id),
    }
    names = await names_of(session, set(plays))
    global_plays = await _global_plays(session, ctx, period) if plays else {}
    for cur, net in sorted(fees.items()):
        entry: dict[str, Any] = {"fee": money_json(net, cur)}
        if net <= 0:
            entry.update(artists=[], note="refunded")
            out["currencies"].append(entry)
            continue
        node, found, pool = _shares(net, node_bps, found_bps)
        entry.update(
            node_share=money_json(node, cur),
            foundation=money_json(found, cur),
            pool=money_json(pool, cur),
        )
        artists = sorted(plays)
        parts = split_ints(pool, [plays[a] for a in artists], artists) if artists else []
        gp = dict(global_plays.get(cur, {}))
        for a in artists:  # this month so far includes this fan's own plays
            gp.setdefault(a, plays[a])
        keys = sorted(gp)
        pro = (
            dict(zip(keys, split_ints(pool, [gp[k] for k in keys], keys), strict=True))
            if keys
            else {}
        )
        rows = [
            {
                "artist": _who(a, names),
                "node": None if a.startswith(ctx.settings.base_url + "/") else node_of(a),
                "plays": plays[a],
                "late_plays": late.get(a, 0),
                "ucps": money_json(part, cur),
                "pro_rata": money_json(pro.get(a, 0), cur),
            }
            for a, part in zip(artists, parts, strict=True)
        ]
        rows.sort(key=lambda x: (-x["ucps"]["amount_minor"], x["artist"]["uri"]))
        entry["artists"] = rows
        elsewhere = pool - sum(pro.get(a, 0) for a in artists)
        entry["pro_rata_to_artists_not_played"] = money_json(elsewhere if keys else 0, cur)
        if not artists:
            to = "every artist by plays" if r.zero_play_to == "pro_rata" else "the foundation"
            entry["note"] = f"no qualified plays: this month's pool goes to {to}"
        out["currencies"].append(entry)
    return out
