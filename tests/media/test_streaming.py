"""Listeners stream tracks: HTTP ranges, caching validators, privacy of drafts,
signed links, nginx hand-off, S3 and tracks that live on other nodes."""

from __future__ import annotations

import time

import aiohttp
import pytest

AUDIO = bytes(range(256)) * 1000  # 256,000 bytes standing in for an mp3


async def test_a_fan_streams_and_seeks_in_a_published_track(node, add_track):
    await node.user("ana", "artist")
    uuid = await add_track(node, "ana", "Fulton St", {"mp3_128": AUDIO, "opus": AUDIO[:5000]})
    url = f"/tracks/{uuid}/stream?format=mp3_128"

    r = await node.client.get(url)
    assert r.status == 200
    assert await r.read() == AUDIO
    assert r.headers["Content-Type"] == "audio/mpeg"
    assert r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    etag, modified = r.headers["ETag"], r.headers["Last-Modified"]

    # Seeking: the browser asks for the rest of the file from a byte offset.
    r = await node.client.get(url, headers={"Range": "bytes=1000-1999"})
    assert r.status == 206
    assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(AUDIO)}"
    assert await r.read() == AUDIO[1000:2000]
    r = await node.client.get(url, headers={"Range": "bytes=-100"})
    assert r.status == 206 and await r.read() == AUDIO[-100:]

    # Past the end: 416 says how long the file is.
    r = await node.client.get(url, headers={"Range": f"bytes={len(AUDIO) + 10}-"})
    assert r.status == 416
    assert r.headers["Content-Range"] == f"bytes */{len(AUDIO)}"

    # Revalidation and If-Range.
    r = await node.client.get(url, headers={"If-None-Match": etag})
    assert r.status == 304
    r = await node.client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert r.status == 206 and await r.read() == AUDIO[:10]
    r = await node.client.get(url, headers={"Range": "bytes=0-9", "If-Range": modified})
    assert r.status == 206
    r = await node.client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert r.status == 200 and await r.read() == AUDIO

    r = await node.client.head(url)
    assert r.status == 200 and r.headers["Content-Length"] == str(len(AUDIO))

    r = await node.client.get(f"/tracks/{uuid}/stream?format=opus")
    assert r.status == 200 and r.headers["Content-Type"] == "audio/ogg"

    r = await node.client.get(f"/tracks/{uuid}/stream?format=mp3_128&download=1")
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert "Fulton St.mp3" in r.headers["Content-Disposition"]


async def test_drafts_stream_only_for_their_artist(node, add_track):
    await node.user("ana", "artist")
    await node.user("fan", "fan")
    uuid = await add_track(node, "ana", "Work in progress", {"mp3_128": AUDIO}, draft=True)
    url = f"/tracks/{uuid}/stream?format=mp3_128"

    assert (await node.client.get(url)).status == 404
    assert (await node.client.get(url, headers=node.auth("fan"))).status == 404
    r = await node.client.get(url, headers=node.auth("ana"))
    assert r.status == 200
    assert r.headers["Cache-Control"].startswith("private")


async def test_what_cannot_be_streamed_is_a_problem_not_a_crash(node, add_track):
    await node.user("ana", "artist")
    ready = await add_track(node, "ana", "Ready", {"mp3_128": AUDIO})
    busy = await add_track(node, "ana", "Busy", {}, state="processing")
    failed = await add_track(node, "ana", "Broken", {}, state="failed")

    cases = [
        (f"/tracks/{ready}/stream?format=flac", 404),
        (f"/tracks/{ready}/stream?format=opus", 404),
        ("/tracks/00000000-0000-0000-0000-000000000000/stream", 404),
        ("/tracks/not-a-uuid/stream", 404),
        (f"/tracks/{busy}/stream?format=mp3_128", 409),
        (f"/tracks/{failed}/stream?format=mp3_128", 404),
    ]
    # Asked by the artist, who can see even the unfinished ones.
    for url, status in cases:
        r = await node.client.get(url, headers={"Accept": "application/json", **node.auth("ana")})
        assert r.status == status, url
        assert r.headers["Content-Type"].startswith("application/problem+json")
        assert (await r.json())["status"] == status

    r = await node.client.get(
        f"/tracks/{ready}/stream", headers={"Range": "bytes=banana", "Accept": "*/*"}
    )
    assert r.status == 200  # a malformed Range is ignored, as HTTP says


async def test_behind_nginx_the_node_only_says_which_file_to_send(node, add_track):
    await node.user("ana", "artist")
    uuid = await add_track(node, "ana", "Fulton St", {"mp3_128": AUDIO})
    node.settings.values["media.x_accel_prefix"] = "/_media/"
    r = await node.client.get(f"/tracks/{uuid}/stream?format=mp3_128")
    assert r.status == 200
    assert r.headers["X-Accel-Redirect"] == f"/_media/audio/ana/{uuid}/mp3_128.mp3"
    assert r.headers["Content-Type"] == "audio/mpeg"
    assert await r.read() == b""


async def test_gated_streams_need_a_fresh_signed_link(node, add_track):
    from media.streaming import signed_stream_url

    await node.user("ana", "artist")
    uuid = await add_track(node, "ana", "Members only", {"mp3_128": AUDIO})
    node.settings.values["media.signed_urls"] = True

    r = await node.client.get(f"/tracks/{uuid}/stream?format=mp3_128")
    assert r.status == 403
    signed = signed_stream_url(node.ctx, uuid, "mp3_128")
    assert "exp=" in signed and "sig=" in signed
    r = await node.client.get(signed)
    assert r.status == 200 and await r.read() == AUDIO

    # The signature covers the format and the track.
    assert (await node.client.get(signed.replace("mp3_128", "opus"))).status == 403
    expired = signed_stream_url(node.ctx, uuid, "mp3_128", expires_in=-7200)
    assert (await node.client.get(expired)).status == 403
    # And the page's own links are signed too.
    stale = signed_stream_url(node.ctx, uuid, "mp3_128", now=time.time() - 86400 * 2)
    assert (await node.client.get(stale)).status == 403


@pytest.mark.parametrize("presign", [True, False])
async def test_a_node_with_its_media_in_s3(network, s3_settings, presign):
    settings = {f"media.s3_{k}": v for k, v in s3_settings.items()}
    (node,) = await network(1, **{"media.storage": "s3", "media.s3_presign": presign, **settings})
    from media.storage import STORAGE

    await node.user("ana", "artist")
    storage = node.app[STORAGE]
    async with aiohttp.ClientSession() as http:
        r = await http.post(
            f"{node.base_url}/api/v1/tracks", json={"title": "Cloud"}, headers=node.auth("ana")
        )
        uuid = (await r.json())["uuid"]
        key = f"audio/ana/{uuid}/mp3_128.mp3"
        await storage.put_bytes(key, AUDIO, "audio/mpeg")
        from sqlalchemy import select

        from node.models import Track

        async with node.ctx.db.transaction() as s:
            track = await s.scalar(select(Track).where(Track.uuid == uuid))
            track.media = {"files": {"mp3_128": {"key": key, "mime": "audio/mpeg"}}}
            track.state = "ready"

        url = f"{node.base_url}/tracks/{uuid}/stream?format=mp3_128"
        r = await http.get(url, allow_redirects=False)
        if presign:
            assert r.status == 302
            assert r.headers["Location"].startswith(s3_settings["endpoint"])
        r = await http.get(url, headers={"Range": "bytes=10-19"})
        assert r.status == 206
        assert await r.read() == AUDIO[10:20]
        if not presign:
            assert r.headers["Content-Range"] == f"bytes 10-19/{len(AUDIO)}"
            etag = r.headers["ETag"]
            r = await http.get(url, headers={"If-None-Match": etag})
            assert r.status == 304
            r = await http.get(url, headers={"Range": "bytes=999999-"})
            assert r.status == 416 and r.headers["Content-Range"] == f"bytes */{len(AUDIO)}"


async def _remote_track(home, origin, uuid: str) -> str:
    """The row federation keeps for a track of `origin` on `home`."""
    from sqlalchemy import select

    from node.models import Actor, Track

    async with home.ctx.db.transaction() as s:
        actor = await s.scalar(select(Actor).where(Actor.uri == f"{origin.base_url}/actors/ana"))
        if actor is None:
            actor = Actor(
                uri=f"{origin.base_url}/actors/ana",
                handle="ana",
                domain=origin.settings.node.domain,
                local=False,
                is_artist=True,
            )
            s.add(actor)
            await s.flush()
        track = Track(
            uri=f"{origin.base_url}/tracks/{uuid}",
            artist_id=actor.id,
            local=False,
            title="Far away",
            state="ready",
            genres=[],
            media={
                "remote_audio": [
                    {
                        "href": f"{origin.base_url}/tracks/{uuid}/stream?format=mp3_128",
                        "mediaType": "audio/mpeg",
                    }
                ]
            },
        )
        s.add(track)
        await s.flush()
        return track.uuid


async def _origin_track(origin, title: str = "Far") -> str:
    """A ready track on `origin` (creating its artist on first use)."""
    from sqlalchemy import select

    from media.storage import STORAGE
    from node.models import Track

    if "ana" not in origin.tokens:
        await origin.user("ana", "artist")
    async with aiohttp.ClientSession() as http:
        r = await http.post(
            f"{origin.base_url}/api/v1/tracks", json={"title": title}, headers=origin.auth("ana")
        )
        uuid = (await r.json())["uuid"]
    key = f"audio/ana/{uuid}/mp3_128.mp3"
    await origin.app[STORAGE].put_bytes(key, AUDIO, "audio/mpeg")
    async with origin.ctx.db.transaction() as s:
        track = await s.scalar(select(Track).where(Track.uuid == uuid))
        track.media = {"files": {"mp3_128": {"key": key, "mime": "audio/mpeg"}}}
        track.state = "ready"
    return uuid


async def test_tracks_from_other_nodes_redirect_or_come_through_the_home_node(network):
    origin, home = await network(2)
    origin_uuid = await _origin_track(origin)
    local_uuid = await _remote_track(home, origin, origin_uuid)
    url = f"{home.base_url}/tracks/{local_uuid}/stream?format=mp3_128"
    async with aiohttp.ClientSession() as http:
        r = await http.get(url, allow_redirects=False)
        assert r.status == 302
        assert (
            r.headers["Location"] == f"{origin.base_url}/tracks/{origin_uuid}/stream?format=mp3_128"
        )

        # With proxy_remote the home node fetches it once and serves ranges itself.
        home.settings.values["media.proxy_remote"] = True
        r = await http.get(url, headers={"Range": "bytes=5-9"}, allow_redirects=False)
        assert r.status == 206 and await r.read() == AUDIO[5:10]
        r = await http.get(url, allow_redirects=False)
        assert r.status == 200 and await r.read() == AUDIO

        # Too big for the cache limit: a 502 problem, nothing stored.
        home.settings.values["media.remote_max_bytes"] = 100
        second = await _origin_track(origin, "Big")
        too_big = await _remote_track(home, origin, second)
        r = await http.get(
            f"{home.base_url}/tracks/{too_big}/stream?format=mp3_128",
            headers={"Accept": "application/json"},
        )
        assert r.status == 502
        assert "over 100 bytes" in (await r.json())["detail"]


async def test_remote_audio_from_private_addresses_is_refused(network):
    origin, home = await network(2)
    origin_uuid = await _origin_track(origin)
    local_uuid = await _remote_track(home, origin, origin_uuid)
    home.settings.values["media.proxy_remote"] = True
    home.settings.values["federation.allow_private_addresses"] = False
    async with aiohttp.ClientSession() as http:
        r = await http.get(
            f"{home.base_url}/tracks/{local_uuid}/stream?format=mp3_128",
            headers={"Accept": "application/json"},
        )
        assert r.status == 400
        assert (await r.json())["type"].endswith("unsafe-url")


async def test_pages_hand_out_links_that_play_when_streams_are_gated(node, add_track):
    import html
    import re

    await node.user("ana", "artist")
    uuid = await add_track(node, "ana", "Members only", {"mp3_128": AUDIO})
    node.settings.values["media.signed_urls"] = True
    page = await (await node.client.get(f"/tracks/{uuid}", headers={"Accept": "text/html"})).text()
    links = {
        html.unescape(m)
        for m in re.findall(r'(?:data-play-src|src)="(/tracks/[^"]+/stream[^"]*)"', page)
    }
    assert len(links) == 1  # the player's button and the plain <audio> agree
    (link,) = links
    assert "sig=" in link
    r = await node.client.get(link)
    assert r.status == 200 and await r.read() == AUDIO


async def test_the_player_gets_a_tracks_waveform_peaks(node, add_track):
    import json

    from sqlalchemy import select

    from media.storage import STORAGE
    from node.models import Track

    await node.user("ana", "artist")
    shown = await add_track(node, "ana", "Shown", {"mp3_128": AUDIO})
    hidden = await add_track(node, "ana", "Hidden", {"mp3_128": AUDIO}, draft=True)
    bare = await add_track(node, "ana", "No peaks", {"mp3_128": AUDIO})
    for uuid in (shown, hidden):
        key = f"audio/ana/{uuid}/waveform.json"
        doc = {"version": 1, "duration_ms": 5000, "peaks": [0.1, 0.5, 1.7, -0.2, "x"]}
        await node.app[STORAGE].put_bytes(key, json.dumps(doc).encode(), "application/json")
        async with node.ctx.db.transaction() as s:
            track = await s.scalar(select(Track).where(Track.uuid == uuid))
            track.media = {**track.media, "waveform": key}

    r = await node.client.get(f"/tracks/{shown}/waveform.json")
    assert r.status == 200
    assert await r.json() == {"peaks": [0.1, 0.5, 1.0, 0.2], "duration_ms": 5000}
    assert r.headers["Cache-Control"].startswith("public")
    assert (await node.client.get(f"/tracks/{hidden}/waveform.json")).status == 404
    r = await node.client.get(f"/tracks/{hidden}/waveform.json", headers=node.auth("ana"))
    assert r.status == 200 and r.headers["Cache-Control"].startswith("private")
    r = await node.client.get(f"/tracks/{bare}/waveform.json")
    assert r.status == 404
    assert r.headers["Content-Type"].startswith("application/problem+json")


async def test_a_crowd_arriving_at_once_gets_the_same_answers_as_one_listener(node, add_track):
    import asyncio

    await node.user("ana", "artist")
    public = await add_track(node, "ana", "Hit", {"mp3_128": AUDIO})
    draft = await add_track(node, "ana", "Secret", {"mp3_128": AUDIO}, draft=True)

    async def status(uuid: str, **headers: str) -> int:
        r = await node.client.get(
            f"/tracks/{uuid}/stream?format=mp3_128", headers={"Range": "bytes=0-99", **headers}
        )
        await r.read()
        return r.status

    crowd = [status(public) for _ in range(30)]
    crowd += [status(draft) for _ in range(10)]
    crowd += [status(draft, **node.auth("ana")) for _ in range(3)]
    got = await asyncio.gather(*crowd)
    assert got == [206] * 30 + [404] * 10 + [206] * 3


async def test_a_change_made_by_another_process_shows_once_the_cached_track_is_renewed(
    node, add_track
):
    """Another `serve` process (no event reaches this one) unpublishes a track:
    listeners here keep it until its cache entry expires, get the old entry
    once while it is looked up again in the background, then the change."""
    from sqlalchemy import update

    from media.streaming import _TRACK_CACHE
    from node.models import Track

    await node.user("ana", "artist")
    uuid = await add_track(node, "ana", "Halsey St", {"mp3_128": AUDIO})
    url = f"/tracks/{uuid}/stream?format=mp3_128"
    assert (await node.client.get(url)).status == 200
    async with node.ctx.db.transaction() as s:
        await s.execute(update(Track).where(Track.uuid == uuid).values(state="draft"))
    assert (await node.client.get(url)).status == 200  # still within the cache's TTL

    cache = node.app[_TRACK_CACHE]
    expiry, track = cache.entries[uuid]
    cache.entries[uuid] = (expiry - cache.ttl - 1, track)  # as if the TTL had passed
    assert (await node.client.get(url)).status == 200  # served while renewing
    if (renewal := cache.renewing.get(uuid)) is not None:
        await renewal
    assert uuid not in cache.entries
    assert (await node.client.get(url)).status == 404
