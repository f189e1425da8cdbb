"""People using the site in a real browser (headless Debian Chromium) against
a live node: sign up, sign out and in, browse to an artist, search with
autocomplete, and the layout holding up on a phone."""

from __future__ import annotations

import asyncio
import re

import pytest

pytestmark = pytest.mark.browser


async def wait_until_suggested(live, prefix: str, title: str, timeout: float = 20.0) -> None:
    """The worker indexes in the background; wait until `title` is suggested for `prefix`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        r = await live.client.get("/api/v1/search/suggest", params={"q": prefix})
        if r.status == 200 and any(s["title"] == title for s in await r.json()):
            return
        assert loop.time() < deadline, f"{title!r} was never suggested for {prefix!r}"
        await asyncio.sleep(0.2)


def watch_console(page) -> list[str]:
    """Collect console errors (a CSP violation shows up here) and page errors."""
    errors: list[str] = []

    def on_console(message) -> None:
        # A form answered 422 on purpose is logged as a failed load; that is not a bug.
        if message.type == "error" and "status of 4" not in message.text:
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


async def test_a_fan_signs_up_signs_out_signs_in_and_browses_to_an_artist(live, seed, page):
    await seed.scene(live)
    errors = watch_console(page)
    base = live.base_url

    await page.goto(base + "/")
    await page.get_by_role("link", name="Sign up").click()
    await page.get_by_label("Username").fill("maya")
    await page.get_by_label("Password").fill("short")
    await page.get_by_role("button", name="Create account").click()
    await page.locator(".field-error", has_text="At least 8 characters").wait_for()
    assert await page.get_by_label("Username").input_value() == "maya"  # input kept

    await page.get_by_label("Password").fill("a long enough password")
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url(base + "/")
    menu = page.get_by_label("Account menu for @maya")
    await menu.click()
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(base + "/")
    assert await page.get_by_role("link", name="Sign in").is_visible()

    await page.goto(base + "/events")
    await page.get_by_role("link", name="Sign in").click()
    await page.get_by_label("Username").fill("maya")
    await page.get_by_label("Password").fill("a long enough password")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base + "/events")  # back where she was
    assert await page.get_by_label("Account menu for @maya").is_visible()

    # Browse: Boroughs menu -> Brooklyn -> the artist -> the release.
    await page.get_by_text("Boroughs", exact=True).first.click()
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Brooklyn").click()
    await page.wait_for_url(base + "/boroughs/brooklyn")
    await page.get_by_role("link", name="Jay Fulton").first.click()
    await page.wait_for_url(base + "/@jay")
    assert await page.get_by_role("heading", level=1).inner_text() == "Jay Fulton"
    await page.get_by_role("link", name="Kings County").first.click()
    await page.get_by_role("heading", name="Kings County", level=1).wait_for()
    assert await page.get_by_text("Myrtle Ave").is_visible()
    assert not errors, errors


async def test_search_suggests_as_you_type_and_opens_the_pick(live, seed, page):
    await seed.scene(live)
    await wait_until_suggested(live, "jay f", "Jay Fulton")
    await wait_until_suggested(live, "rooseve", "Roosevelt Nights")
    errors = watch_console(page)
    base = live.base_url

    await page.goto(base + "/")
    box = page.get_by_role("combobox", name=re.compile("Search"))
    await box.click()
    await box.press_sequentially("jay f", delay=40)
    option = page.get_by_role("option", name=re.compile("Jay Fulton"))
    await option.wait_for()
    assert await box.get_attribute("aria-expanded") == "true"
    await box.press("ArrowDown")
    active = await box.get_attribute("aria-activedescendant")
    assert active and await page.locator(f"#{active}").get_attribute("aria-selected") == "true"
    await box.press("Enter")
    await page.wait_for_url(base + "/@jay")

    # With the mouse, from another page; Escape closes the list first.
    await page.goto(base + "/events")
    box = page.get_by_role("combobox", name=re.compile("Search"))
    await box.press_sequentially("rooseve", delay=40)
    await page.get_by_role("option", name=re.compile("Roosevelt Nights")).wait_for()
    await box.press("Escape")
    assert await box.get_attribute("aria-expanded") == "false"
    await box.press("ArrowDown")
    await page.get_by_role("option", name=re.compile("Roosevelt Nights")).click()
    await page.get_by_role("heading", name="Roosevelt Nights", level=1).wait_for()

    # Enter without a highlighted suggestion submits the plain search form.
    box = page.get_by_role("combobox", name=re.compile("Search"))
    await box.fill("kings")
    await box.press("Enter")
    await page.wait_for_url(re.compile(r"/search\?q=kings"))
    await page.get_by_role("heading", name="Releases").wait_for()
    assert not errors, errors


async def test_the_site_fits_a_phone_screen(live, seed, browser):
    scene = await seed.scene(live)
    context = await browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True)
    try:
        page = await context.new_page()
        errors = watch_console(page)
        for path in (
            "/",
            "/@jay",
            f"/releases/{scene['kings']['uuid']}",
            f"/events/{scene['show']['uuid']}",
            "/artists",
            "/events",
            "/signup",
            "/search?q=jay",
        ):
            await page.goto(live.base_url + path)
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{path} scrolls sideways by {overflow}px on a phone"
        # The search box is on screen and usable.
        await page.goto(live.base_url + "/")
        assert await page.get_by_role("combobox", name=re.compile("Search")).is_visible()
        assert not errors, errors
    finally:
        await context.close()


async def test_everything_works_without_javascript(live, seed, browser):
    await seed.scene(live)
    context = await browser.new_context(java_script_enabled=False)
    try:
        page = await context.new_page()
        await page.goto(live.base_url + "/")
        await page.get_by_role("searchbox").fill("kings")
        await page.get_by_role("searchbox").press("Enter")
        await page.wait_for_url(re.compile(r"/search\?q=kings"))
        await page.get_by_text("Boroughs", exact=True).first.click()  # <details>, no script
        await page.get_by_role("navigation", name="Main").get_by_role("link", name="Queens").click()
        await page.wait_for_url(live.base_url + "/boroughs/queens")
        await page.goto(live.base_url + "/signup")
        await page.get_by_label("Username").fill("nojs")
        await page.get_by_label("Password").fill("works without js")
        await page.get_by_role("button", name="Create account").click()
        await page.wait_for_url(live.base_url + "/")
        assert await page.get_by_text("@nojs").is_visible()
    finally:
        await context.close()
