"""The Devices console: an admin registers a venue's device in the browser,
copies its credential (shown once), watches it upload, and quarantines it;
curators see devices and held plays but change nothing."""

from __future__ import annotations

import os
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from detection.client import DeviceClient, declared
from node.models import Actor, Track

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _require_chromium() -> None:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need {CHROMIUM} in CI")
        pytest.skip("browser tests skipped: /usr/bin/chromium not installed")


@pytest.fixture
async def page():
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        context = await chromium.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        yield await context.new_page()
        await chromium.close()


@pytest.mark.browser
async def test_an_admin_registers_a_device_copies_its_credential_and_quarantines_it(
    live_node, page
):
    await live_node.user("ana", "admin", password="a long admin password")
    token = await live_node.user("mo", "artist")
    base = live_node.base_url
    async with aiohttp.ClientSession(base) as http:
        r = await http.post(
            "/api/v1/venues",
            json={"name": "Baby's All Right", "borough": "Brooklyn"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status == 201
    async with live_node.ctx.db.transaction() as s:
        artist = (await s.scalars(select(Actor).where(Actor.handle == "mo"))).one()
        s.add(
            Track(
                uri=live_node.ctx.urls.obj("tracks", "x1"),
                artist_id=artist.id,
                title="Kent Ave",
                isrc="USNYC2611111",
                state="ready",
                genres=[],
                media={},
            )
        )

    await page.goto(f"{base}/admin/devices")
    await page.fill("input[name=username]", "ana")
    await page.fill("input[name=password]", "a long admin password")
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url(f"{base}/admin/devices")
    assert "No device registered yet." in await page.content()

    await page.click("summary:has-text('Register a device')")
    await page.fill("input[name=name]", "stage left")
    await page.click("form[action='/admin/devices'] button[type=submit]")
    await page.wait_for_url("**/admin/devices/*")
    credential = await page.inner_text("#credential")
    cred = tomllib.loads(credential)["device"]
    assert cred["name"] == "stage left" and "PRIVATE KEY" in cred["private_key_pem"]

    # Shown once: the same page again has no credential.
    await page.reload()
    assert await page.locator("#credential").count() == 0

    # The device uploads with that credential; the console shows it seen.
    client = DeviceClient.from_credential(cred)
    body = client.body(
        "first",
        [declared(1, datetime.now(UTC) - timedelta(minutes=5), 200_000, "USNYC2611111")],
    )
    async with aiohttp.ClientSession() as http:
        r = await http.post(client.batch_url, data=body, headers=client.headers(body))
        assert r.status == 200
    await page.reload()
    plays = page.locator("#plays tbody tr")
    assert await plays.count() == 1
    assert "Kent Ave" in await plays.first.inner_text()

    await page.fill("form[action$='/quarantine'] input[name=reason]", "testing the mic")
    await page.click("form[action$='/quarantine'] button[type=submit]")
    await page.wait_for_url("**/admin/devices/*")
    assert "stage left is quarantined." in await page.content()
    async with aiohttp.ClientSession() as http:
        r = await http.post(client.batch_url, data=body, headers=client.headers(body))
        assert r.status == 403

    await page.goto(f"{base}/admin/audit")
    assert "Quarantined a device" in await page.content()


async def test_curators_see_devices_but_only_admins_register_them(node):
    await node.user("cora", "curator")
    await node.user("ana", "admin")
    await node.user("mo", "artist")
    venue = await (
        await node.client.post(
            "/api/v1/venues", json={"name": "Trans-Pecos"}, headers=node.auth("mo")
        )
    ).json()

    as_curator = await node.client.post(
        "/admin/devices.json", json={"venue": venue["uuid"]}, headers=node.auth("cora")
    )
    as_admin = await node.client.post(
        "/admin/devices.json",
        json={"venue": "Trans-Pecos", "name": "bar"},
        headers=node.auth("ana"),
    )
    listed = await (await node.client.get("/admin/devices.json", headers=node.auth("cora"))).json()

    assert as_curator.status == 403
    assert as_admin.status == 201
    created = await as_admin.json()
    assert "PRIVATE KEY" in created["credential"]["private_key_pem"]
    assert [d["name"] for d in listed["devices"]] == ["bar"]
    assert "private_key_pem" not in str(listed)
    detail = await (
        await node.client.get(
            f"/admin/devices/{listed['devices'][0]['id']}.json", headers=node.auth("cora")
        )
    ).json()
    assert detail["device"]["state"] == "active" and detail["plays"] == []
