"""Refunds and chargebacks of a closed month's fee: negative lines in a later close.

DESIGN.md 7: closed periods never change, so a refund (or chargeback) is
booked in the open month (subscriptions.py), and that month's close takes
the money back from whoever the refunded fee paid: the node's share, the
foundation's share and each artist the fan's fee was split among in the
refunded month, in proportion to what each got from it (`split_ints`
again, so the parts add up to the refund). The artists' parts are negative
`refund` lines in the later month; the fan's fee of the later month is
theirs to split as usual and is not reduced by it.

What the refunded fee paid is recomputed the way that month's close
computed it (the fan's fee net of refunds booked in that month, the plays
up to its watermark plus the late plays it took in: `plays_as_closed`),
with today's share settings. A fee whose month had no qualified plays from
the fan went to the foundation, which gives it back. Two cases fall to the
node's share: the refunded month is not closed yet (its close will still
split the fee), and what a remote artist would owe beyond what they earn in
the later month (statement lines are never negative: reconcile.py refuses
them), which close.book carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from node.models import Account

from .models import SubscriptionPayment
from .money import split_ints
from .qualify import Rules, plays_as_closed


@dataclass
class Clawback:
    """What one currency's refunds of earlier fees take back in this close (positive ints)."""

    amount: int = 0
    node: int = 0
    foundation: int = 0
    artists: dict[str, int] = field(default_factory=dict)


async def refunds_of_other_months(
    session: AsyncSession, period: str
) -> list[tuple[int, str, str, int]]:
    """(actor id, currency, refunded month, amount > 0) booked in `period` for other months."""
    paid = aliased(SubscriptionPayment)
    res = await session.execute(
        select(
            Account.actor_id,
            SubscriptionPayment.currency,
            paid.period,
            func.sum(SubscriptionPayment.amount_minor),
        )
        .join(Account, Account.id == SubscriptionPayment.account_id)
        .join(paid, paid.id == SubscriptionPayment.refunds_id)
        .where(SubscriptionPayment.period == period, paid.period != period)
        .group_by(Account.actor_id, SubscriptionPayment.currency, paid.period)
        .order_by(Account.actor_id, SubscriptionPayment.currency, paid.period)
    )
    return [(int(a), c, q, -int(t)) for a, c, q, t in res.all() if int(t) < 0]


async def clawbacks(
    session: AsyncSession, period: str, rules: Rules, node_bps: int, found_bps: int
) -> dict[str, Clawback]:
    """Per currency: the refunds booked in `period` of other months' fees, split back."""
    from .close import _fees, _shares, period_stats  # close imports this module

    out: dict[str, Clawback] = {}
    stats_of: dict[str, dict | None] = {}
    fees_of: dict[str, dict[int, dict[str, int]]] = {}
    for actor_id, cur, month, amount in await refunds_of_other_months(session, period):
        claw = out.setdefault(cur, Clawback())
        claw.amount += amount
        if month not in stats_of:
            stats_of[month] = await period_stats(session, month)
        stats = stats_of[month]
        if stats is None:  # not closed yet: its close still splits the whole fee
            claw.node += amount
            continue
        if month not in fees_of:
            fees_of[month] = await _fees(session, month)
        net = fees_of[month].get(actor_id, {}).get(cur, 0)
        back = min(amount, max(net, 0))
        claw.node += amount - back  # beyond what that month split: nothing to take back
        if not back:
            continue
        node, found, pool = _shares(net, node_bps, found_bps)
        plays, _ = await plays_as_closed(session, month, rules, actor_id, stats)
        artists = sorted(plays)
        parts = split_ints(pool, [plays[a] for a in artists], artists) if artists else []
        if not artists:
            found += pool  # a fan who played nothing funded the foundation
        keys = ["", " ", *artists]  # node, foundation, then artists by URI
        weights = [node, found, *parts]
        if sum(weights) == 0:
            claw.node += back
            continue
        taken = split_ints(back, weights, keys)
        claw.node += taken[0]
        claw.foundation += taken[1]
        for a, x in zip(artists, taken[2:], strict=True):
            if x:
                claw.artists[a] = claw.artists.get(a, 0) + x
    return out
