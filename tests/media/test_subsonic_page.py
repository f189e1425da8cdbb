"""`/me/subsonic` in a real browser: a fan sets the password their Subsonic app
uses and makes and revokes an API key, then the app signs in with them."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import libsonic
import pytest
from aiohttp import ClientSession

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
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need {CHROMIUM}")
        pytest.skip("/usr/bin/chromium not installed")


@pytest.fixture
async def page():
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(10_000)
        yield await context.new_page()
        await context.close()
        await browser.close()


async def ping(node, user: str, password: str) -> bool:
    host, port = node.base_url.rsplit(":", 1)
    conn = libsonic.Connection(host, user, password, int(port), appName="t", legacyAuth=False)
    try:
        return await asyncio.to_thread(conn.ping)
    except libsonic.errors.CredentialError:
        return False


async def token_info(node, key: str) -> dict:
    async with ClientSession() as http:
        async with http.get(
            f"{node.base_url}/rest/tokenInfo", params={"apiKey": key, "f": "json", "c": "t"}
        ) as r:
            return (await r.json())["subsonic-response"]


async def sign_in(page, node, username: str) -> None:
    await page.goto(f"{node.base_url}/login?next=/me/subsonic")
    await page.fill("#login-username", username)
    await page.fill("#login-password", "correct horse battery")
    await page.click("form.form button[type=submit]")
    await page.wait_for_url("**/me/subsonic")


async def test_a_fan_sets_a_subsonic_password_and_their_app_signs_in(live_node, page):
    node = live_node
    await node.user("fan")
    await page.goto(f"{node.base_url}/me/subsonic")
    assert "/login" in page.url  # signed out: sent to sign in first

    await sign_in(page, node, "fan")
    assert await page.text_content("#subsonic-password-state") == "Not set yet"
    assert node.base_url in await page.text_content("#subsonic-connection")
    assert not await ping(node, "fan", "correct horse battery")  # not the login password

    await page.fill("#subsonic-password", "my phone pass")
    await page.fill("#subsonic-confirm", "something else")
    await page.click("text=Save password")
    assert "differ" in await page.text_content("#form-error")

    await page.fill("#subsonic-password", "my phone pass")
    await page.fill("#subsonic-confirm", "my phone pass")
    await page.click("text=Save password")
    await page.wait_for_selector("text=Your Subsonic password is set.")
    assert await page.text_content("#subsonic-password-state") == "Set"
    assert await ping(node, "fan", "my phone pass")

    await page.click("text=Remove the password")
    await page.wait_for_selector("text=Subsonic password removed")
    assert not await ping(node, "fan", "my phone pass")


async def test_a_fan_makes_and_revokes_an_api_key(live_node, page):
    node = live_node
    await node.user("fan")
    await sign_in(page, node, "fan")
    await page.fill("#subsonic-key-name", "Symfonium")
    await page.click("text=Make a key")
    key = (await page.text_content("#subsonic-new-key")).strip()
    assert (await token_info(node, key))["tokenInfo"]["username"] == "fan"

    await page.goto(f"{node.base_url}/me/subsonic")
    assert await page.locator("#subsonic-new-key").count() == 0  # shown once only
    assert "Symfonium" in await page.text_content("#subsonic-keys")
    await page.click("button[aria-label='Revoke Symfonium']")
    await page.wait_for_selector("text=Key revoked.")
    assert await page.locator("#subsonic-no-keys").count() == 1
    assert (await token_info(node, key))["error"]["code"] == 44


async def test_the_form_refuses_a_post_from_another_site(live_node):
    node = live_node
    await node.user("fan")
    async with ClientSession() as http:
        async with http.post(
            f"{node.base_url}/me/subsonic",
            data={"action": "set_password", "password": "x" * 10, "confirm": "x" * 10},
            headers={**node.auth("fan"), "Accept": "text/html"},
        ) as r:
            assert r.status == 403
    assert not await ping(node, "fan", "x" * 10)
