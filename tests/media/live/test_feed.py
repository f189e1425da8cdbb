"""A fan's feed shows the artists they follow who are on the air now: in the
API (`live` on the first page of `/api/v1/feed`) and on the feed page."""

from __future__ import annotations

import re

import aiohttp

from media.live.client import publish

from .conftest import ToneTrack

TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


async def feed(http, node, who: str) -> dict:
    async with http.get(f"{node.base_url}/api/v1/feed", headers=node.auth(who)) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def feed_page(node, username: str) -> str:
    """The feed page as the fan sees it, signed in through the login form."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as web:
        async with web.get(f"{node.base_url}/login") as r:
            token = TOKEN_RE.search(await r.text()).group(1)
        async with web.post(
            f"{node.base_url}/login",
            data={"csrf_token": token, "username": username, "password": "correct horse battery"},
            allow_redirects=False,
        ) as r:
            assert r.status == 303
        async with web.get(f"{node.base_url}/feed") as r:
            assert r.status == 200
            return await r.text()


async def test_the_feed_shows_followed_artists_on_the_air(live_node, http):
    jay = await live_node.user("jay", role="artist", name="Jay")
    lee = await live_node.user("lee", role="artist", name="Lee")
    await live_node.user("rosa")
    await live_node.user("kim")
    async with http.post(
        f"{live_node.base_url}/api/v1/follows",
        json={"target": f"@jay@{live_node.ctx.domain}"},
        headers=live_node.auth("rosa"),
    ) as r:
        assert r.status == 201, await r.text()

    assert (await feed(http, live_node, "rosa"))["live"] == []

    # Jay and Lee go live; Rosa follows Jay only.
    jays = await publish(
        http, f"{live_node.base_url}/live/jay/whip?title=Rooftop", jay, [ToneTrack()]
    )
    lees = await publish(
        http, f"{live_node.base_url}/live/lee/whip?title=Basement", lee, [ToneTrack()]
    )
    (on_air,) = (await feed(http, live_node, "rosa"))["live"]
    assert on_air["artist"] == f"@jay@{live_node.ctx.domain}"
    assert on_air["name"] == "Jay"
    assert on_air["title"] == "Rooftop"
    assert on_air["watch"] == f"{live_node.base_url}/live/jay"
    assert on_air["whep"] == f"{live_node.base_url}/live/jay/whep"
    assert (await feed(http, live_node, "kim"))["live"] == []

    html = await feed_page(live_node, "rosa")
    strip = html.split('class="live-strip', 1)[1].split("</section>", 1)[0]
    assert "Live now from who you follow" in strip
    assert 'href="/live/jay"' in strip and "Rooftop" in strip
    assert "Basement" not in strip

    # Kim follows nobody who is live: her feed page shows who is live on the node.
    async with http.get(f"{live_node.base_url}/live") as r:  # (the list, read afresh)
        assert r.status == 200
    html = await feed_page(live_node, "kim")
    strip = html.split('class="live-strip', 1)[1].split("</section>", 1)[0]
    assert "Live now from who you follow" not in strip and "Basement" in strip

    # Jay stops: gone from Rosa's feed.
    await jays.close(http, {"Authorization": f"Bearer {jay}"})
    assert (await feed(http, live_node, "rosa"))["live"] == []
    await lees.close(http, {"Authorization": f"Bearer {lee}"})
