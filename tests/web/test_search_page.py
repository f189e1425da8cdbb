"""A visitor searches without JavaScript: results grouped by kind, with
borough, genre and kind filters as plain links."""

from __future__ import annotations

import html as htmllib
import re


async def search(node, query: str) -> str:
    r = await node.client.get("/search?" + query)
    text = await r.text()
    assert r.status == 200, text[:2000]
    return text


def links(page: str) -> list[str]:
    return [htmllib.unescape(h) for h in re.findall(r'href="(/search\?[^"]+)"', page)]


async def test_results_are_grouped_by_kind_and_link_to_their_pages(node, seed):
    scene = await seed.scene(node)
    await node.run_jobs()
    page = await search(node, "q=kings")
    assert "result" in page and "for “kings”" in page
    assert 'id="group-release"' in page and 'id="group-event"' in page
    assert f'href="/releases/{scene["kings"]["uuid"]}"' in page
    assert f'/events/{scene["show"]["uuid"]}"' in page
    assert "Secret Tape" not in await search(node, "q=secret")


async def test_facets_filter_by_borough_genre_and_kind(node, seed):
    await seed.scene(node)
    await node.run_jobs()
    page = await search(node, "q=roosevelt")
    assert "Queens" in page
    borough_link = next(h for h in links(page) if "borough=Queens" in h)
    filtered = await search(node, borough_link.split("?", 1)[1])
    assert "Roosevelt Nights" in filtered and "Filtered by" in filtered
    assert "Remove borough filter Queens" in filtered

    page = await search(node, "q=jay")
    genre_link = next(h for h in links(page) if "genre=jazz" in h)
    assert "Jay Fulton" in await search(node, genre_link.split("?", 1)[1])

    kind_link = next(h for h in links(page) if "type=track" in h)
    tracks_only = await search(node, kind_link.split("?", 1)[1])
    assert 'id="group-track"' in tracks_only and 'id="group-artist"' not in tracks_only


async def test_an_empty_or_unmatched_search_explains_itself(node, seed):
    await seed.scene(node)
    await node.run_jobs()
    assert "Type a name, a title or a genre" in await search(node, "q=")
    nothing = await search(node, "q=zzqqxx")
    assert "Nothing matches “zzqqxx”" in nothing
    # The query is shown back escaped, never as markup.
    hostile = await search(node, "q=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    assert "<img src=x" not in hostile and "&lt;img src=x onerror=alert(1)&gt;" in hostile


async def test_the_search_box_is_wired_for_autocomplete(node):
    page = await (await node.client.get("/")).text()
    box = re.search(r"<input[^>]*id=\"site-search-input\"[^>]*>", page, re.S).group(0)
    assert 'name="q"' in box and "data-autocomplete" in box
    assert 'data-suggest-url="/api/v1/search/suggest"' in box
    assert re.search(
        r'<form class="site-search" role="search" action="/search" method="get">', page
    )
