"""Royalties test helpers, as fixtures (test modules cannot import each other).

`scene(node)` gives a small world on one node: fans (accounts with actors),
local artists, remote artists by URI, venues, and ways to record plays at
chosen times and to grant subscriptions, all through the real models and
services. Plays are written as `Play` rows directly because their times lie
in a month that has ended (the play API only takes recent reports).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from node.models import Account, Actor, Play, Venue, new_uuid
from royalties.money import Money
from royalties.subscriptions import grant

PERIOD = "2026-10"
START = datetime(2026, 10, 1, tzinfo=UTC)


@dataclass
class Scene:
    node: Any
    fans: dict[str, Account] = field(default_factory=dict)
    artists: dict[str, str] = field(default_factory=dict)  # name -> actor URI
    venues: dict[str, Venue] = field(default_factory=dict)
    clock: dict[int, datetime] = field(default_factory=dict)

    @property
    def ctx(self):
        return self.node.ctx

    async def fan(self, username: str, *, fee: int | None = None, currency: str = "USD") -> Account:
        await self.node.user(username)
        async with self.ctx.db.transaction() as s:
            acc = (
                await s.execute(select(Account).where(Account.username == username))
            ).scalar_one()
            if fee is not None:
                await grant(s, acc, Money(fee, currency), first_period=PERIOD, months=1)
        self.fans[username] = acc
        return acc

    async def local_artist(self, username: str) -> str:
        await self.node.user(username, role="artist")
        async with self.ctx.db.read_session() as s:
            uri = (
                await s.execute(
                    select(Actor.uri)
                    .join(Account, Account.actor_id == Actor.id)
                    .where(Account.username == username)
                )
            ).scalar_one()
        self.artists[username] = uri
        return uri

    def remote_artist(self, name: str, host: str = "queens.example") -> str:
        uri = f"https://{host}/actors/{name}"
        self.artists[name] = uri
        return uri

    async def venue(self, name: str) -> Venue:
        async with self.ctx.db.transaction() as s:
            uuid = new_uuid()
            v = Venue(uuid=uuid, uri=self.ctx.urls.obj("venues", uuid), name=name)
            s.add(v)
        self.venues[name] = v
        return v

    async def play(
        self,
        fan: str,
        artist: str,
        *,
        track: str = "t1",
        at: datetime | None = None,
        ms: int = 180_000,
        gap_ms: int | None = None,
        source: str = "stream",
        venue: str | None = None,
        times: int = 1,
    ) -> list[int]:
        """Record `times` plays by `fan` of `artist`'s `track`, one after another.

        Each fan has a clock that starts on the 2nd of the month and moves on
        by the play's length (plus a second) unless `at` is given.
        """
        acc = self.fans[fan] if fan in self.fans else None
        ids = []
        async with self.ctx.db.transaction() as s:
            if acc is not None:
                listener = (
                    await s.execute(select(Actor).where(Actor.id == acc.actor_id))
                ).scalar_one()
            else:
                listener = (
                    await s.execute(select(Actor).where(Actor.uri == self.ctx.urls.node_actor()))
                ).scalar_one_or_none()
            key = listener.id if listener else 0
            for _ in range(times):
                when = at or self.clock.get(key, START + timedelta(days=1))
                artist_uri = self.artists[artist]
                p = Play(
                    uuid=new_uuid(),
                    listener_id=listener.id if listener else None,
                    listener_uri=listener.uri if listener else self.ctx.urls.node_actor(),
                    track_uri=f"{artist_uri}/tracks/{track}",
                    artist_uri=artist_uri,
                    started_at=when,
                    ms_listened=ms,
                    source=source,
                    venue_id=self.venues[venue].id if venue else None,
                    origin="local",
                )
                s.add(p)
                await s.flush()
                ids.append(p.id)
                step = gap_ms if gap_ms is not None else ms + 1000
                self.clock[key] = when + timedelta(milliseconds=step)
                at = None
        return ids


@pytest.fixture
def scene(node) -> Scene:
    return Scene(node)


# ---- a real browser (Debian's Chromium through Playwright, never a download) -------

CHROMIUM = "/usr/bin/chromium"
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

    if not os.path.exists(CHROMIUM):
        pytest.skip("browser tests need /usr/bin/chromium")


@pytest.fixture
async def page():
    """A fresh headless Chromium page, laptop-sized (the tests/web pattern)."""
    _require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(10_000)
            yield await context.new_page()
            await context.close()
        finally:
            await browser.close()


@pytest.fixture
def live_scene(live_node) -> Scene:
    return Scene(live_node)
