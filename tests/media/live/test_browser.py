"""In a real browser: an artist goes live from the node's page with a (fake) microphone,
and a fan on another node listens through their own node's relay and chats.

Headless Debian Chromium with `--use-fake-device-for-media-stream` (a beeping
microphone) and `--use-fake-ui-for-media-stream` (the permission prompt says yes).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]

PACKETS_RECEIVED = """async () => {
  const live = window.nycmgLive;
  if (!live) return 0;
  const stats = await live.pc.getStats();
  let n = 0;
  stats.forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "audio") n += r.packetsReceived; });
  return n;
}"""

PACKETS_SENT = PACKETS_RECEIVED.replace("inbound-rtp", "outbound-rtp").replace(
    "packetsReceived", "packetsSent"
)


@pytest.fixture
async def chromium():
    if not HAVE_CHROMIUM:
        pytest.skip("needs /usr/bin/chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(browser, base: str, username: str):
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill("correct horse battery")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/")
    return page


async def until(page, script: str, minimum: int, timeout: float = 20.0) -> int:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await page.evaluate(script)
        if value >= minimum:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"only {value} after {timeout} s")
        await asyncio.sleep(0.25)


async def test_an_artist_goes_live_from_the_browser_and_a_fan_elsewhere_listens(network, chromium):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", role="artist", name="Jay Fulton")
    await queens.user("rosa")
    async with aiohttp.ClientSession() as http:
        async with http.post(
            queens.base_url + "/api/v1/follows",
            json={"target": f"@jay@{brooklyn.ctx.domain}"},
            headers=queens.auth("rosa"),
        ) as resp:
            assert resp.status == 201

    # Jay goes live from the node's page: picks the (fake) microphone, sees its level, starts.
    artist = await sign_in(chromium, brooklyn.base_url, "jay")
    await artist.goto(brooklyn.base_url + "/live/go")
    await artist.get_by_label("Title").fill("Rooftop session")
    await artist.get_by_role("button", name="Start").click()
    await artist.get_by_text("You are live.").wait_for()
    await until(artist, PACKETS_SENT, 50)
    assert await artist.locator("#live-level").evaluate("m => m.value") > 0
    assert await artist.locator("#live-device option").count() >= 1

    # Rosa, on Queens, sees Jay in the "live now" strip of her home page and listens there.
    fan = await sign_in(chromium, queens.base_url, "rosa")
    key = f"jay@{brooklyn.ctx.domain}"
    for _ in range(40):
        await fan.goto(queens.base_url + "/")
        if await fan.locator(".live-strip").count():
            break
        await asyncio.sleep(0.5)
    await fan.locator(".live-chip", has_text="Jay Fulton").click()
    await fan.wait_for_url(f"{queens.base_url}/live/{key}")
    await fan.get_by_role("button", name="Listen").click()
    await fan.get_by_text("Listening live.").wait_for()
    assert await until(fan, PACKETS_RECEIVED, 50) >= 50
    # Through Queens' relay: Brooklyn serves one viewer, Queens one fan.
    from media.live.http import LIVE

    assert queens.app[LIVE].viewer_count(key) == 1
    assert brooklyn.app[LIVE].viewer_count("jay") == 1

    # She chats on her node's live page; Jay reads it on his own live page on Brooklyn.
    await fan.locator(".live-chat-log").wait_for(state="attached")
    await asyncio.sleep(1.0)  # Queens' chat bridge to Brooklyn connects
    await fan.get_by_label("Message").fill("hello from Queens <b>!</b>")
    await fan.get_by_role("button", name="Send").click()
    await fan.locator(".live-chat-log li", has_text="hello from Queens <b>!</b>").wait_for()
    own = await artist.context.new_page()
    await own.goto(brooklyn.base_url + "/live/jay")
    line = own.locator(".live-chat-log li", has_text="hello from Queens <b>!</b>")
    await line.wait_for()
    assert await line.locator("b").count() == 0  # shown as text, never as HTML
    await own.close()

    # Jay stops; the session ends.
    await artist.get_by_role("button", name="Stop").click()
    await artist.get_by_text("Not live.").wait_for()
    for _ in range(40):
        if "jay" not in brooklyn.app[LIVE].broadcasts:
            break
        await asyncio.sleep(0.25)
    assert "jay" not in brooklyn.app[LIVE].broadcasts
