"""A fan follows artists from the web, here or on another node, and reads the
feed; artists see who follows and plays them, node by node. Every form
carries a CSRF token; a handle nobody can find is a friendly page, never a
500; the anonymous artist page stays the same for every visitor (cached)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import aiohttp
import pytest
from sqlalchemy import func, select

from node.models import Actor, ArtistProfile, Event, Follow, Play, Release, Track, utcnow

TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"


# ---- helpers ------------------------------------------------------------------------


async def get(client, path: str, status: int = 200) -> str:
    r = await client.get(path)
    text = await r.text()
    assert r.status == status, f"GET {path}: {r.status}\n{text[:3000]}"
    return text


async def sign_in(client, username: str) -> None:
    """Through the login form, as a person would (the session cookie stays in `client`)."""
    html = await get(client, "/login")
    token = TOKEN_RE.search(html).group(1)
    r = await client.post(
        "/login",
        data={"csrf_token": token, "username": username, "password": PASSWORD},
        allow_redirects=False,
    )
    assert r.status == 303, await r.text()


async def csrf_on(client, path: str) -> str:
    return TOKEN_RE.search(await get(client, path)).group(1)


async def post_form(client, path: str, data: dict, status: int = 303) -> aiohttp.ClientResponse:
    r = await client.post(path, data=data, allow_redirects=False)
    assert r.status == status, f"POST {path}: {r.status}\n{(await r.text())[:3000]}"
    return r


async def follow(client, target: str, next_url: str = "/feed", status: int = 303):
    token = await csrf_on(client, "/feed")
    return await post_form(
        client, "/follow", {"csrf_token": token, "target": target, "next": next_url}, status
    )


def flash_of(html: str) -> str | None:
    found = re.search(r'<p class="flash flash-(\w+)"[^>]*>([^<]*)</p>', html)
    return f"{found.group(1)}: {unescape(found.group(2))}" if found else None


async def eventually(check, timeout: float = 20.0, interval: float = 0.2):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(interval)


async def count_follows(node) -> int:
    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(func.count()).select_from(Follow))


# ---- on one node ------------------------------------------------------------------------


async def test_a_fan_follows_a_local_artist_reads_the_feed_and_unfollows(node, seed):
    await seed.scene(node)
    await node.user("maya")
    client = node.client
    domain = node.ctx.domain

    # Before following anyone: the feed explains itself and offers the follow box.
    assert (
        (await client.get("/feed", allow_redirects=False))
        .headers["Location"]
        .startswith("/login?next=")
    )
    await sign_in(client, "maya")
    empty = await get(client, "/feed")
    assert "Your feed is empty" in empty and "Follow someone on any node" in empty
    assert 'placeholder="@handle@domain"' in empty

    # A post without the form's token changes nothing.
    r = await client.post("/follow", data={"target": "@jay"}, allow_redirects=False)
    assert r.status == 403 and await count_follows(node) == 0

    r = await follow(client, "@jay")
    assert r.headers["Location"] == "/feed"
    feed = await get(client, "/feed")
    assert flash_of(feed) == f"ok: Following @jay@{domain}."
    assert "Kings County" in feed and "New EP" in feed and "2 tracks" in feed
    assert "Kings County Release Party" in feed and "New show" in feed
    assert "Secret Tape" not in feed  # a draft
    assert flash_of(await get(client, "/feed")) is None  # said once

    # The artist's page knows: the button turned into Unfollow, the figures count her.
    page = await get(client, "/@jay")
    assert "You follow Jay Fulton" in page and ">Unfollow</button>" in page
    assert "Followers by node" in page and "Plays by node" in page
    assert re.search(
        rf"<dt>{re.escape(domain)} <span class=\"muted\">\(this node\)</span></dt>\s*<dd><span class=\"by-node-n\">1</span>",
        page,
    )

    # Her account page lists whom she follows, with the state and an Unfollow button.
    me = await get(client, "/me")
    assert "Jay Fulton" in me and f"@jay@{domain}" in me and "badge-ok" in me
    follow_id = re.search(r'name="follow" value="(\d+)"', me).group(1)

    # Following again is harmless; unfollowing needs the token too.
    await follow(client, f"@jay@{domain}")
    assert await count_follows(node) == 1
    r = await client.post("/unfollow", data={"follow": follow_id}, allow_redirects=False)
    assert r.status == 403 and await count_follows(node) == 1
    token = await csrf_on(client, "/me")
    await post_form(
        client, "/unfollow", {"csrf_token": token, "follow": follow_id, "next": "/@jay"}
    )
    page = await get(client, "/@jay")
    assert flash_of(page) == f"ok: Unfollowed @jay@{domain}."
    assert ">Follow<span" in page and await count_follows(node) == 0
    assert "Your feed is empty" in await get(client, "/feed")


async def test_the_anonymous_artist_page_has_no_follow_form_and_stays_cached(node, seed):
    from web.cache import PAGE_CACHE

    await seed.scene(node)
    r = await node.client.get("/@jay")
    html = await r.text()
    assert "Sign in to follow" in html and 'href="/login?next=/' in html
    assert 'action="/follow"' not in html and "csrf_token" not in html
    assert "Set-Cookie" not in r.headers  # cacheable: nothing minted for this visitor
    cache = node.app[PAGE_CACHE]
    hits = cache.hits
    await get(node.client, "/@jay")
    assert cache.hits == hits + 1

    # A signed-in visitor gets the form; the anonymous copy is not touched by it.
    await node.user("maya")
    await sign_in(node.client, "maya")
    signed_in = await get(node.client, "/@jay")
    assert 'action="/follow"' in signed_in and "Sign in to follow" not in signed_in
    node.client.session.cookie_jar.clear()
    assert "Sign in to follow" in await get(node.client, "/@jay")


async def test_figures_still_being_counted_do_not_hold_up_the_page_or_stay_in_the_cache(node, seed):
    from web.audience import AUDIENCE
    from web.cache import PAGE_CACHE

    await seed.scene(node)
    node.app[AUDIENCE].wait = 0.0  # as when the count takes longer than a visitor waits
    first = await get(node.client, "/@jay")
    assert "Jay Fulton" in first and "Still counting followers and plays" in first
    assert "Followers by node" not in first
    assert len(node.app[PAGE_CACHE]) == 0  # the page without figures is not kept

    async def counted() -> str | None:
        page = await get(node.client, "/@jay")
        return page if "Followers by node" in page else None

    again = None
    for _ in range(100):
        again = await counted()
        if again:
            break
        await asyncio.sleep(0.05)
    assert again and "Plays by node" in again and "Still counting" not in again
    assert len(node.app[PAGE_CACHE]) == 1


async def test_an_artist_who_approves_followers_accepts_a_request_from_the_account_page(node, seed):
    await seed.scene(node)
    await seed.api(
        node, "PATCH", "/api/v1/artists/ana", "ana", json={"manually_approves_followers": True}
    )
    await node.user("maya")
    client = node.client
    domain = node.ctx.domain

    await sign_in(client, "maya")
    await follow(client, "@ana")
    feed = await get(client, "/feed")
    assert flash_of(feed) == f"info: Requested — waiting for approval from @ana@{domain}."
    assert "Roosevelt Nights" not in feed  # not until Ana says yes
    assert "badge-pending" in await get(client, "/me")
    assert "Waiting for approval" in await get(client, "/@ana")

    await sign_in(client, "ana")  # switches accounts
    me = await get(client, "/me")
    assert "Follow requests" in me and "@maya@" in me
    accept = re.search(r'action="(/follow-requests/\d+/accept)"', me).group(1)
    r = await client.post(accept, data={"next": "/me"}, allow_redirects=False)
    assert r.status == 403  # no token, no decision
    await post_form(client, accept, {"csrf_token": await csrf_on(client, "/me"), "next": "/me"})
    me = await get(client, "/me")
    assert flash_of(me) == f"ok: @maya@{domain} now follows you."
    assert "Nobody is waiting for your approval" in me

    await sign_in(client, "maya")
    assert "Roosevelt Nights" in await get(client, "/feed")


async def test_the_feed_pages_newest_first_with_a_cursor(node, seed):
    await node.user("jay", "artist", name="Jay Fulton")
    await node.user("maya")
    for i in range(23):
        await seed.release(node, "jay", f"Single {i:02d}", [(f"Cut {i}", 1000)], kind="single")
    await sign_in(node.client, "maya")
    await follow(node.client, "@jay")
    first = await get(node.client, "/feed")
    titles = re.findall(r"Single (\d\d)</a></h3>", first)
    assert titles == [f"{i:02d}" for i in range(22, 2, -1)]  # 20, newest first
    older = re.search(r'rel="next" href="([^"]+)"', first).group(1)
    second = await get(node.client, unescape(older))
    assert re.findall(r"Single (\d\d)</a></h3>", second) == ["02", "01", "00"]
    assert 'rel="next"' not in second and "← Newest" in second
    # A cursor from nowhere starts again from the newest instead of failing.
    assert "Single 22" in await get(node.client, "/feed?cursor=garbage")


# ---- remote artists from federated data ----------------------------------------------------


async def seed_remote_artist(node) -> dict:
    """What another node's Create and Update activities would have left here."""
    now = utcnow()
    async with node.ctx.db.transaction() as s:
        lou = Actor(
            uri="https://queens.example/actors/lou",
            url="https://queens.example/@lou",
            handle="lou",
            domain="queens.example",
            kind="Person",
            local=False,
            is_artist=True,
            name="Lou <Trio>",
            summary='<p>Jazz <b>trio</b> from <a href="https://queens.example/">Astoria</a></p>'
            '<script>alert(1)</script><img src=x onerror=alert(2)><a href="javascript:x()">x</a>',
        )
        s.add(lou)
        await s.flush()
        s.add(ArtistProfile(actor_id=lou.id, borough="Queens", genres=["jazz", "bebop"], links=[]))
        rel = Release(
            uri="https://queens.example/releases/5b0c",
            artist_id=lou.id,
            title="Ditmars Sessions",
            kind="album",
            state="published",
            published_at=now - timedelta(days=1),
            local=False,
        )
        s.add(rel)
        await s.flush()
        s.add(
            Track(
                uri="https://queens.example/tracks/77aa",
                artist_id=lou.id,
                release_id=rel.id,
                position=1,
                title="Astoria Blvd",
                duration_ms=240_000,
                state="ready",
                local=False,
            )
        )
        show = Event(
            uri="https://queens.example/events/9f1e",
            organizer_id=lou.id,
            title="Lou at the Bohemian Hall",
            starts_at=now + timedelta(days=5),
            local=False,
        )
        s.add(show)
        await s.flush()
        return {"release": rel.uuid, "event": show.uuid}


async def test_a_remote_artist_page_is_rendered_from_what_this_node_knows(node):
    known = await seed_remote_artist(node)
    html = await get(node.client, "/@lou@queens.example")
    assert "Lou &lt;Trio&gt;</h1>" in html and "on queens.example" in html
    assert "@lou@queens.example" in html
    # The bio came from another node: nh3 keeps the markup, drops what could run.
    assert "Jazz <b>trio</b>" in html and 'href="https://queens.example/"' in html
    assert "<script>alert" not in html and "onerror" not in html and "javascript:x" not in html
    assert 'href="/boroughs/queens"' in html and "bebop" in html
    assert f'href="/releases/{known["release"]}"' in html and "Ditmars Sessions" in html
    assert "Astoria Blvd" in html and "Lou at the Bohemian Hall" in html
    assert 'href="https://queens.example/@lou"' in html and "Everything on queens.example" in html
    assert "Sign in to follow" in html
    assert "As counted on this node; queens.example counts its own." in html

    # The release has a page here too, with a link to where it was published.
    release = await get(node.client, f"/releases/{known['release']}")
    assert (
        "Ditmars Sessions" in release and 'href="https://queens.example/releases/5b0c"' in release
    )

    # A fan here follows Lou with the page's button; Lou's node answers later.
    await node.user("maya")
    await sign_in(node.client, "maya")
    page = await get(node.client, "/@lou@queens.example")
    assert 'name="target" value="@lou@queens.example"' in page
    token = TOKEN_RE.search(page).group(1)
    r = await post_form(
        node.client,
        "/follow",
        {"csrf_token": token, "target": "@lou@queens.example", "next": "/@lou@queens.example"},
    )
    assert r.headers["Location"] == "/@lou@queens.example"
    page = await get(node.client, "/@lou@queens.example")
    assert flash_of(page) == "info: Requested — waiting for approval from @lou@queens.example."
    assert "Waiting for approval" in page and "Cancel request" in page
    async with node.ctx.db.read_session() as s:
        assert await s.scalar(select(Follow.state)) == "pending"


async def test_an_unknown_handle_is_a_friendly_404_and_is_not_looked_up_again_at_once(node):
    from tests.conftest import free_port
    from web.remote import LOOKUPS

    nowhere = f"127.0.0.1:{free_port()}"  # nothing listens there: refused at once
    lookups = node.app[LOOKUPS]
    html = await get(node.client, f"/@ghost@{nowhere}", status=404)
    assert f"This node has not heard of @ghost@{nowhere} before" in unescape(html)
    assert "Could not find" in html and "Traceback" not in html
    fetches = lookups.fetches
    await get(node.client, f"/@ghost@{nowhere}", status=404)
    assert lookups.fetches == fetches  # remembered for a while
    await get(node.client, "/@ghost", status=404)  # local handles are never looked up
    assert lookups.fetches == fetches

    # The follow form says the same kind of thing, and keeps what was typed.
    await node.user("maya")
    await sign_in(node.client, "maya")
    r = await follow(node.client, f"@ghost@{nowhere}", status=404)
    html = unescape(await r.text())
    assert "Could not find @ghost@" in html and f'value="@ghost@{nowhere}"' in html
    r = await follow(node.client, "not a handle", status=422)
    assert "is not a handle" in unescape(await r.text())
    r = await follow(node.client, "@maya", status=422)
    assert "you cannot follow yourself" in await r.text()
    r = await follow(node.client, "@nobody", status=404)
    assert "There is nobody called @nobody on this node" in await r.text()
    assert await count_follows(node) == 0


async def test_a_node_that_does_not_answer_in_time_is_a_message_not_a_hang(
    node, aiohttp_server, monkeypatch
):
    from aiohttp import web as aioweb

    from web import social as social_pages

    answer = asyncio.Event()

    async def slow(_request):
        await answer.wait()
        return aioweb.json_response({})

    app = aioweb.Application()
    app.router.add_get("/.well-known/webfinger", slow)
    server = await aiohttp_server(app)
    monkeypatch.setattr(social_pages, "FOLLOW_DEADLINE_SECONDS", 0.5)
    await node.user("maya")
    await sign_in(node.client, "maya")
    started = asyncio.get_running_loop().time()
    r = await follow(node.client, f"@slow@127.0.0.1:{server.port}", status=504)
    assert asyncio.get_running_loop().time() - started < 4
    assert "did not answer in time" in await r.text()
    answer.set()


# ---- across nodes ------------------------------------------------------------------------------


async def api(node, http, method: str, path: str, who: str, **kw) -> dict:
    async with http.request(method, node.base_url + path, headers=node.auth(who), **kw) as r:
        assert r.status < 300, f"{method} {path}: {r.status} {await r.text()}"
        return await r.json()


async def test_a_fan_on_one_node_follows_an_artist_on_another_with_the_form(network):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist", borough="Brooklyn", name="Jay Fulton")
    await queens.user("maya")
    jay = f"@jay@{brooklyn.ctx.domain}"

    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with (
        aiohttp.ClientSession(queens.base_url, cookie_jar=jar) as fan,
        aiohttp.ClientSession() as http,
    ):
        await sign_in(fan, "maya")
        await follow(fan, jay)
        flash = flash_of(await get(fan, "/feed"))
        assert flash in (
            f"ok: Following {jay}.",
            f"info: Requested — waiting for approval from {jay}.",
        )

        async def accepted() -> bool:
            return "badge-ok" in await get(fan, "/me")

        await eventually(accepted)

        # Jay publishes on Brooklyn; it reaches Maya's feed on Queens.
        t = await api(
            brooklyn,
            http,
            "POST",
            "/api/v1/tracks",
            "jay",
            json={"title": "Fulton St", "duration_ms": 200_000},
        )
        rel = await api(
            brooklyn,
            http,
            "POST",
            "/api/v1/releases",
            "jay",
            json={"title": "Kings County", "kind": "ep", "tracks": [t["uuid"]]},
        )
        await api(brooklyn, http, "POST", f"/api/v1/releases/{rel['uuid']}/publish", "jay")

        async def in_feed() -> str | None:
            html = await get(fan, "/feed")
            return html if "Kings County" in html else None

        feed = await eventually(in_feed)
        assert f"on {brooklyn.ctx.domain}" in feed
        # Jay's page on Queens, from what Queens now knows.
        page = await get(fan, f"/@jay@{brooklyn.ctx.domain}")
        assert "Jay Fulton" in page and "Kings County" in page and "You follow Jay Fulton" in page

        # Maya plays the track on Queens; Brooklyn counts it, by node.
        played = (datetime.now(UTC) - timedelta(minutes=4)).isoformat()
        await api(
            queens,
            http,
            "POST",
            "/api/v1/plays",
            "maya",
            json={"track": t["uri"], "started_at": played, "ms_listened": 190_000},
        )

        async def counted_at_origin() -> bool:
            async with brooklyn.ctx.db.read_session() as s:
                plays = await s.scalar(select(func.count()).select_from(Play))
                follows = await s.scalar(
                    select(func.count()).select_from(Follow).where(Follow.state == "accepted")
                )
            return plays == 1 and follows == 1

        await eventually(counted_at_origin)
        async with aiohttp.ClientSession(brooklyn.base_url) as visitor:
            origin = await get(visitor, "/@jay")
        row = rf"<dt>{re.escape(queens.ctx.domain)}</dt>\s*<dd><span class=\"by-node-n\">1</span>"
        followers, plays = origin.split("Plays by node")
        assert re.search(row, followers) and re.search(row, plays)


# ---- in a browser -------------------------------------------------------------------------------


@pytest.mark.browser
async def test_in_a_browser_a_fan_types_a_handle_into_the_follow_box_and_reads_the_feed(
    network, page
):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist", borough="Brooklyn", name="Jay Fulton")
    await queens.user("maya")
    base, jay = queens.base_url, f"@jay@{brooklyn.ctx.domain}"
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    await page.goto(base + "/login")
    await page.get_by_label("Username").fill("maya")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base + "/")
    await page.get_by_role("link", name="Feed", exact=True).click()
    await page.wait_for_url(base + "/feed")
    await page.get_by_text("Your feed is empty").wait_for()

    await page.get_by_label("Follow someone on any node").fill(jay)
    await page.get_by_role("button", name="Follow", exact=True).click()
    await page.wait_for_url(base + "/feed")
    notice = await page.locator(".flash").inner_text()
    assert notice in (f"Following {jay}.", f"Requested — waiting for approval from {jay}.")

    async def reload_until(locator) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not await locator.count():
            assert loop.time() < deadline, "never appeared"
            await asyncio.sleep(0.3)
            await page.reload()

    # Jay's node accepts; the "You follow" panel says so.
    following = page.get_by_role("complementary").locator(".follow-row", has_text="Jay Fulton")
    await reload_until(following.locator(".badge-ok"))

    async with aiohttp.ClientSession() as http:
        t = await api(brooklyn, http, "POST", "/api/v1/tracks", "jay", json={"title": "Fulton St"})
        rel = await api(
            brooklyn,
            http,
            "POST",
            "/api/v1/releases",
            "jay",
            json={"title": "Kings County", "kind": "ep", "tracks": [t["uuid"]]},
        )
        await api(brooklyn, http, "POST", f"/api/v1/releases/{rel['uuid']}/publish", "jay")
    await reload_until(page.get_by_role("link", name="Kings County"))
    assert await page.get_by_text(f"on {brooklyn.ctx.domain}").first.is_visible()

    await page.get_by_role("link", name="Jay Fulton").first.click()
    await page.wait_for_url(base + f"/@jay@{brooklyn.ctx.domain}")
    assert await page.get_by_role("heading", level=1).inner_text() == "Jay Fulton"
    assert await page.get_by_role("button", name="Unfollow").is_visible()
    assert not errors, errors
