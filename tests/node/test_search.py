"""Fans find artists, releases, tracks and events by typing: with typos, by
prefix, narrowed by borough and genre. The index follows the catalog through
jobs, shows only public things, and can be rebuilt from the database."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from node import cli
from node.models import Job


async def _post(node, who, path, body, status=201):
    r = await node.client.post(path, json=body, headers=node.auth(who))
    assert r.status == status, await r.text()
    return await r.json()


async def _release(node, who, title, track_titles, publish=True, **extra):
    tracks = [await _post(node, who, "/api/v1/tracks", {"title": t}) for t in track_titles]
    rel = await _post(
        node,
        who,
        "/api/v1/releases",
        {"title": title, "kind": "ep", "tracks": [t["uuid"] for t in tracks], **extra},
    )
    if publish:
        await _post(node, who, f"/api/v1/releases/{rel['uuid']}/publish", None, status=200)
    return rel, tracks


async def search(node, q=None, **params) -> dict:
    if q is not None:
        params["q"] = q
    r = await node.client.get("/api/v1/search?" + urlencode(params))
    assert r.status == 200, await r.text()
    return await r.json()


async def suggest(node, q, **params) -> list[dict]:
    r = await node.client.get("/api/v1/search/suggest?" + urlencode({"q": q, **params}))
    assert r.status == 200, await r.text()
    return await r.json()


def titles(result: dict) -> list[str]:
    return [x["title"] for x in result["results"]]


async def _scene(node):
    """Three artists in two boroughs, a published EP each, one draft."""
    await node.user(
        "jay", "artist", name="Jay Fulton", borough="Brooklyn", genres=["Hip Hop", "Jazz"]
    )
    await node.user("queenie", "artist", name="Queenie Astoria", borough="Queens", genres=["jazz"])
    await node.user("dex", "artist", name="Dex Marcy", borough="Brooklyn", genres=["house"])
    kings, _ = await _release(node, "jay", "Kings County", ["Myrtle Avenue", "Nostrand Nights"])
    astoria, _ = await _release(
        node, "queenie", "Ditmars Blue", ["Steinway Street"], genres=["jazz", "soul"]
    )
    await _release(node, "dex", "Marcy Projects", ["Flushing Ave"])
    draft, _ = await _release(node, "jay", "Secret Tapes", ["Unreleased Demo"], publish=False)
    await node.run_jobs()
    return kings, astoria, draft


async def test_a_fan_finds_a_published_release_by_name_by_typo_and_by_prefix(node):
    # Given an artist with a borough and genres, and a published EP
    kings, _, _ = await _scene(node)

    # When a fan searches for its name, it comes first, with its artist and facets.
    found = await search(node, "Kings County")
    assert found["results"][0]["title"] == "Kings County"
    first = found["results"][0]
    assert first == {
        "type": "release",
        "id": kings["uuid"],
        "title": "Kings County",
        "subtitle": "Jay Fulton · ep",
        "url": kings["uri"],
        "uri": kings["uri"],
        "borough": "Brooklyn",
        "genres": ["hip hop", "jazz"],
    }
    assert found["query"] == "Kings County" and found["page"] == 1

    # A typo still finds it (an edit within distance 1, then 2 for long words).
    assert "Kings County" in titles(await search(node, "Kigns County"))
    assert "Kings County" in titles(await search(node, "kings countyy"))
    assert titles(await search(node, "Queenei"))[0] == "Queenie Astoria"
    # The last word is a prefix, as the fan is still typing.
    assert "Kings County" in titles(await search(node, "kings cou"))
    # Tracks are found too, with their artist and release.
    tracks = await search(node, "myrtle", type="track")
    assert [(r["title"], r["subtitle"]) for r in tracks["results"]] == [
        ("Myrtle Avenue", "Jay Fulton · Kings County")
    ]
    # Searching an artist's name finds the artist first, then their work.
    jay = await search(node, "Jay Fulton")
    assert jay["results"][0] == {
        "type": "artist",
        "id": "jay",
        "title": "Jay Fulton",
        "subtitle": "Brooklyn · hip hop, jazz",
        "url": f"{node.settings.base_url}/@jay",
        "uri": f"{node.settings.base_url}/actors/jay",
        "borough": "Brooklyn",
        "genres": ["hip hop", "jazz"],
    }
    assert {"Kings County", "Myrtle Avenue"} <= set(titles(jay))


async def test_exact_names_rank_above_fuzzy_and_partial_matches(node):
    await node.user("jay", "artist", name="Marcy")
    await node.user("dex", "artist", name="Marcy Marcy Marcus")
    await _release(node, "jay", "Darcy", ["Mercy"])
    await node.run_jobs()
    result = await search(node, "marcy")
    assert titles(result)[0] == "Marcy"
    assert set(titles(result)) >= {"Marcy", "Marcy Marcy Marcus", "Darcy", "Mercy"}
    assert titles(await search(node, "mercy"))[0] == "Mercy"


async def test_autocomplete_suggests_names_and_titles_as_the_fan_types(node):
    await _scene(node)
    s = await suggest(node, "kin")
    assert s[0] == {
        "type": "release",
        "id": s[0]["id"],
        "title": "Kings County",
        "subtitle": "Jay Fulton · ep",
        "url": s[0]["url"],
    }
    # Any word of a title can be the start, and every word typed must match.
    assert [x["title"] for x in await suggest(node, "coun")] == ["Kings County"]
    assert [x["title"] for x in await suggest(node, "kings co")] == ["Kings County"]
    assert {x["title"] for x in await suggest(node, "ma")} == {"Marcy Projects", "Dex Marcy"}
    assert [x["type"] for x in await suggest(node, "queenie")] == ["artist"]
    assert await suggest(node, "secret") == []  # drafts are not suggested
    assert len(await suggest(node, "s", limit=2)) <= 2
    assert await suggest(node, "zzzzqx") == []


async def test_borough_and_genre_facets_count_and_filter(node):
    await _scene(node)
    everything = await search(node, "")
    assert everything["total"] == 3 + 3 + 4  # artists, releases, tracks (no draft)
    assert everything["facets"]["type"] == {"artist": 3, "release": 3, "track": 4}
    assert everything["facets"]["borough"] == {"Brooklyn": 7, "Queens": 3}
    # jay's artist, EP and 2 tracks; queenie, her EP and its track (genres inherit)
    assert everything["facets"]["genre"]["jazz"] == 4 + 3
    assert everything["facets"]["genre"]["house"] == 3

    queens = await search(node, "", borough="queens")  # case does not matter
    assert {r["borough"] for r in queens["results"]} == {"Queens"}
    assert queens["total"] == 3
    # A facet is counted without its own filter, so other boroughs stay visible.
    assert queens["facets"]["borough"] == {"Brooklyn": 7, "Queens": 3}
    assert queens["facets"]["type"] == {"artist": 1, "release": 1, "track": 1}

    jazz = await search(node, "", genre="Jazz")
    assert jazz["total"] == 7
    assert all("jazz" in r["genres"] for r in jazz["results"])
    soul = await search(node, "", genre="soul")
    assert set(titles(soul)) == {"Ditmars Blue", "Steinway Street"}

    brooklyn_releases = await search(node, "", type="release", borough="Brooklyn")
    assert set(titles(brooklyn_releases)) == {"Kings County", "Marcy Projects"}
    assert brooklyn_releases["facets"]["type"] == {"artist": 2, "release": 2, "track": 3}
    several = await search(node, "", type="artist,release", borough="Brooklyn", genre="house")
    assert set(titles(several)) == {"Dex Marcy", "Marcy Projects"}

    # Paging walks the same ordering without repeats.
    seen = []
    for page in (1, 2, 3, 4):
        seen += titles(await search(node, "", limit=3, page=page))
    assert len(seen) == 10 and len(set(seen)) == 10


async def test_drafts_are_not_found_until_published_and_deletions_disappear(node):
    _, _, draft = await _scene(node)
    assert await search(node, "Secret Tapes") == {
        "query": "Secret Tapes",
        "total": 0,
        "page": 1,
        "limit": 20,
        "results": [],
        "facets": {"borough": {}, "genre": {}, "type": {}},
    }
    assert (await search(node, "unreleased"))["total"] == 0

    # Publishing makes the release and its tracks findable.
    await _post(node, "jay", f"/api/v1/releases/{draft['uuid']}/publish", None, status=200)
    await node.run_jobs()
    assert titles(await search(node, "secret tapes"))[0] == "Secret Tapes"
    assert titles(await search(node, "unreleased demo")) == ["Unreleased Demo"]

    # Deleting the release removes it, and its now release-less draft track.
    r = await node.client.delete(f"/api/v1/releases/{draft['uuid']}", headers=node.auth("jay"))
    assert r.status == 204
    await node.run_jobs()
    assert (await search(node, "secret tapes"))["total"] == 0
    assert (await search(node, "unreleased demo"))["total"] == 0

    # Deleting a track removes it.
    steinway = (await search(node, "steinway", type="track"))["results"][0]
    r = await node.client.delete(f"/api/v1/tracks/{steinway['id']}", headers=node.auth("queenie"))
    assert r.status == 204
    await node.run_jobs()
    assert (await search(node, "steinway"))["total"] == 0


async def test_an_artist_rename_reaches_their_releases_and_tracks(node):
    await _scene(node)
    r = await node.client.patch(
        "/api/v1/artists/jay",
        json={"name": "Jay Bedford", "borough": "Queens"},
        headers=node.auth("jay"),
    )
    assert r.status == 200
    await node.run_jobs()
    assert titles(await search(node, "fulton")) == []
    found = await search(node, "bedford")
    kings = next(x for x in found["results"] if x["title"] == "Kings County")
    assert kings["subtitle"].startswith("Jay Bedford") and kings["borough"] == "Queens"
    track = next(x for x in found["results"] if x["title"] == "Myrtle Avenue")
    assert track["subtitle"] == "Jay Bedford · Kings County"


async def test_scheduled_events_are_found_in_their_venues_borough(node):
    await node.user("jay", "artist", name="Jay Fulton", borough="Brooklyn")
    venue = await _post(
        node, "jay", "/api/v1/venues", {"name": "Knockdown Center", "borough": "Queens"}
    )
    starts = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    event = await _post(
        node,
        "jay",
        "/api/v1/events",
        {
            "title": "Summer Rooftop Jam",
            "starts_at": starts.isoformat(),
            "venue": venue["uuid"],
            "genres": ["Disco"],
        },
    )
    await node.run_jobs()
    found = await search(node, "rooftop")
    assert found["results"][0]["type"] == "event"
    assert found["results"][0]["borough"] == "Queens"  # the venue's, not the organizer's
    assert found["results"][0]["subtitle"] == f"Knockdown Center · {starts:%Y-%m-%d}"
    assert (await search(node, "knockdown"))["results"][0]["id"] == event["uuid"]

    # A venue's rename reaches its events; a cancelled event leaves the index.
    r = await node.client.patch(
        f"/api/v1/venues/{venue['uuid']}", json={"name": "Knockout Hall"}, headers=node.auth("jay")
    )
    assert r.status == 200
    await node.run_jobs()
    assert (await search(node, "rooftop"))["results"][0]["subtitle"].startswith("Knockout Hall")
    r = await node.client.patch(
        f"/api/v1/events/{event['uuid']}", json={"state": "cancelled"}, headers=node.auth("jay")
    )
    assert r.status == 200
    await node.run_jobs()
    assert (await search(node, "rooftop"))["total"] == 0


@pytest.mark.parametrize(
    "q",
    [
        '"',
        "AND(",
        "*",
        "?",
        "OR",
        "NOT",
        "a AND OR NOT (",
        "title:",
        "[a TO",
        "~2",
        "\\",
        "'",
        "''",
        "kings^",
        "jay~",
        "🎷🎺",
        "Beyoncé",
        "東京",
        "x" * 200,
        "a b c d e f g h i j k l",
        "%00",
        "\x00",
    ],
)
async def test_odd_queries_never_crash(node, q):
    await _scene(node)
    result = await search(node, q)
    assert isinstance(result["results"], list) and result["total"] >= 0
    r = await node.client.get("/api/v1/search/suggest?" + urlencode({"q": q[:100]}))
    assert r.status in (200, 422)


async def test_bad_parameters_are_problems(node):
    for url in (
        "/api/v1/search?q=x&limit=0",
        "/api/v1/search?q=x&limit=101",
        "/api/v1/search?q=x&page=0",
        "/api/v1/search?q=x&limit=abc",
        "/api/v1/search?q=x&type=playlist",
        "/api/v1/search?q=" + "x" * 201,
        "/api/v1/search/suggest",
        "/api/v1/search/suggest?q=x&limit=0",
    ):
        r = await node.client.get(url)
        assert r.status == 422, url
        assert r.content_type == "application/problem+json"


async def test_accents_are_folded(node):
    await node.user("bey", "artist", name="Beyoncé Rêve")
    await node.run_jobs()
    assert titles(await search(node, "beyonce reve")) == ["Beyoncé Rêve"]
    assert titles(await search(node, "BEYONCÉ")) == ["Beyoncé Rêve"]


async def test_a_burst_of_changes_is_one_job_and_a_later_change_is_another(node):
    await node.user("jay", "artist")
    _, (track,) = await _release(node, "jay", "Takes", ["First Take"])
    await node.run_jobs()

    async def track_jobs() -> int:
        async with node.ctx.db.read_session() as s:
            return await s.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.kind == "search.index", Job.payload["type"].as_string() == "track")
            )

    async def rename(title: str) -> None:
        r = await node.client.patch(
            f"/api/v1/tracks/{track['uuid']}", json={"title": title}, headers=node.auth("jay")
        )
        assert r.status == 200

    before = await track_jobs()
    await rename("Second Take")
    await rename("Third Take")
    assert await track_jobs() == before + 1  # two edits while the job waits: one job
    await node.run_jobs()
    assert titles(await search(node, "third take")) == ["Third Take"]

    await rename("Fourth Take")
    assert await track_jobs() == before + 2  # the finished job does not swallow a later change
    await node.run_jobs()
    assert titles(await search(node, "fourth take")) == ["Fourth Take"]
    assert "Third Take" not in titles(await search(node, "take"))


async def test_reindex_from_the_command_line_rebuilds_while_search_keeps_working(node, capsys):
    await _scene(node)
    before = await search(node, "")
    data = str(node.settings.data_dir)
    code = await asyncio.to_thread(cli.main, ["search", "reindex", "--data", data])
    assert code == 0
    assert "indexed 10 documents" in capsys.readouterr().out
    rebuilt = await search(node, "")
    assert rebuilt["facets"] == before["facets"] and rebuilt["total"] == before["total"]
    # The same documents (ties in date may list in another order).
    assert sorted(map(str, rebuilt["results"])) == sorted(map(str, before["results"]))

    # The index is rebuilt from the database alone: even a lost index comes back.
    shutil.rmtree(node.settings.search_dir)
    assert (await search(node, "kings"))["total"] == 0  # empty, not broken
    code = await asyncio.to_thread(cli.main, ["search", "reindex", "--data", data])
    assert code == 0
    assert "indexed 10 documents" in capsys.readouterr().out
    after = await search(node, "")
    assert after["total"] == before["total"] == 10
    assert after["facets"] == before["facets"]
    assert titles(await search(node, "kigns county"))[0] == "Kings County"

    # Changes keep flowing into the new generation.
    await _release(node, "dex", "Bushwick Loops", ["Jefferson St"])
    await node.run_jobs()
    assert titles(await search(node, "bushwick"))[0] == "Bushwick Loops"
    # The old generation is gone or kept as the only previous one.
    gens = sorted(p.name for p in node.settings.search_dir.glob("gen-*"))
    assert len(gens) <= 2


async def test_reindex_reports_progress_and_counts(node):
    from node.search.reindex import reindex

    await _scene(node)
    seen = []
    n = await reindex(
        node.ctx, node.settings.search_dir, progress=lambda d, t: seen.append((d, t)), batch_size=2
    )
    assert n == 10
    assert seen[0] == (0, 10) and seen[-1] == (10, 10)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert (await search(node, ""))["total"] == 10


async def test_fans_never_see_an_edited_title_twice_while_it_keeps_changing(node):
    """Each edit replaces the document; searches in between must not show the
    old version next to the new one, however the segments are merged."""
    await node.user("jay", "artist", name="Jay Fulton")
    _, (track,) = await _release(node, "jay", "Drafts", ["Take Zero"])
    await node.run_jobs()
    for i in range(1, 16):
        r = await node.client.patch(
            f"/api/v1/tracks/{track['uuid']}", json={"title": f"Take {i}"}, headers=node.auth("jay")
        )
        assert r.status == 200
        await node.run_jobs()
        found = await search(node, "take", type="track")
        assert titles(found) == [f"Take {i}"], i
        everything = await search(node, "")
        assert everything["total"] == 3  # the artist, the release, the track


async def test_a_reader_in_another_process_sees_what_the_worker_wrote(node):
    from node.search import SearchIndex

    other = SearchIndex(node.settings.search_dir, node.ctx)  # as in a `serve --no-worker`
    await asyncio.to_thread(other.open)
    try:
        assert (await other.search("kings"))["total"] == 0
        await _scene(node)  # written by this process's jobs
        assert (await other.search("kings county"))["results"][0]["title"] == "Kings County"
        assert [x["title"] for x in await other.suggest("kin")] == ["Kings County"]
    finally:
        await asyncio.to_thread(other.close)


async def test_on_a_running_node_the_worker_keeps_search_current(live_node):
    import aiohttp

    await live_node.user("jay", "artist", name="Jay Fulton", borough="Brooklyn")
    async with aiohttp.ClientSession(live_node.base_url) as http:
        for _ in range(100):
            async with http.get("/api/v1/search?q=fulton") as r:
                assert r.status == 200
                found = await r.json()
            if found["total"]:
                break
            await asyncio.sleep(0.1)
        assert found["results"][0]["id"] == "jay"


async def test_remote_artists_and_releases_learned_by_federation_are_found_too(node):
    from node.models import Actor, ArtistProfile, Release

    # Given an artist and a published release from another node, stored as
    # federation stores them, with the events it emits.
    async with node.ctx.db.transaction() as s:
        actor = Actor(
            uri="https://queens.example/actors/mara",
            handle="mara",
            domain="queens.example",
            local=False,
            is_artist=True,
            name="Mara Ridgewood",
            url="https://queens.example/@mara",
        )
        s.add(actor)
        await s.flush()
        s.add(ArtistProfile(actor_id=actor.id, borough="Queens", genres=["Cumbia"], links=[]))
        release = Release(
            uri="https://queens.example/releases/9b1c",
            artist_id=actor.id,
            title="Fresh Pond Road",
            state="published",
            local=False,
        )
        s.add(release)
        await s.flush()
        await node.ctx.bus.emit(s, "actor.created", actor_id=actor.id, uri=actor.uri)
        await node.ctx.bus.emit(s, "release.created", release_id=release.id, uri=release.uri)
    await node.run_jobs()

    found = await search(node, "ridgewood")
    assert [(r["type"], r["id"], r["url"]) for r in found["results"]] == [
        ("artist", "mara@queens.example", "https://queens.example/@mara"),
        ("release", release.uuid, "https://queens.example/releases/9b1c"),
    ]
    assert found["facets"]["genre"] == {"cumbia": 2}
    assert [x["title"] for x in await suggest(node, "fresh p")] == ["Fresh Pond Road"]
