"""An artist opens the studio in a real browser (Debian's headless Chromium),
uploads a master by the file picker and by drag and drop, watches the
progress bar, and sees the track become ready; a bad file is refused with
its reason; tracks gather into a release."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession

from media import synth

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
PASSWORD = "correct horse battery"


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium")


@pytest.fixture
async def page() -> AsyncIterator[object]:
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        try:
            yield await context.new_page()
        finally:
            await browser.close()


async def sign_in(page, base: str, username: str) -> None:
    await page.goto(base + "/login?next=/studio")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base + "/studio")


async def test_an_artist_uploads_in_the_browser_and_sees_progress_then_ready(live_node, page):
    base = live_node.base_url
    await live_node.user("ana", "artist", password=PASSWORD)
    await sign_in(page, base, "ana")
    assert await page.locator("h1").inner_text() == "Upload and publish"

    # The file picker, with a title typed in.
    await page.get_by_label("Title").fill("Night Bus")
    await page.locator("#studio-file").set_input_files(
        {
            "name": "take1.wav",
            "mimeType": "audio/wav",
            "buffer": synth.encode(synth.master(3), "wav"),
        }
    )
    await page.get_by_role("button", name="Upload").click()
    first = page.locator(".upload-item").nth(0)
    await first.locator(".upload-status", has_text="Ready").wait_for(timeout=90_000)
    assert await first.locator("progress").evaluate("p => p.value") == 100

    # Drag and drop of a FLAC onto the drop zone; its title comes from its tags.
    flac = synth.encode(synth.master(3, seed=2), "flac", tags={"title": "Dropped In"})
    await page.evaluate(
        """(b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], "drop.flac", {type: "audio/flac"}));
            const zone = document.getElementById("studio-upload");
            zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
            zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        base64.b64encode(flac).decode(),
    )
    second = page.locator(".upload-item").nth(1)
    await second.locator(".upload-status", has_text="Ready").wait_for(timeout=90_000)

    # A file that is not audio is refused with the reason, and nothing is listed for it.
    await page.locator("#studio-file").set_input_files(
        {"name": "song.mp3", "mimeType": "audio/mpeg", "buffer": os.urandom(30_000)}
    )
    await page.get_by_role("button", name="Upload").click()
    third = page.locator(".upload-item.is-error")
    await third.wait_for()
    assert "not an audio file" in await third.inner_text()

    # After a reload the table lists both tracks as ready.
    await page.reload()
    rows = page.locator("#studio-tracks tbody tr")
    assert await rows.count() == 2
    titles = await page.locator("#studio-tracks tbody tr td:first-child").all_inner_texts()
    assert sorted(titles) == ["Dropped In", "Night Bus"]
    assert await page.locator("#studio-tracks .state-ready").count() == 2

    # Gather them into an EP and publish it at once.
    form = page.locator(".release-form")
    await form.get_by_label("Title").fill("Late Lines")
    await form.locator("select[name=kind]").select_option("ep")
    for box in await form.locator("input[name=tracks]").all():
        await box.check()
    await form.get_by_label("Publish now").check()
    await form.get_by_role("button", name="Create release").click()
    await page.locator(".flash-ok", has_text="Late Lines").wait_for()
    assert "published" in (await page.locator(".release-list").inner_text()).lower()
    async with ClientSession() as http:
        async with http.get(base + "/api/v1/releases") as r:
            releases = (await r.json())["items"]
    assert [(x["title"], len(x["tracks"])) for x in releases] == [("Late Lines", 2)]


async def test_the_studio_is_for_signed_in_artists(live_node):
    base = live_node.base_url
    await live_node.user("fan", "fan", password=PASSWORD)
    await live_node.user("ana", "artist", password=PASSWORD)
    async with ClientSession() as http:
        async with http.get(base + "/studio", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"].startswith("/login")
        async with http.get(base + "/studio/tracks.json", headers=live_node.auth("fan")) as r:
            assert r.status == 403
        async with http.get(base + "/studio/tracks.json", headers=live_node.auth("ana")) as r:
            assert r.status == 200 and (await r.json()) == {"items": []}


async def test_without_javascript_the_form_uploads_and_the_page_lists_it(node):
    from aiohttp import FormData

    from node.auth import csrf_token, issue_token
    from node.services.accounts import get_account

    await node.user("ana", "artist", password=PASSWORD)
    async with node.ctx.db.transaction() as s:
        secret, _ = await issue_token(s, await get_account(s, "ana"), kind="session")
    cookie = {"Cookie": f"nycmg_session={secret}"}
    form = FormData()
    form.add_field("csrf_token", csrf_token(node.settings.node.secret_key, secret))
    form.add_field("title", "")
    form.add_field("file", synth.encode(synth.master(2), "aiff"), filename="Plain Form.aiff")
    r = await node.client.post("/studio/upload", data=form, headers=cookie, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/studio"
    page = await (await node.client.get("/studio", headers=cookie)).text()
    assert "Plain Form" in page and "processing" in page

    # A bad file comes back as a notice, with nothing kept.
    form = FormData()
    form.add_field("csrf_token", csrf_token(node.settings.node.secret_key, secret))
    form.add_field("file", b"hello", filename="x.wav")
    r = await node.client.post("/studio/upload", data=form, headers=cookie)
    assert r.status == 200
    page = await r.text()
    assert "x.wav: " in page and page.count("state-processing") == 1
