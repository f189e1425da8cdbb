"""Fixtures for the web tests: a seeded scene, and Debian's Chromium driven by
Playwright (never a downloaded browser)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

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
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser tests need {CHROMIUM} in CI (apt-get install chromium)")
    pytest.skip(
        "browser tests skipped: /usr/bin/chromium not installed "
        "(make test installs it with apt-get when run as root)"
    )


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    """A headless Chromium for one test (async Playwright, on the test's event loop)."""
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser) -> AsyncIterator[object]:
    """A fresh browser context (no cookies) and page, laptop-sized."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    pg = await context.new_page()
    yield pg
    await context.close()


# ---- seeding a node through its JSON API, as an artist would ----------------


async def api(node, method: str, path: str, who: str | None = None, **kw: Any) -> Any:
    headers = node.auth(who) if who else {}
    r = await node.client.request(method, path, headers=headers, **kw)
    assert r.status < 300, f"{method} {path}: {r.status} {await r.text()}"
    return await r.json() if r.status != 204 else None


async def track(node, who: str, title: str, **extra: Any) -> dict:
    return await api(node, "POST", "/api/v1/tracks", who, json={"title": title, **extra})


async def release(
    node, who: str, title: str, titles: list[tuple[str, int]], *, publish: bool = True, **extra: Any
) -> dict:
    tracks = [await track(node, who, t, duration_ms=ms) for t, ms in titles]
    body = {
        "title": title,
        "kind": extra.pop("kind", "ep"),
        "tracks": [t["uuid"] for t in tracks],
        **extra,
    }
    made = await api(node, "POST", "/api/v1/releases", who, json=body)
    if publish:
        made = await api(node, "POST", f"/api/v1/releases/{made['uuid']}/publish", who)
    return made


async def venue(node, who: str, name: str, borough: str, **extra: Any) -> dict:
    return await api(
        node, "POST", "/api/v1/venues", who, json={"name": name, "borough": borough, **extra}
    )


async def event(
    node, who: str, title: str, venue_uuid: str | None, *, days: int = 3, **extra: Any
) -> dict:
    starts = (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=1, minute=0, second=0, microsecond=0
    )
    body = {"title": title, "starts_at": starts.isoformat().replace("+00:00", "Z"), **extra}
    if venue_uuid:
        body["venue"] = venue_uuid
    return await api(node, "POST", "/api/v1/events", who, json=body)


async def scene(node) -> dict[str, Any]:
    """Two artists in two boroughs, releases (one a draft), a venue and a show."""
    await node.user(
        "jay", "artist", borough="Brooklyn", genres=["hip hop", "jazz"], name="Jay Fulton"
    )
    await node.user("ana", "artist", borough="Queens", genres=["house"], name="Ana Roosevelt")
    await api(
        node,
        "PATCH",
        "/api/v1/artists/jay",
        "jay",
        json={
            "summary": "Beats from Bed-Stuy.\n\nLive every <b>Friday</b>.",
            "links": ["https://jay.bandcamp.com", "javascript:alert(1)"],
        },
    )
    kings = await release(
        node,
        "jay",
        "Kings County",
        [("Fulton St", 201_000), ("Myrtle Ave", 180_500)],
        genres=["hip hop"],
    )
    draft = await release(node, "jay", "Secret Tape", [("Unreleased", 100_000)], publish=False)
    queens = await release(
        node, "ana", "Roosevelt Nights", [("7 Train", 300_000)], kind="single", genres=["house"]
    )
    hall = await venue(
        node,
        "jay",
        "Bed-Stuy Hall",
        "Brooklyn",
        address="1 Fulton St, Brooklyn, NY",
        lat=40.68,
        lon=-73.94,
    )
    show = await event(
        node,
        "jay",
        "Kings County Release Party",
        hall["uuid"],
        price_amount=1500,
        price_currency="USD",
        lineup=["jay", "@ana", "DJ Unknown"],
        ticket_url="https://tickets.example/kc",
        description="Doors at 9.",
    )
    return {"kings": kings, "draft": draft, "queens": queens, "hall": hall, "show": show}


@pytest.fixture
async def live(live_node) -> AsyncIterator[Any]:
    """The live node with an HTTP client on it, so the `seed` helpers work over real HTTP."""
    import aiohttp

    async with aiohttp.ClientSession(live_node.base_url) as http:
        live_node.client = http
        yield live_node
        live_node.client = None


@pytest.fixture
def node_with(tmp_path, databases, aiohttp_client):
    """A factory of nodes with settings of their own: `await node_with(**{"node.scheme": "https"})`."""
    from tests.conftest import build_node

    made: list[Any] = []

    async def make(**settings: Any) -> Any:
        n = await build_node(tmp_path / f"node-{len(made)}", databases, **settings)
        n.client = await aiohttp_client(n.app)
        made.append(n)
        return n

    return make


@pytest.fixture
def seed() -> SimpleNamespace:
    """The seeding helpers: `await seed.scene(node)`, `await seed.release(node, ...)`."""
    return SimpleNamespace(
        api=api, track=track, release=release, venue=venue, event=event, scene=scene
    )
