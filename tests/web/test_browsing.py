"""A visitor without an account browses the scene: home, boroughs, artists,
releases, tracks, events and the directory. Everything public is there;
drafts are not; nothing a visitor types can make a page fail."""

from __future__ import annotations

import re

import pytest


async def page(node, path: str, status: int = 200, **kw) -> str:
    r = await node.client.get(path, **kw)
    text = await r.text()
    assert r.status == status, f"GET {path}: {r.status}\n{text[:2000]}"
    if status == 200:
        assert r.content_type == "text/html"
    return text


async def test_home_shows_boroughs_new_releases_upcoming_shows_and_artists(node, seed):
    scene = await seed.scene(node)
    html = await page(node, "/")
    assert "<title>" in html and node.settings.node.name in html
    for borough, slug in [("Brooklyn", "brooklyn"), ("Staten Island", "staten-island")]:
        assert f'href="/boroughs/{slug}"' in html and borough in html
    assert "Kings County" in html and "Roosevelt Nights" in html
    assert f'href="/releases/{scene["kings"]["uuid"]}"' in html
    assert "Secret Tape" not in html  # a draft
    assert "Kings County Release Party" in html and "$15.00" in html
    assert 'href="/@jay"' in html and "Jay Fulton" in html
    assert "1 artist · 1 show" in html  # Brooklyn's tile


async def test_pages_carry_security_headers_and_the_stylesheet(node):
    r = await node.client.get("/")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    html = await r.text()
    css = re.search(r'href="(/static/site\.css\?v=[0-9a-f]+)"', html).group(1)
    r = await node.client.get(css)
    assert r.status == 200 and "text/css" in r.headers["Content-Type"]
    assert "immutable" in r.headers["Cache-Control"]
    assert "--accent" in await r.text()
    r = await node.client.get("/static/site.css")  # the stable URL the console links to
    assert r.status == 200 and "max-age" in r.headers["Cache-Control"]
    js = re.search(r'src="(/static/js/autocomplete\.js\?v=[0-9a-f]+)"', html).group(1)
    r = await node.client.get(js)
    assert r.status == 200 and "javascript" in r.headers["Content-Type"]
    assert (await node.client.get("/static/../web/csrf.py")).status == 404


async def test_a_borough_page_lists_its_artists_releases_and_shows(node, seed):
    await seed.scene(node)
    html = await page(node, "/boroughs/brooklyn")
    assert '<h1 class="hero-title">Brooklyn</h1>' in html
    assert "Jay Fulton" in html and "Kings County" in html and "Kings County Release Party" in html
    assert "Ana Roosevelt" not in html and "Roosevelt Nights" not in html
    queens = await page(node, "/boroughs/queens")
    assert "Ana Roosevelt" in queens and "Roosevelt Nights" in queens
    assert "No shows announced in Queens" in queens
    staten = await page(node, "/boroughs/staten-island")
    assert "No artists from Staten Island yet" in staten
    missing = await page(node, "/boroughs/atlantis", status=404)
    assert "Nothing here" in missing


async def test_an_artist_page_shows_profile_releases_tracks_and_shows(node, seed):
    scene = await seed.scene(node)
    html = await page(node, "/@jay")
    assert "Jay Fulton" in html and "@jay@" in html
    assert 'href="/boroughs/brooklyn"' in html
    assert "hip hop" in html and "jazz" in html
    assert f'href="/releases/{scene["kings"]["uuid"]}"' in html
    assert "Fulton St" in html and "3:21" in html  # 201 s
    assert "Kings County Release Party" in html
    # The bio is plain text: escaped, with its paragraphs kept.
    assert "<p>Beats from Bed-Stuy.</p>" in html
    assert "&lt;b&gt;Friday&lt;/b&gt;" in html and "<b>Friday</b>" not in html
    # Links: http(s) only, never javascript:.
    assert 'href="https://jay.bandcamp.com"' in html and "javascript:" not in html
    # Drafts stay private.
    assert "Secret Tape" not in html and "Unreleased" not in html
    # Ana appears in the lineup of Jay's show, so it is on her page too.
    assert "Kings County Release Party" in await page(node, "/@ana")


async def test_drafts_are_visible_to_their_artist_and_curators_only(node, seed):
    scene = await seed.scene(node)
    draft = scene["draft"]
    await node.user("cur", "curator")
    await node.user("fan", "fan")
    await page(node, f"/releases/{draft['uuid']}", status=404)
    await page(node, f"/tracks/{draft['tracks'][0]['uuid']}", status=404)
    await page(node, f"/releases/{draft['uuid']}", status=404, headers=node.auth("fan"))
    await page(node, f"/releases/{draft['uuid']}", status=404, headers=node.auth("ana"))
    for who in ("jay", "cur"):
        html = await page(node, f"/releases/{draft['uuid']}", headers=node.auth(who))
        assert "Secret Tape" in html and "Draft" in html
        html = await page(node, "/@jay", headers=node.auth(who))
        assert "Secret Tape" in html and "Unreleased" in html and "badge-draft" in html
    # ... and the anonymous page, cached or not, still has no drafts.
    assert "Secret Tape" not in await page(node, "/@jay")


async def test_a_release_page_has_its_tracklist_cover_and_artist(node, seed):
    scene = await seed.scene(node)
    html = await page(node, f"/releases/{scene['kings']['uuid']}")
    assert '<h1 class="release-title">Kings County</h1>' in html
    assert 'href="/@jay"' in html and "Jay Fulton" in html
    assert html.index("Fulton St") < html.index("Myrtle Ave")
    assert "3:21" in html and "3:01" in html  # 201 s and 180.5 s
    assert "2 tracks" in html and "6 min" in html
    assert '<svg class="art"' in html  # no cover uploaded: generated art
    assert 'aria-label="Kings County"' in html
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        await page(node, f"/releases/{bad}", status=404)


async def test_a_track_page_links_its_release_and_siblings(node, seed):
    scene = await seed.scene(node)
    first, second = scene["kings"]["tracks"]
    html = await page(node, f"/tracks/{second['uuid']}")
    assert "Myrtle Ave" in html and "Track 2 of 2" in html
    assert f'href="/releases/{scene["kings"]["uuid"]}"' in html
    assert f'href="/tracks/{first["uuid"]}"' in html
    assert 'aria-current="page">Myrtle Ave<' in html


async def test_an_event_page_shows_when_where_lineup_and_price(node, seed):
    scene = await seed.scene(node)
    html = await page(node, f"/events/{scene['show']['uuid']}")
    assert "Kings County Release Party" in html
    assert "Bed-Stuy Hall" in html and "1 Fulton St, Brooklyn, NY" in html
    assert 'href="/boroughs/brooklyn"' in html
    assert "$15.00" in html and 'href="https://tickets.example/kc"' in html
    # Lineup entries that name artists here link to them; others are plain names.
    assert 'href="/@jay"' in html and 'href="/@ana"' in html and "DJ Unknown" in html
    assert re.search(r"\d{1,2}(:\d\d)?(am|pm)", html)  # a local time, not an ISO string
    assert "openstreetmap.org" in html
    await page(node, "/events/12345678-1234-1234-1234-123456789abc", status=404)


async def test_prices_are_formatted_from_minor_units(node, seed):
    await node.user("dj", "artist", borough="Bronx")
    free = await seed.event(node, "dj", "Free Jazz", None, price_amount=0)
    yen = await seed.event(node, "dj", "Tokyo Night", None, price_amount=3000, price_currency="JPY")
    euro = await seed.event(node, "dj", "Euro Night", None, price_amount=1250, price_currency="EUR")
    assert "Free" in await page(node, f"/events/{free['uuid']}")
    assert "¥3,000" in await page(node, f"/events/{yen['uuid']}")
    assert "€12.50" in await page(node, f"/events/{euro['uuid']}")


async def test_events_listing_groups_by_day_and_filters_by_borough(node, seed):
    await seed.scene(node)
    hall = await seed.venue(node, "ana", "Astoria Basement", "Queens")
    await seed.event(node, "ana", "House Sundays", hall["uuid"], days=5)
    html = await page(node, "/events")
    assert html.index("Kings County Release Party") < html.index("House Sundays")
    assert html.count('class="day-head"') == 2
    queens = await page(node, "/events?borough=queens")
    assert "House Sundays" in queens and "Kings County Release Party" not in queens
    assert "There is no borough" in await page(node, "/events?borough=nowhere")


async def test_the_directory_filters_and_pages_through_artists(node, seed):
    for i in range(30):
        await node.user(
            f"artist{i:02d}",
            "artist",
            borough="Bronx" if i % 2 else "Queens",
            genres=["house" if i % 3 else "salsa"],
        )
    html = await page(node, "/artists")
    assert html.count('class="artist-card"') == 24
    more = re.search(r'href="(/artists\?cursor=[^"]+)"', html).group(1)
    rest = await page(node, more.replace("&amp;", "&"))
    assert rest.count('class="artist-card"') == 6 and "artist29" in rest
    bronx = await page(node, "/artists?borough=bronx")
    assert bronx.count('class="artist-card"') == 15
    salsa_bronx = await page(node, "/artists?borough=bronx&genre=salsa")
    assert salsa_bronx.count('class="artist-card"') == 5
    assert "There is no borough" in await page(node, "/artists?borough=narnia")


@pytest.mark.parametrize(
    "path",
    [
        "/artists?cursor=%00%ff",
        "/artists?cursor=bm90IGpzb24",
        "/artists?genre=" + "x" * 5000,
        "/events?cursor=W10",
        "/@" + "a" * 64,
        "/@jay@" + "b" * 300,
        "/@%3Cscript%3E",
        "/releases/%3Cscript%3E",
        "/search?q=%00&page=-1&type=bogus&borough=" + "z" * 500,
        "/search?page=99999999999999999999&q=a",
        "/boroughs/" + "%F0%9F%8E%B5" * 10,
    ],
)
async def test_nothing_a_visitor_types_is_a_server_error(node, path):
    r = await node.client.get(path)
    assert r.status < 500, f"{path}: {r.status}"
    assert r.content_type == "text/html"
    assert "<script>" not in await r.text()


async def test_unknown_pages_get_a_friendly_404_in_the_site_layout(node):
    r = await node.client.get("/no/such/page", headers={"Accept": "text/html"})
    assert r.status == 404
    html = await r.text()
    assert "Nothing here" in html and 'class="site-header"' in html
    # The API keeps answering problem+json.
    r = await node.client.get("/api/v1/nope")
    assert r.status == 404 and r.content_type == "application/problem+json"


async def test_an_anonymous_page_is_cached_until_the_catalog_changes(node, seed):
    from web.cache import PAGE_CACHE

    await seed.scene(node)
    cache = node.app[PAGE_CACHE]
    first = await page(node, "/@ana")
    hits = cache.hits
    assert await page(node, "/@ana") == first
    assert cache.hits == hits + 1
    await seed.release(node, "ana", "Ditmars Blvd", [("N Train", 200_000)])
    assert "Ditmars Blvd" in await page(node, "/@ana")
    assert "Ditmars Blvd" in await page(node, "/")


async def test_a_remote_artist_known_here_has_a_page_with_their_bio_sanitized(node):
    from node.models import Actor, ArtistProfile

    async with node.ctx.db.transaction() as s:
        actor = Actor(
            uri="https://queens.example/actors/lou",
            handle="lou",
            domain="queens.example",
            kind="Person",
            local=False,
            is_artist=True,
            name="Lou from Queens",
            summary='<p>Jazz <b>trio</b></p><script>alert(1)</script><a href="javascript:x()">x</a>',
        )
        s.add(actor)
        await s.flush()
        s.add(ArtistProfile(actor_id=actor.id, borough="Queens", genres=["jazz"], links=[]))
    html = await page(node, "/@lou@queens.example")
    assert "Lou from Queens" in html and "on queens.example" in html
    assert "<p>Jazz <b>trio</b></p>" in html
    assert "<script>alert" not in html and "javascript:x" not in html
    await page(node, "/@lou", status=404)  # not a local artist


async def test_many_first_visits_at_once_are_each_answered_with_their_own_page(node, seed):
    import asyncio

    from web.artist_page import ARTIST_PAGES
    from web.audience import AUDIENCE

    await seed.scene(node)
    for i in range(12):
        await node.user(f"band{i:02d}", "artist", name=f"Band Number {i}")
    await seed.release(node, "band03", "Third Record", [("Three", 3000)])
    await seed.event(node, "band05", "Fifth Show", None, lineup=["band07", "@jay"])
    handles = [f"band{i:02d}" for i in range(12)] + ["jay", "ana", "ghost", "jay@elsewhere.example"]
    reads, counts = node.app[ARTIST_PAGES].reads, node.app[AUDIENCE].counted
    responses = await asyncio.gather(*(node.client.get(f"/@{h}") for h in handles))
    pages = {h: (r.status, await r.text()) for h, r in zip(handles, responses, strict=True)}
    assert pages["ghost"][0] == 404 and "no artist @ghost" in pages["ghost"][1]
    assert pages["jay@elsewhere.example"][0] == 404
    for i in range(12):
        status, html = pages[f"band{i:02d}"]
        assert status == 200 and f"Band Number {i}</h1>" in html
        assert ("Third Record" in html) == (i == 3)
        assert ("Fifth Show" in html) == (i in (5, 7))
    assert "Fifth Show" in pages["jay"][1] and "Kings County" in pages["jay"][1]
    assert "Roosevelt Nights" in pages["ana"][1] and "Kings County</h3>" not in pages["ana"][1]
    assert not node.app[ARTIST_PAGES]._waiting  # nobody left behind
    assert node.app[ARTIST_PAGES].reads - reads < len(handles)  # visits shared reads
    assert node.app[AUDIENCE].counted - counts < 14  # and so did the audience counts
