"""An admin runs the royalties from the console: grants, venue fees, held plays, the Close button."""

from __future__ import annotations

from sqlalchemy import select

from node.models import AuditEntry
from royalties.holds import hold_play

PERIOD = "2026-10"
PASSWORD = "correct horse battery"


async def test_an_admin_grants_sets_fees_releases_and_closes_through_the_json_twins(scene, node):
    await node.user("boss", role="admin")
    await node.user("cura", role="curator")
    await scene.local_artist("xavi")
    await scene.fan("ana")
    await scene.venue("Club Bushwick")
    admin = node.auth("boss")

    r = await node.client.post(
        "/admin/royalties/subscriptions/grant.json",
        json={"username": "ana", "amount": 999, "currency": "USD", "from": PERIOD, "months": 2},
        headers=admin,
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["until"] == "2026-11"
    r = await node.client.post(
        "/admin/royalties/licences.json",
        json={"venue": "Club Bushwick", "amount": 25_000},
        headers=admin,
    )
    assert r.status == 200
    held = await scene.play("ana", "xavi", times=2)
    async with node.ctx.db.transaction() as s:
        await hold_play(s, held[0], "looks scripted", "admin")

    page = await (await node.client.get("/admin/royalties/held.json", headers=admin)).json()
    assert [h["reason"] for h in page["held"]] == ["looks scripted"]
    # a curator sees the list but may not release or close
    r = await node.client.post(
        "/admin/royalties/release-play.json", json={"play": held[0]}, headers=node.auth("cura")
    )
    assert r.status == 403
    r = await node.client.post(
        "/admin/royalties/release-play.json", json={"play": held[0]}, headers=admin
    )
    assert r.status == 200
    r = await node.client.post(
        "/admin/royalties/release-play.json", json={"play": held[0]}, headers=admin
    )
    assert r.status == 404

    r = await node.client.post(
        "/admin/royalties/close.json", json={"period": "2099-01"}, headers=admin
    )
    assert r.status == 400
    r = await node.client.post(
        "/admin/royalties/close.json", json={"period": PERIOD}, headers=admin
    )
    assert r.status == 200
    body = await r.json()
    usd = body["totals"]["USD"]
    assert usd["collected"] == 999 and usd["venue_fees"] == 25_000
    assert usd["qualified_plays"] == 2

    overview = await (
        await node.client.get("/admin/royalties.json", headers=node.auth("cura"))
    ).json()
    october = next(p for p in overview["periods"] if p["period"] == PERIOD)
    assert october["state"] == "closed"
    assert october["totals"]["USD"]["collected"]["display"] == "9.99 USD"
    assert overview["licences"][0]["fee"]["display"] == "250.00 USD"
    async with node.ctx.db.read_session() as s:
        actions = set((await s.scalars(select(AuditEntry.action))).all())
    assert {
        "royalties.close",
        "royalties.release",
        "subscription.grant",
        "venue.licence",
    } <= actions


async def test_the_close_button_in_a_browser(live_scene, live_node, page):
    scene = live_scene
    await live_node.user("boss", role="admin", password=PASSWORD)
    await scene.local_artist("xavi")
    await scene.fan("ana", fee=1000)
    await scene.play("ana", "xavi", times=3)

    base = live_node.base_url
    await page.goto(base + "/admin/royalties")
    await page.get_by_label("Username").fill("boss")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base + "/admin/royalties")
    await page.get_by_role("button", name=f"Close {PERIOD}").click()
    await page.wait_for_url(base + "/admin/royalties")
    row = page.locator(f'#periods tr[data-period="{PERIOD}"]')
    text = await row.inner_text()
    assert "closed" in text.lower() and "10.00 USD" in text and "8.50 USD" in text
    assert await page.get_by_role("button", name=f"Close {PERIOD}").count() == 0
