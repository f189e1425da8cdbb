"""Paying out: artists from their ledger balances, nodes their settlement transfers,
and foundation grants (DESIGN.md 7.4).

An artist whose balance reaches `payouts.threshold_minor` gets a payout: the
amount moves from `artist:{uri}` to `payouts_pending` at once, so it is never
paid twice, then to cash when it is paid. With the `ledger` provider an admin
exports the pending payouts (CSV), pays them outside and marks each paid with
its reference; with `stripe` the node makes a Stripe Connect transfer to the
artist's connected account, with the payout's own idempotency key, so a retry
after a timeout never pays twice. Inter-node settlement transfers are paid
the same way (`pay_transfer`).

Foundation grants move money from the foundation pool to an artist once a
curator approves what an admin proposed.
"""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.api import API
from node.api.routing import Call
from node.context import NodeContext
from node.errors import BadRequest, Forbidden, NotFound
from node.models import Actor, new_uuid, utcnow

from . import ledger
from .billing import stripe_client
from .clearing_models import FoundationGrant, Payout, StripeAccount
from .money import Money, normalize_currency


class NoConnectedAccount(BadRequest):
    type_slug = "no-connected-account"
    title = "No Stripe connected account"


def _short(uri: str) -> str:
    return hashlib.sha256(uri.encode()).hexdigest()[:24]


# ---- artists -----------------------------------------------------------------------


async def due(session: AsyncSession, currency: str, threshold: int) -> dict[str, Money]:
    """Local artists whose balance is at least `threshold` minor units."""
    balances = await ledger.balances(session, "artist:", currency)
    local = set(
        (
            await session.scalars(
                select(Actor.uri).where(
                    Actor.local.is_(True),
                    Actor.uri.in_([a.split(":", 1)[1] for a in balances]),
                )
            )
        ).all()
    )
    return {
        account.split(":", 1)[1]: money
        for account, money in balances.items()
        if money.amount_minor >= max(threshold, 1) and account.split(":", 1)[1] in local
    }


async def create_payouts(ctx: NodeContext, session: AsyncSession, currency: str) -> list[Payout]:
    """Book a pending payout for every artist over the threshold."""
    cur = normalize_currency(currency)
    provider = ctx.settings.royalties.provider
    out = []
    for artist, money in sorted(
        (await due(session, cur, ctx.settings.payouts.threshold_minor)).items()
    ):
        key = f"payout-{_short(artist)}-{new_uuid()[:12]}"
        payout = Payout(
            artist_uri=artist,
            currency=cur,
            amount_minor=money.amount_minor,
            state="pending",
            provider=provider,
            idempotency_key=key,
        )
        session.add(payout)
        await ledger.post(
            session,
            kind="payout",
            memo=f"payout to {artist}",
            ref=f"payout:{key}",
            lines=[
                ledger.Line(ledger.artist_account(artist), debit=money),
                ledger.Line("payouts_pending", credit=money),
            ],
        )
        out.append(payout)
    await session.flush()
    if provider == "stripe":
        for p in out:
            await ctx.enqueue(session, "payouts.stripe", {"payout": p.id}, priority=90)
    return out


async def mark_paid(
    session: AsyncSession, payout_id: int, *, reference: str, by: str, provider: str | None = None
) -> Payout:
    """A pending payout was paid (outside, or by Stripe): it leaves the books as cash."""
    payout = await session.get(Payout, payout_id)
    if payout is None:
        raise NotFound(f"no payout {payout_id}")
    if payout.state == "paid":
        return payout
    reference = (reference or "").strip()
    if not reference or len(reference) > 255:
        raise BadRequest("a paid payout needs its reference (1..255 characters)")
    money = Money(payout.amount_minor, payout.currency)
    await ledger.post(
        session,
        kind="payout_paid",
        memo=f"payout {payout.id} to {payout.artist_uri} paid ({reference})",
        ref=f"payout-paid:{payout.idempotency_key}",
        lines=[ledger.Line("payouts_pending", debit=money), ledger.Line("cash", credit=money)],
    )
    payout.state, payout.reference, payout.paid_at, payout.paid_by = (
        "paid",
        reference,
        utcnow(),
        by,
    )
    if provider:
        payout.provider = provider
    payout.error = None
    return payout


def export_csv(payouts: list[Payout]) -> str:
    """The pending payouts as the CSV an admin pays from."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["payout", "artist", "amount_minor", "currency", "created_at", "key"])
    for p in payouts:
        w.writerow(
            [
                p.id,
                p.artist_uri,
                p.amount_minor,
                p.currency,
                p.created_at.isoformat(),
                p.idempotency_key,
            ]
        )
    return buf.getvalue()


async def pending(session: AsyncSession) -> list[Payout]:
    return list(
        (
            await session.scalars(
                select(Payout).where(Payout.state == "pending").order_by(Payout.id)
            )
        ).all()
    )


# ---- Stripe Connect ----------------------------------------------------------------


async def connected_account(session: AsyncSession, owner_uri: str) -> str | None:
    return await session.scalar(
        select(StripeAccount.stripe_account_id).where(StripeAccount.owner_uri == owner_uri)
    )


async def connect(ctx: NodeContext, owner_uri: str, email: str | None = None) -> dict[str, str]:
    """A Stripe Connect (Express) account for an artist or a node, and its onboarding link."""
    client = stripe_client(ctx)
    async with ctx.db.read_session() as s:
        account_id = await connected_account(s, owner_uri)
    if account_id is None:
        account = await client.v1.accounts.create_async(
            {
                "type": "express",
                "email": email or None,
                "capabilities": {"transfers": {"requested": True}},
                "metadata": {"owner": owner_uri},
            },
            {"idempotency_key": f"nycmg-account-{_short(owner_uri)}"},
        )
        account_id = account.id
        async with ctx.db.transaction() as s:
            if await connected_account(s, owner_uri) is None:
                s.add(StripeAccount(owner_uri=owner_uri, stripe_account_id=account_id))
    base = ctx.settings.base_url
    link = await client.v1.account_links.create_async(
        {
            "account": account_id,
            "type": "account_onboarding",
            "refresh_url": f"{base}/me",
            "return_url": f"{base}/me",
        }
    )
    return {"account": account_id, "url": link.url}


async def stripe_transfer(
    ctx: NodeContext, *, destination: str, amount: Money, key: str, description: str
) -> str:
    """One Connect transfer; the idempotency key makes a retried call the same transfer."""
    transfer = await stripe_client(ctx).v1.transfers.create_async(
        {
            "amount": amount.amount_minor,
            "currency": amount.currency.lower(),
            "destination": destination,
            "description": description[:200],
        },
        {"idempotency_key": key},
    )
    return transfer.id


async def pay_with_stripe(ctx: NodeContext, payout_id: int) -> Payout:
    async with ctx.db.read_session() as s:
        payout = await s.get(Payout, payout_id)
        if payout is None or payout.state != "pending":
            return payout
        destination = await connected_account(s, payout.artist_uri)
    if destination is None:
        async with ctx.db.transaction() as s:
            p = await s.get(Payout, payout_id)
            p.error = "the artist has no Stripe connected account yet"
        raise NoConnectedAccount(f"{payout.artist_uri} has no Stripe connected account")
    transfer_id = await stripe_transfer(
        ctx,
        destination=destination,
        amount=Money(payout.amount_minor, payout.currency),
        key=payout.idempotency_key,
        description=f"nycmg payout {payout.id}",
    )
    async with ctx.db.transaction() as s:
        return await mark_paid(s, payout_id, reference=transfer_id, by="stripe", provider="stripe")


async def pay_transfer(ctx: NodeContext, transfer_uri: str, reference: str | None = None):
    """Pay one of our settlement transfers: Stripe Connect to the payee node's connected
    account (provider stripe), or record the external payment's reference (ledger)."""
    from . import clearing
    from .clearing_models import ClearingTransfer

    provider = ctx.settings.royalties.provider
    if provider == "stripe" and not reference:
        async with ctx.db.read_session() as s:
            t = await s.scalar(select(ClearingTransfer).where(ClearingTransfer.uri == transfer_uri))
            if t is None:
                raise NotFound(f"no transfer {transfer_uri}")
            if t.state != "due":
                return t  # paid already: never a second Stripe transfer
            destination = await connected_account(s, t.payee_uri)
        if destination is None:
            raise NoConnectedAccount(f"{t.payee_uri} has no Stripe connected account")
        reference = await stripe_transfer(
            ctx,
            destination=destination,
            amount=Money(t.amount_minor, t.currency),
            key=f"nycmg-transfer-{_short(transfer_uri)}",
            description=f"nycmg settlement {t.period}",
        )
    async with ctx.db.transaction() as s:
        return await clearing.pay(
            ctx, s, transfer_uri, reference=reference or "", provider=provider
        )


# ---- foundation grants -------------------------------------------------------------


async def propose_grant(
    session: AsyncSession, *, artist_uri: str, amount: Money, reason: str, by: str
) -> FoundationGrant:
    if amount.amount_minor <= 0:
        raise BadRequest("a grant is a positive amount")
    artist = await session.scalar(select(Actor).where(Actor.uri == artist_uri))
    if artist is None or not artist.is_artist:
        raise NotFound(f"no artist {artist_uri}")
    grant = FoundationGrant(
        artist_uri=artist_uri,
        currency=amount.currency,
        amount_minor=amount.amount_minor,
        reason=reason[:2000],
        state="proposed",
        proposed_by=by,
    )
    session.add(grant)
    await session.flush()
    return grant


async def decide_grant(
    session: AsyncSession, grant_id: int, *, approve: bool, by: str, role: str
) -> FoundationGrant:
    """A curator approves (or declines) a grant; approval pays it from the foundation pool."""
    if role not in ("curator", "admin"):
        raise Forbidden("grants are approved by curators")
    grant = await session.get(FoundationGrant, grant_id)
    if grant is None:
        raise NotFound(f"no grant {grant_id}")
    if grant.state != "proposed":
        return grant
    if approve and by == grant.proposed_by:
        raise Forbidden("a grant is approved by someone other than who proposed it")
    grant.state, grant.approved_by, grant.decided_at = (
        "approved" if approve else "declined",
        by,
        utcnow(),
    )
    if approve:
        pool = await ledger.balance(session, "foundation", grant.currency)
        money = Money(grant.amount_minor, grant.currency)
        if pool.amount_minor < money.amount_minor:
            raise BadRequest(f"the foundation pool holds only {pool.amount_minor} {pool.currency}")
        grant.ledger_ref = f"grant:{grant.id}"
        await ledger.post(
            session,
            kind="grant",
            memo=f"foundation grant {grant.id} to {grant.artist_uri}",
            ref=grant.ledger_ref,
            lines=[
                ledger.Line("foundation", debit=money),
                ledger.Line(ledger.artist_account(grant.artist_uri), credit=money),
            ],
        )
    return grant


async def grants(session: AsyncSession) -> list[FoundationGrant]:
    return list(
        (await session.scalars(select(FoundationGrant).order_by(FoundationGrant.id.desc()))).all()
    )


async def payouts_summary(session: AsyncSession) -> dict[str, Any]:
    rows = await session.execute(
        select(Payout.state, Payout.currency, func.count(), func.sum(Payout.amount_minor)).group_by(
            Payout.state, Payout.currency
        )
    )
    return {f"{st}:{cur}": {"count": n, "amount": int(t or 0)} for st, cur, n, t in rows.all()}


@API.route(
    "POST",
    "/api/v1/payouts/stripe-account",
    name="api.payouts_stripe_account",
    summary="Connect the caller's Stripe account for payouts (returns the onboarding link)",
    tag="royalties",
    role="artist",
)
async def connect_view(call: Call) -> dict[str, str]:
    return await connect(call.ctx, call.account.actor.uri, call.account.email)


def register_jobs(ctx: NodeContext) -> None:
    async def job(j) -> None:
        await pay_with_stripe(ctx, j.payload["payout"])

    ctx.jobs.register("payouts.stripe", job)
