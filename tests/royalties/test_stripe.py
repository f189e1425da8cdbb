"""Stripe, as a fan, an artist and a node admin meet it: the real `stripe` library
talking to a fake Stripe on loopback (never the internet), webhooks signed
with Stripe's own scheme, Connect accounts and transfers with idempotency keys."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from node.models import Account
from royalties import ledger, payouts
from royalties.clearing_models import Payout
from royalties.models import Subscription, SubscriptionPayment
from royalties.money import Money
from tests.conftest import build_node, free_port
from tests.royalties.fake_stripe import SECRET_KEY, WEBHOOK_SECRET, FakeStripe


@pytest.fixture
async def stripe_node(tmp_path, databases, aiohttp_client):
    fake = FakeStripe()
    await fake.start(free_port())
    node = await build_node(
        tmp_path / "node",
        databases,
        **{
            "royalties.provider": "stripe",
            "stripe.secret_key": SECRET_KEY,
            "stripe.webhook_secret": WEBHOOK_SECRET,
            "stripe.api_base": fake.base,
            "stripe.price": "price_monthly_999",
            "payouts.threshold_minor": 1000,
        },
    )
    node.client = await aiohttp_client(node.app)
    yield node, fake
    await fake.stop()


def this_period() -> str:
    now = datetime.now(UTC)
    return f"{now.year:04d}-{now.month:02d}"


def next_month_start() -> int:
    now = datetime.now(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return int(datetime(year, month, 2, tzinfo=UTC).timestamp())


async def deliver(node, fake, event, **kw):
    payload, headers = fake.signed(event, **kw)
    return await node.client.post("/api/v1/billing/stripe/webhook", data=payload, headers=headers)


async def payments_of(node, username):
    async with node.ctx.db.read_session() as s:
        account = await s.scalar(select(Account).where(Account.username == username))
        rows = (
            await s.scalars(
                select(SubscriptionPayment)
                .where(SubscriptionPayment.account_id == account.id)
                .order_by(SubscriptionPayment.id)
            )
        ).all()
    return [(p.period, p.kind, p.amount_minor, p.currency) for p in rows]


async def subscribe(node, fake, username="maya"):
    await node.user(username)
    resp = await node.client.post("/api/v1/billing/checkout", headers=node.auth(username))
    assert resp.status == 200, await resp.text()
    checkout = await resp.json()
    assert checkout["url"].startswith(fake.base + "/pay/cs_")
    events = fake.complete_checkout(checkout["id"], 999, "usd")
    for event in events:
        resp = await deliver(node, fake, event)
        assert resp.status == 200, await resp.text()
    return events


async def test_a_fan_subscribes_through_checkout_and_each_renewal_is_booked_once(stripe_node):
    node, fake = stripe_node
    events = await subscribe(node, fake)

    # Stripe saw a customer for maya and a subscription Checkout for the node's price.
    (customer,) = fake.of_kind("customer")
    assert customer["metadata"]["username"] == "maya"
    (session,) = fake.of_kind("checkout.session")
    assert session["mode"] == "subscription"
    assert session["line_items"] == [{"price": "price_monthly_999", "quantity": "1"}]
    assert await payments_of(node, "maya") == [(this_period(), "payment", 999, "USD")]

    # Stripe retries a webhook: it counts once.
    resp = await deliver(node, fake, events[1])
    assert (await resp.json())["outcome"] == "already handled"

    # Next month Stripe renews the subscription.
    (sub,) = fake.of_kind("subscription")
    await deliver(node, fake, fake.renew(sub["id"], 999, "usd", next_month_start()))
    periods = [p for p, *_ in await payments_of(node, "maya")]
    assert len(periods) == 2 and periods[0] < periods[1]
    async with node.ctx.db.read_session() as s:
        row = await s.scalar(select(Subscription).where(Subscription.external_id == sub["id"]))
    assert (row.provider, row.status, row.amount_minor, row.currency) == (
        "stripe",
        "active",
        999,
        "USD",
    )


async def test_webhooks_not_signed_by_stripe_are_refused_and_change_nothing(stripe_node):
    node, fake = stripe_node
    await node.user("maya")
    resp = await node.client.post("/api/v1/billing/checkout", headers=node.auth("maya"))
    checkout = await resp.json()
    _, paid = fake.complete_checkout(checkout["id"], 999, "usd")

    forged = await deliver(node, fake, paid, secret="whsec_someone_else")
    stale = await deliver(node, fake, paid, at=int(time.time()) - 3600)
    unsigned = await node.client.post(
        "/api/v1/billing/stripe/webhook",
        data=json.dumps(paid),
        headers={"Content-Type": "application/json"},
    )
    for resp in (forged, stale, unsigned):
        assert resp.status == 400
        assert resp.content_type == "application/problem+json"
    assert await payments_of(node, "maya") == []


async def test_failed_payment_refund_chargeback_and_cancellation(stripe_node):
    node, fake = stripe_node
    await subscribe(node, fake)
    (sub,) = fake.of_kind("subscription")
    (invoice,) = fake.of_kind("invoice")
    charge = fake.objects[invoice["charge"]]

    await deliver(
        node,
        fake,
        fake.event(
            "invoice.payment_failed",
            {"id": "in_failed", "customer": sub["customer"], "subscription": sub["id"]},
        ),
    )
    async with node.ctx.db.read_session() as s:
        row = await s.scalar(select(Subscription).where(Subscription.external_id == sub["id"]))
    assert row.status == "past_due"

    refund = {"id": "re_1", "amount": 300, "currency": "usd", "reason": "requested_by_customer"}
    await deliver(
        node,
        fake,
        fake.event("charge.refunded", {**charge, "refunds": {"data": [refund]}}),
    )
    dispute = {"id": "dp_1", "charge": charge["id"], "amount": 699, "currency": "usd"}
    resp = await deliver(node, fake, fake.event("charge.dispute.created", dispute))
    assert (await resp.json())["outcome"] == "chargeback recorded"
    # The node looked the disputed charge up through the API to find its invoice.
    assert ("GET", f"/v1/charges/{charge['id']}") in [(m, p) for m, p, *_ in fake.requests]

    await deliver(
        node, fake, fake.event("customer.subscription.deleted", {**sub, "status": "canceled"})
    )
    assert await payments_of(node, "maya") == [
        (this_period(), "payment", 999, "USD"),
        (this_period(), "refund", -300, "USD"),
        (this_period(), "chargeback", -699, "USD"),
    ]
    async with node.ctx.db.read_session() as s:
        row = await s.scalar(select(Subscription).where(Subscription.external_id == sub["id"]))
    assert row.status == "canceled"


async def test_artists_are_paid_by_connect_transfers_that_never_pay_twice(stripe_node):
    node, fake = stripe_node
    await node.user("jay", "artist")
    await node.user("kim", "artist")
    resp = await node.client.post("/api/v1/payouts/stripe-account", headers=node.auth("jay"))
    assert resp.status == 200, await resp.text()
    connected = await resp.json()
    assert connected["account"].startswith("acct_")
    assert connected["url"] == f"{fake.base}/onboard/{connected['account']}"

    jay, kim = node.ctx.urls.actor("jay"), node.ctx.urls.actor("kim")
    async with node.ctx.db.transaction() as s:
        for artist, cents in ((jay, 4321), (kim, 999)):  # kim stays under the threshold
            await ledger.post(
                s,
                kind="test",
                memo="royalties earned",
                ref=f"earned:{artist}",
                lines=[
                    ledger.Line("cash", debit=Money(cents, "USD")),
                    ledger.Line(ledger.artist_account(artist), credit=Money(cents, "USD")),
                ],
            )
        made = await payouts.create_payouts(node.ctx, s, "USD")
    assert [(p.artist_uri, p.amount_minor) for p in made] == [(jay, 4321)]
    await node.run_jobs()

    async with node.ctx.db.read_session() as s:
        (payout,) = (await s.scalars(select(Payout))).all()
        assert await ledger.balance(s, ledger.artist_account(jay), "USD") == Money(0, "USD")
        assert await ledger.balance(s, "payouts_pending", "USD") == Money(0, "USD")
    (transfer,) = fake.of_kind("transfer")
    assert (transfer["amount"], transfer["currency"], transfer["destination"]) == (
        4321,
        "usd",
        connected["account"],
    )
    assert (payout.state, payout.reference, payout.provider) == ("paid", transfer["id"], "stripe")
    keys = [k for m, p, _, k in fake.requests if p == "/v1/transfers"]
    assert keys == [payout.idempotency_key]

    # A retry after a timeout sends the same key: Stripe replays, nobody is paid twice.
    again = await payouts.stripe_transfer(
        node.ctx,
        destination=connected["account"],
        amount=Money(4321, "USD"),
        key=payout.idempotency_key,
        description=f"nycmg payout {payout.id}",
    )
    assert again == transfer["id"]
    assert len(fake.of_kind("transfer")) == 1


async def test_checkout_needs_stripe_to_be_the_provider(node):
    await node.user("maya")
    resp = await node.client.post("/api/v1/billing/checkout", headers=node.auth("maya"))
    assert resp.status == 409
    assert (await resp.json())["title"] == "Stripe is not configured on this node"


async def test_a_node_pays_its_settlement_transfer_by_connect_once(stripe_node):
    """Inter-node transfers go the same way: to the payee node's connected account."""
    from royalties.clearing_models import ClearingSettlement, ClearingTransfer

    node, fake = stripe_node
    me, bronx = node.ctx.urls.node_actor(), "https://bronx.example/actor"
    connected = await payouts.connect(node.ctx, bronx)  # Bronx's account, as its admin set it up
    settlement_uri = "https://house.example/clearing/settlements/1"
    async with node.ctx.db.transaction() as s:
        s.add(
            ClearingSettlement(
                uri=settlement_uri,
                role="member",
                period="2026-10",
                house_uri="https://house.example/actor",
                hash="sha256:0",
                document={},
                state="accepted",
                answers={},
                problems=[],
            )
        )
        s.add(
            ClearingTransfer(
                uri=settlement_uri + "/transfers/1",
                settlement_uri=settlement_uri,
                period="2026-10",
                payer_uri=me,
                payee_uri=bronx,
                currency="USD",
                amount_minor=2120,
                state="due",
            )
        )
    t = await payouts.pay_transfer(node.ctx, settlement_uri + "/transfers/1")
    (transfer,) = fake.of_kind("transfer")
    assert (transfer["destination"], transfer["amount"]) == (connected["account"], 2120)
    assert (t.state, t.reference, t.provider) == ("paid", transfer["id"], "stripe")
    # Paying again changes nothing and asks Stripe for nothing.
    asked = len(fake.requests)
    again = await payouts.pay_transfer(node.ctx, settlement_uri + "/transfers/1")
    assert again.state == "paid" and len(fake.requests) == asked
    async with node.ctx.db.read_session() as s:
        assert await ledger.balance(s, "clearing:https://house.example/actor", "USD") == Money(
            2120, "USD"
        )
