"""Stripe Billing for fans' subscriptions, and the Stripe client the node shares (DESIGN.md 7).

A fan starts a Checkout session on their home node; Stripe then tells the
node what happened through webhooks, each verified with the Stripe-Signature
scheme (`stripe.Webhook.construct_event`: HMAC-SHA256 over "t.payload" with
the endpoint secret, within a tolerance) and handled once per event id:

- `checkout.session.completed`: the customer and subscription belong to the fan;
- `invoice.paid`: a month paid (renewals too) -> `record_payment`;
- `invoice.payment_failed`: the subscription is past due;
- `customer.subscription.updated` / `.deleted`: status, cancellation;
- `charge.refunded`, `charge.dispute.created`: -> `record_refund` (a negative
  line in the current open period; closed periods never change).

Tests point `stripe.api_base` at a local fake Stripe; never the internet.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import stripe
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from node.api import API
from node.api.routing import Call
from node.appkeys import CTX
from node.context import NodeContext
from node.errors import BadRequest, Conflict, PayloadTooLarge
from node.models import Account
from node.web_helpers import read_at_most

from . import subscriptions
from .clearing_models import BillingCustomer, StripeEvent
from .models import Subscription
from .money import Money, normalize_currency

log = logging.getLogger("nycmg.royalties.billing")
MAX_WEBHOOK_BYTES = 256 * 1024
_CLIENT = "stripe_client"


class StripeNotConfigured(Conflict):
    type_slug = "stripe-not-configured"
    title = "Stripe is not configured on this node"


class BadWebhook(BadRequest):
    type_slug = "bad-webhook"
    title = "Not a webhook from Stripe"


def stripe_client(ctx: NodeContext) -> stripe.StripeClient:
    """One Stripe client per node (aiohttp under it), created on first use."""
    client = ctx.extras.get(_CLIENT)
    if client is None:
        conf = ctx.settings.stripe
        if not conf.secret_key:
            raise StripeNotConfigured("set stripe.secret_key (and royalties.provider = stripe)")
        base = conf.api_base.rstrip("/")
        client = stripe.StripeClient(
            conf.secret_key,
            base_addresses={"api": base, "connect": base, "files": base},
            http_client=stripe.AIOHTTPClient(),
            max_network_retries=2,
        )
        ctx.extras[_CLIENT] = client
    return client


async def close_client(ctx: NodeContext) -> None:
    client = ctx.extras.pop(_CLIENT, None)
    if client is not None:
        await client._requestor._client.close_async()  # the aiohttp session under it


def _period_of(ts: int | None) -> str:
    when = datetime.fromtimestamp(ts, UTC) if ts else datetime.now(UTC)
    return f"{when.year:04d}-{when.month:02d}"


# ---- checkout ----------------------------------------------------------------------


async def start_checkout(ctx: NodeContext, account: Account) -> dict[str, str]:
    """A Checkout session for the node's subscription price; the fan pays on Stripe."""
    conf = ctx.settings.stripe
    if ctx.settings.royalties.provider != "stripe" or not conf.price:
        raise StripeNotConfigured("subscriptions here are granted by an admin (ledger provider)")
    client = stripe_client(ctx)
    async with ctx.db.read_session() as s:
        known = await s.scalar(
            select(BillingCustomer).where(BillingCustomer.account_id == account.id)
        )
    customer_id = known.stripe_customer_id if known else None
    if customer_id is None:
        customer = await client.v1.customers.create_async(
            {
                "email": account.email or None,
                "metadata": {"account_id": str(account.id), "username": account.username},
            },
            {"idempotency_key": f"nycmg-customer-{ctx.domain}-{account.id}"},
        )
        customer_id = customer.id
        async with ctx.db.transaction() as s:
            s.add(BillingCustomer(account_id=account.id, stripe_customer_id=customer_id))
    base = ctx.settings.base_url
    session = await client.v1.checkout.sessions.create_async(
        {
            "mode": "subscription",
            "customer": customer_id,
            "client_reference_id": str(account.id),
            "line_items": [{"price": conf.price, "quantity": 1}],
            "success_url": f"{base}/me?subscribed=1",
            "cancel_url": f"{base}/me",
        }
    )
    return {"id": session.id, "url": session.url}


# ---- webhooks ----------------------------------------------------------------------


async def _customer(session: AsyncSession, customer_id: Any) -> BillingCustomer | None:
    if not isinstance(customer_id, str):
        return None
    return await session.scalar(
        select(BillingCustomer).where(BillingCustomer.stripe_customer_id == customer_id)
    )


async def _subscription(session: AsyncSession, sub_id: Any) -> Subscription | None:
    if not isinstance(sub_id, str):
        return None
    return await session.scalar(
        select(Subscription).where(
            Subscription.provider == "stripe", Subscription.external_id == sub_id
        )
    )


async def _on_checkout(ctx: NodeContext, s: AsyncSession, obj: dict[str, Any]) -> str:
    cust = await _customer(s, obj.get("customer"))
    if cust is None:
        return "unknown customer"
    sub_id = obj.get("subscription")
    cust.stripe_subscription_id, cust.status = sub_id, "active"
    if await _subscription(s, sub_id) is None and isinstance(sub_id, str):
        s.add(
            Subscription(
                account_id=cust.account_id,
                provider="stripe",
                external_id=sub_id,
                status="active",
                amount_minor=int(obj.get("amount_total") or 0),
                currency=normalize_currency(obj.get("currency") or ctx.settings.royalties.currency),
                first_period=_period_of(obj.get("created")),
            )
        )
    return "subscribed"


async def _on_invoice_paid(ctx: NodeContext, s: AsyncSession, obj: dict[str, Any]) -> str:
    cust = await _customer(s, obj.get("customer"))
    if cust is None:
        return "unknown customer"
    amount = obj.get("amount_paid")
    if not isinstance(amount, int) or amount <= 0:
        return "nothing paid"
    sub = await _subscription(s, obj.get("subscription") or cust.stripe_subscription_id)
    await subscriptions.record_payment(
        s,
        account_id=cust.account_id,
        period=_period_of(obj.get("period_start") or obj.get("created")),
        amount=Money(amount, normalize_currency(obj["currency"])),
        provider="stripe",
        external_id=obj["id"],
        subscription_id=sub.id if sub else None,
    )
    cust.status = "active"
    if sub is not None:
        sub.status = "active"
    return "payment recorded"


async def _on_payment_failed(ctx: NodeContext, s: AsyncSession, obj: dict[str, Any]) -> str:
    cust = await _customer(s, obj.get("customer"))
    if cust is None:
        return "unknown customer"
    cust.status = "past_due"
    sub = await _subscription(s, obj.get("subscription") or cust.stripe_subscription_id)
    if sub is not None:
        sub.status = "past_due"
    return "past due"


async def _on_subscription(ctx: NodeContext, s: AsyncSession, obj: dict[str, Any]) -> str:
    sub = await _subscription(s, obj.get("id"))
    if sub is None:
        return "unknown subscription"
    status = obj.get("status")
    if status == "canceled" or obj.get("_deleted"):
        await subscriptions.cancel(s, sub.id)
        return "canceled"
    if status in ("active", "past_due"):
        sub.status = status
    return f"status {status}"


async def _invoice_of_charge(ctx: NodeContext, charge: dict[str, Any] | str) -> str | None:
    if isinstance(charge, str):
        charge = (await stripe_client(ctx).v1.charges.retrieve_async(charge)).to_dict()
    invoice = charge.get("invoice")
    return invoice if isinstance(invoice, str) else None


async def _on_refund(ctx: NodeContext, s: AsyncSession, obj: dict[str, Any]) -> str:
    invoice = await _invoice_of_charge(ctx, obj)
    if invoice is None:
        return "not a subscription charge"
    refunds = (obj.get("refunds") or {}).get("data") or []
    for r in refunds:
        await subscriptions.record_refund(
            s,
            provider="stripe",
            external_id=invoice,
            amount=Money(
                int(r["amount"]), normalize_currency(r.get("currency") or obj["currency"])
            ),
            reason=str(r.get("reason") or "refund")[:200],
            refund_id=r["id"],
        )
    return f"{len(refunds)} refund(s) recorded"


async def _on_dispute(ctx: NodeContext, s: AsyncSession, obj: dict[str, Any]) -> str:
    invoice = await _invoice_of_charge(ctx, obj.get("charge"))
    if invoice is None:
        return "not a subscription charge"
    await subscriptions.record_refund(
        s,
        provider="stripe",
        external_id=invoice,
        amount=Money(int(obj["amount"]), normalize_currency(obj["currency"])),
        reason=f"chargeback: {obj.get('reason') or 'disputed'}"[:200],
        refund_id=obj["id"],
        kind="chargeback",
    )
    return "chargeback recorded"


HANDLED = {
    "checkout.session.completed": _on_checkout,
    "invoice.paid": _on_invoice_paid,
    "invoice.payment_failed": _on_payment_failed,
    "customer.subscription.updated": _on_subscription,
    "customer.subscription.deleted": _on_subscription,
    "charge.refunded": _on_refund,
    "charge.dispute.created": _on_dispute,
}


async def handle_webhook(ctx: NodeContext, payload: bytes, signature: str | None) -> str:
    """Verify a webhook and apply it once; returns what it did (for the log and the answer)."""
    secret = ctx.settings.stripe.webhook_secret
    if not secret:
        raise StripeNotConfigured("set stripe.webhook_secret")
    try:
        event = stripe.Webhook.construct_event(payload, signature or "", secret)
    except stripe.SignatureVerificationError:
        raise BadWebhook("the Stripe-Signature does not match this endpoint's secret") from None
    except ValueError:
        raise BadWebhook("the body is not a Stripe event") from None
    data = event.to_dict()
    kind = data.get("type")
    fn = HANDLED.get(kind)
    obj = (data.get("data") or {}).get("object") or {} if fn else {}
    if kind == "customer.subscription.deleted":
        obj["_deleted"] = True
    try:
        async with ctx.db.transaction() as s:
            if await s.scalar(select(StripeEvent.id).where(StripeEvent.event_id == event.id)):
                return "already handled"
            outcome = await fn(ctx, s, obj) if fn else "ignored"
            s.add(StripeEvent(event_id=event.id, type=str(kind)[:64], outcome=outcome[:300]))
    except IntegrityError:
        return "already handled"  # the same event, delivered twice at once
    log.info("stripe webhook", extra={"event": event.id, "type": kind, "outcome": outcome})
    return outcome


@API.route(
    "POST",
    "/api/v1/billing/checkout",
    name="api.billing_checkout",
    summary="Start a Stripe Checkout session for the caller's subscription",
    tag="royalties",
    role="fan",
)
async def checkout_view(call: Call) -> dict[str, str]:
    return await start_checkout(call.ctx, call.account)


@API.route(
    "POST",
    "/api/v1/billing/stripe/webhook",
    name="api.billing_stripe_webhook",
    summary="Stripe's webhooks (verified with the Stripe-Signature header)",
    tag="royalties",
)
async def webhook_view(call: Call) -> dict[str, str]:
    request = call.request
    if (request.content_length or 0) > MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge("webhook bodies are limited")
    payload = await read_at_most(request, MAX_WEBHOOK_BYTES)
    if len(payload) > MAX_WEBHOOK_BYTES:
        raise PayloadTooLarge("webhook bodies are limited")
    outcome = await handle_webhook(call.ctx, payload, request.headers.get("Stripe-Signature"))
    return {"received": "true", "outcome": outcome}


def install_api(app: web.Application) -> None:
    """Add royalties' declared endpoints (the core installed its own before us)."""
    API.install(app)


def setup(app: web.Application) -> None:
    from . import payouts  # declares its endpoints

    install_api(app)
    payouts.register_jobs(app[CTX])

    async def _client_ctx(app: web.Application):
        yield
        await close_client(app[CTX])

    app.cleanup_ctx.append(_client_ctx)
