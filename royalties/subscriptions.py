"""Subscriptions and the money they bring in, per period (issue 5.3).

A subscription says who pays what, from which month, through which
provider: `ledger` (an admin grants it by hand, `nycmg subscription grant`)
or `stripe` (royalties/billing.py turns Stripe's webhooks into the calls
below). Each payment is a `SubscriptionPayment` for one period and a ledger
transaction (cash to subscriptions); the close of that period splits it.

Closed periods never change: a payment reported for a closed period is
booked in the current month instead, and a refund or chargeback is always a
negative line in the current (open) month, whichever month it refunds.
Both are idempotent on (provider, external id), so a retried webhook books
nothing twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.models import Account, utcnow

from .errors import BadMoney, BadPeriod, UnknownPayment
from .ledger import Line, post
from .models import RoyaltyPeriod, Subscription, SubscriptionPayment
from .money import Money
from .periods import parse_period, period_of, shift

PROVIDERS = ("ledger", "stripe")
MAX_MONTHS = 120


async def closed_periods(session: AsyncSession, periods: list[str]) -> set[str]:
    res = await session.execute(
        select(RoyaltyPeriod.period).where(RoyaltyPeriod.period.in_(periods))
    )
    return set(res.scalars().all())


async def is_closed(session: AsyncSession, period: str) -> bool:
    return bool(await closed_periods(session, [period]))


async def open_period_for(session: AsyncSession, period: str) -> str:
    """`period` if still open, else the current month (closed periods never change)."""
    if not await is_closed(session, period):
        return period
    now = period_of(utcnow())
    while await is_closed(session, now):  # only if the clock went backwards
        now = shift(now, 1)
    return now


def _ledger_ref(kind: str, provider: str, external_id: str) -> str:
    key = f"{provider}:{external_id}"
    if len(key) > 150:
        key = f"{provider}:sha256:{hashlib.sha256(external_id.encode()).hexdigest()}"
    return f"{kind}:{key}"


async def record_payment(
    session: AsyncSession,
    *,
    account_id: int,
    period: str,
    amount: Money,
    provider: str,
    external_id: str,
    subscription_id: int | None = None,
) -> SubscriptionPayment:
    """Book a subscriber's payment for `period` (idempotent on provider + external id)."""
    parse_period(period)
    if not isinstance(amount, Money):
        raise TypeError("record_payment takes Money")
    if amount.amount_minor <= 0:
        raise BadMoney("a payment is a positive amount")
    if provider not in PROVIDERS or not external_id or len(external_id) > 255:
        raise BadMoney("a payment needs a known provider and an external id of 1..255 characters")
    existing = (
        await session.execute(
            select(SubscriptionPayment).where(
                SubscriptionPayment.provider == provider,
                SubscriptionPayment.external_id == external_id,
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    booked = await open_period_for(session, period)
    ref = _ledger_ref("payment", provider, external_id)
    row = SubscriptionPayment(
        account_id=account_id,
        subscription_id=subscription_id,
        period=booked,
        amount_minor=amount.amount_minor,
        currency=amount.currency,
        kind="payment",
        provider=provider,
        external_id=external_id,
        reason="" if booked == period else f"for {period}, booked in {booked} (closed)",
        ledger_ref=ref,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    await post(
        session,
        kind="payment",
        memo=f"subscription payment of account {account_id} for {booked}",
        ref=ref,
        period=booked,
        lines=[Line("cash", debit=amount), Line("subscriptions", credit=amount)],
    )
    return row


async def record_refund(
    session: AsyncSession,
    *,
    provider: str,
    external_id: str,
    amount: Money,
    reason: str,
    refund_id: str | None = None,
    kind: str = "refund",
) -> SubscriptionPayment:
    """Give back (part of) a payment: a negative line in the current open period.

    `external_id` names the payment; `refund_id` the refund itself (several
    partial refunds of one payment each have their own). Refunds never
    exceed what was paid. Idempotent on the refund's id.
    """
    if kind not in ("refund", "chargeback"):
        raise ValueError("kind is refund or chargeback")
    if not isinstance(amount, Money):
        raise TypeError("record_refund takes Money")
    if amount.amount_minor <= 0:
        raise BadMoney("a refund is a positive amount to give back")
    own_id = refund_id or f"{external_id}#{kind}"
    if len(own_id) > 255:
        raise BadMoney("refund id is too long")
    existing = (
        await session.execute(
            select(SubscriptionPayment).where(
                SubscriptionPayment.provider == provider,
                SubscriptionPayment.external_id == own_id,
            )
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    paid = (
        await session.execute(
            select(SubscriptionPayment).where(
                SubscriptionPayment.provider == provider,
                SubscriptionPayment.external_id == external_id,
                SubscriptionPayment.kind == "payment",
            )
        )
    ).scalar_one_or_none()
    if paid is None:
        raise UnknownPayment(f"no {provider} payment {external_id!r}")
    if paid.currency != amount.currency:
        raise BadMoney(f"the payment was in {paid.currency}")
    refunded = (
        await session.execute(
            select(func.coalesce(func.sum(SubscriptionPayment.amount_minor), 0)).where(
                SubscriptionPayment.refunds_id == paid.id
            )
        )
    ).scalar_one()
    if paid.amount_minor + int(refunded) - amount.amount_minor < 0:
        raise BadMoney("refunds would exceed the payment")
    booked = await open_period_for(session, period_of(utcnow()))
    ref = _ledger_ref(kind, provider, own_id)
    row = SubscriptionPayment(
        account_id=paid.account_id,
        subscription_id=paid.subscription_id,
        period=booked,
        amount_minor=-amount.amount_minor,
        currency=amount.currency,
        kind=kind,
        provider=provider,
        external_id=own_id,
        refunds_id=paid.id,
        reason=(reason or "")[:2000],
        ledger_ref=ref,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    await post(
        session,
        kind=kind,
        memo=f"{kind} of payment {paid.id} ({paid.period}), booked in {booked}",
        ref=ref,
        period=booked,
        lines=[Line("subscriptions", debit=amount), Line("cash", credit=amount)],
    )
    return row


@dataclass(frozen=True)
class Grant:
    subscription: Subscription
    payments: list[SubscriptionPayment]


async def grant(
    session: AsyncSession,
    account: Account,
    amount: Money,
    *,
    first_period: str | None = None,
    months: int = 1,
    by: str = "admin",
) -> Grant:
    """An admin grants a subscription by hand (the `ledger` provider): one payment per month."""
    if not isinstance(amount, Money) or amount.amount_minor <= 0:
        raise BadMoney("a subscription costs a positive amount")
    if not 1 <= months <= MAX_MONTHS:
        raise BadPeriod(f"months must be 1..{MAX_MONTHS}")
    first = first_period or period_of(utcnow())
    parse_period(first)
    periods = [shift(first, i) for i in range(months)]
    closed = await closed_periods(session, periods)
    if closed:
        raise BadPeriod(f"{min(closed)} is closed; grant from an open month")
    sub = Subscription(
        account_id=account.id,
        provider="ledger",
        status="active",
        amount_minor=amount.amount_minor,
        currency=amount.currency,
        first_period=periods[0],
        last_period=periods[-1],
        created_at=utcnow(),
    )
    session.add(sub)
    await session.flush()
    payments = [
        await record_payment(
            session,
            account_id=account.id,
            period=p,
            amount=amount,
            provider="ledger",
            external_id=f"grant:{sub.id}:{p}",
            subscription_id=sub.id,
        )
        for p in periods
    ]
    return Grant(sub, payments)


async def cancel(session: AsyncSession, subscription_id: int) -> Subscription | None:
    """Stop a subscription (payments already booked stay where they are)."""
    sub = await session.get(Subscription, subscription_id)
    if sub is None:
        return None
    if sub.status != "canceled":
        sub.status = "canceled"
        sub.canceled_at = utcnow()
        await session.flush()
    return sub


async def fees_of(session: AsyncSession, account_id: int, period: str) -> dict[str, Money]:
    """What one subscriber paid for a period, net of refunds booked in it, per currency."""
    res = await session.execute(
        select(SubscriptionPayment.currency, func.sum(SubscriptionPayment.amount_minor))
        .where(SubscriptionPayment.account_id == account_id, SubscriptionPayment.period == period)
        .group_by(SubscriptionPayment.currency)
    )
    return {c: Money(int(t), c) for c, t in res.all()}


async def subscriptions_of(session: AsyncSession, account_id: int) -> list[Subscription]:
    res = await session.execute(
        select(Subscription)
        .where(Subscription.account_id == account_id)
        .order_by(Subscription.created_at.desc(), Subscription.id.desc())
    )
    return list(res.scalars().all())
