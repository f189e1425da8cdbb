"""An admin, in a real browser: signs in through the site, promotes a fan,
reads the audit log and signs out. Debian's Chromium, headless; never a
downloaded browser."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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

pytestmark = pytest.mark.browser


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


async def test_an_admin_signs_in_and_promotes_a_fan_in_the_browser(live_node, page):
    await live_node.user("ana", "admin", password="a long admin password")
    await live_node.user("fiona", "fan")
    base = live_node.base_url

    # Signed out, the console sends her to the site's login, and back after.
    await page.goto(f"{base}/admin/users/fiona")
    assert "/login?next=" in page.url
    await page.fill("input[name=username]", "ana")
    await page.fill("input[name=password]", "a long admin password")
    await page.click("form[action='/login'] button[type=submit]")
    await page.wait_for_url(f"{base}/admin/users/fiona")

    await page.select_option("select[name=role]", "curator")
    await page.fill("form[action$='/role'] input[name=reason]", "runs the showcase")
    await page.click("text=Change role")
    await page.wait_for_selector("text=fiona is now curator.")
    assert await page.locator(".a-role-curator").first.inner_text() in ("curator", "CURATOR")

    await page.click("nav >> text=Audit log")
    await page.wait_for_url(f"{base}/admin/audit")
    row = page.locator("table tbody tr").first
    assert "Changed a role" in await row.inner_text()
    assert "runs the showcase" in await row.inner_text()

    # Signing out ends the session: the console asks for a login again.
    await page.click("text=Sign out")
    await page.wait_for_load_state()
    await page.goto(f"{base}/admin/dashboard")
    assert "/login?next=/admin/dashboard" in page.url
