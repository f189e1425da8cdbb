"""Venue pages: anyone sees what a venue's device recently heard; an artist
sees where their tracks were played in rooms. Held-back plays are not shown."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from detection.client import DeviceClient, declared
from node.models import Actor, Play, Track

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _require_chromium() -> None:
    import os

    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need {CHROMIUM} in CI")
        pytest.skip("needs /usr/bin/chromium")


async def _scene(node, post) -> tuple[dict, DeviceClient, list[str]]:
    """A venue with a device, and an artist with two tracks."""
    await node.user("mo", "artist")
    token = await node.user("lumen", "artist")
    venue = await (
        await post(
            "/api/v1/venues",
            {"name": "Pioneer Works", "borough": "Brooklyn", "address": "159 Pioneer St"},
            node.auth("mo"),
        )
    ).json()
    cred = (
        await (await post("/api/v1/devices", {"venue": venue["uuid"]}, node.auth("mo"))).json()
    )["credential"]
    uris = []
    async with node.ctx.db.transaction() as s:
        artist = (await s.scalars(select(Actor).where(Actor.handle == "lumen"))).one()
        for i, title in enumerate(("Harbor Lights", "Red Hook Drift")):
            t = Track(
                uri=node.ctx.urls.obj("tracks", f"00000000-0000-4000-8000-00000000000{i}"),
                uuid=f"00000000-0000-4000-8000-00000000000{i}",
                artist_id=artist.id,
                title=title,
                isrc=f"USNYC2650{i:03d}",
                state="ready",
                genres=[],
                media={},
            )
            s.add(t)
            uris.append(t.uri)
    assert token
    return venue, DeviceClient.from_credential(cred), uris


async def _night(node, client: DeviceClient, uris: list[str], send) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=3)
    items = [
        declared(1, t0, 240_000, uris[0]),
        declared(2, t0 + timedelta(minutes=4), 200_000, uris[1]),
    ]
    body = client.body("night", items)
    r = await send(client.batch_path, body, client.headers(body))
    assert r.status == 200


async def test_the_venue_page_shows_what_was_heard_and_the_artist_sees_it_too(node):
    async def post(path, json, headers):
        return await node.client.post(path, json=json, headers=headers)

    async def send(path, body, headers):
        return await node.client.post(path, data=body, headers=headers)

    venue, client, uris = await _scene(node, post)
    await _night(node, client, uris, send)

    page = await (await node.client.get(f"/venues/{venue['uuid']}")).text()
    stats = await (await node.client.get("/@lumen/venues")).text()

    assert "Pioneer Works" in page and "Heard here recently" in page
    assert page.index("Red Hook Drift") < page.index("Harbor Lights")  # newest first
    assert "2 plays of 2 tracks in the last 30 days" in page
    assert "2 venue plays" in stats and "Pioneer Works" in stats and "Harbor Lights" in stats
    artist_page = await (await node.client.get("/@lumen")).text()
    assert 'href="/@lumen/venues"' in artist_page


async def test_a_held_back_play_is_not_shown(node):
    async def post(path, json, headers):
        return await node.client.post(path, json=json, headers=headers)

    async def send(path, body, headers):
        return await node.client.post(path, data=body, headers=headers)

    venue, client, uris = await _scene(node, post)
    await _night(node, client, uris, send)
    from detection.device_models import PlayHold

    async with node.ctx.db.transaction() as s:
        play = (await s.scalars(select(Play).where(Play.track_uri == uris[0]))).one()
        s.add(PlayHold(play_id=play.id, device_id=play.device_id, rule="rate", reason="test"))

    page = await (await node.client.get(f"/venues/{venue['uuid']}")).text()

    assert "Red Hook Drift" in page and "Harbor Lights" not in page


async def test_unknown_venues_and_artists_are_not_found(node):
    r1 = await node.client.get("/venues/00000000-0000-4000-8000-000000000000")
    r2 = await node.client.get("/venues/not-a-uuid")
    r3 = await node.client.get("/@nobody/venues")

    assert (r1.status, r2.status, r3.status) == (404, 404, 404)


@pytest.mark.browser
async def test_a_visitor_opens_the_venue_page_in_a_browser(live_node, tmp_path):
    _require_chromium()
    from playwright.async_api import async_playwright

    async with aiohttp.ClientSession(live_node.base_url) as http:

        async def post(path, json, headers):
            return await http.post(path, json=json, headers=headers)

        async def send(path, body, headers):
            return await http.post(path, data=body, headers=headers)

        venue, client, uris = await _scene(live_node, post)
        await _night(live_node, client, uris, send)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{live_node.base_url}/venues/{venue['uuid']}")
            heard = page.locator("section[aria-labelledby=heard-head] li")
            assert await heard.count() == 2
            assert "Red Hook Drift" in await heard.first.inner_text()
            await page.get_by_role("link", name="Lumen").first.click()
            await page.wait_for_url("**/@lumen")
            await page.goto(f"{live_node.base_url}/@lumen/venues")
            await page.get_by_role("link", name="Pioneer Works").first.click()
            await page.wait_for_url(f"**/venues/{venue['uuid']}")
            await page.screenshot(
                path=os.environ.get("NYCMG_SHOT", str(tmp_path / "venue.png")), full_page=True
            )
        finally:
            await browser.close()
