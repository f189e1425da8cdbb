"""The console's Clearing page in a real browser: an admin pays artists out of
their balances, proposes a grant from the foundation pool that a curator
approves, and the JSON twin says the same."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from royalties import ledger
from royalties.clearing_models import FoundationGrant, Payout
from royalties.money import Money
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, _require_chromium


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch):
    from argon2 import PasswordHasher

    import node.auth

    monkeypatch.setattr(
        node.auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
async def chromium() -> AsyncIterator[object]:
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(browser, base: str, username: str, password: str):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = await context.new_page()
    await page.goto(f"{base}/admin/clearing")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url(f"{base}/admin/clearing")
    return page


async def test_an_admin_pays_artists_and_a_curator_approves_a_grant(live_node, chromium):
    node, base = live_node, live_node.base_url
    await node.user("ana", "admin", password="a long admin password")
    await node.user("cleo", "curator", password="a long curator password")
    await node.user("jay", "artist")
    await node.user("kim", "artist")
    jay, kim = node.ctx.urls.actor("jay"), node.ctx.urls.actor("kim")
    # Last month's close credited Jay 25.00 and Kim 3.00, and the foundation 40.00.
    async with node.ctx.db.transaction() as s:
        for account, cents in (
            (ledger.artist_account(jay), 2500),
            (ledger.artist_account(kim), 300),
            ("foundation", 4000),
        ):
            await ledger.post(
                s,
                kind="test",
                memo="a closed month",
                ref=f"close:{account}",
                lines=[
                    ledger.Line("subscriptions", debit=Money(cents, "USD")),
                    ledger.Line(account, credit=Money(cents, "USD")),
                ],
            )

    page = await sign_in(chromium, base, "ana", "a long admin password")
    assert "4000" in await page.inner_text("section[aria-labelledby=h-foundation]")

    # Ana books payouts: only Jay is over the 20.00 threshold.
    await page.click("form[action='/admin/clearing/payouts/run'] button")
    await page.wait_for_selector("text=1 payout(s) booked.")
    row = page.locator("section[aria-labelledby=h-payouts] tbody tr")
    assert await row.count() == 1
    assert jay in await row.inner_text()
    # She wires it and records the bank's reference.
    await row.locator("input[name=reference]").fill("WIRE-2026-0042")
    await row.locator("button").click()
    await page.wait_for_selector("text=marked paid")
    assert "WIRE-2026-0042" in await page.locator("section[aria-labelledby=h-payouts]").inner_text()

    # She proposes a grant to Kim; she cannot approve her own proposal.
    await page.fill("form[action='/admin/clearing/grants'] input[name=artist]", kim)
    await page.fill("form[action='/admin/clearing/grants'] input[name=amount]", "1500")
    await page.fill("form[action='/admin/clearing/grants'] input[name=reason]", "studio time")
    await page.click("form[action='/admin/clearing/grants'] button")
    await page.wait_for_selector("text=Grant proposed")

    # Cleo, a curator, approves it.
    curator = await sign_in(chromium, base, "cleo", "a long curator password")
    assert await curator.locator("form[action='/admin/clearing/payouts/run']").count() == 0
    await curator.click("form[action='/admin/clearing/grants/decide'] button:has-text('Approve')")
    await curator.wait_for_selector("text=approved")

    async with node.ctx.db.read_session() as s:
        (payout,) = (await s.scalars(select(Payout))).all()
        (grant,) = (await s.scalars(select(FoundationGrant))).all()
        assert (payout.state, payout.reference, payout.paid_by) == ("paid", "WIRE-2026-0042", "ana")
        assert (grant.state, grant.proposed_by, grant.approved_by) == ("approved", "ana", "cleo")
        assert await ledger.balance(s, ledger.artist_account(kim), "USD") == Money(1800, "USD")
        assert await ledger.balance(s, "foundation", "USD") == Money(2500, "USD")
        assert await ledger.balance(s, ledger.artist_account(jay), "USD") == Money(0, "USD")

    # The JSON twin, for scripts.
    token = await node.user("ops", "admin")
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{base}/admin/clearing.json", headers={"Authorization": f"Bearer {token}"}
        ) as r:
            data = await r.json()
    assert data["foundation"] == {"amount": 2500, "currency": "USD"}
    assert [(p["artist"], p["state"]) for p in data["payouts"]] == [(jay, "paid")]
    assert data["statements_out"] == [] and data["settlements"] == []
