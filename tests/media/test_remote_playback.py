"""A fan on Queens plays a track uploaded on Brooklyn: the upload is transcoded,
the release federates with its audio links, and Queens streams it from the origin."""

from __future__ import annotations

import asyncio
import io

import aiohttp
import av
from aiohttp import FormData

from media import synth


async def eventually(check, timeout: float = 60.0, interval: float = 0.2):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def test_a_fan_on_another_node_streams_a_freshly_uploaded_track(network):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist")
    await queens.user("rosa")
    async with aiohttp.ClientSession() as http:

        async def call(node, method, path, who, **kw):
            async with http.request(
                method, node.base_url + path, headers=node.auth(who), **kw
            ) as r:
                return r.status, await r.json(content_type=None)

        status, _ = await call(
            queens,
            "POST",
            "/api/v1/follows",
            "rosa",
            json={"target": f"@jay@{brooklyn.ctx.domain}"},
        )
        assert status == 201

        async def accepted():
            _, follows = await call(queens, "GET", "/api/v1/follows", "rosa")
            return follows[0]["state"] == "accepted"

        await eventually(accepted)

        form = FormData()
        form.add_field("title", "Nostrand")
        form.add_field("file", synth.encode(synth.master(8), "flac"), filename="nostrand.flac")
        status, track = await call(brooklyn, "POST", "/api/v1/tracks", "jay", data=form)
        assert status == 201, track

        async def ready():
            _, shown = await call(brooklyn, "GET", f"/api/v1/tracks/{track['uuid']}", "jay")
            return shown["state"] == "ready"

        await eventually(ready)
        _, rel = await call(
            brooklyn,
            "POST",
            "/api/v1/releases",
            "jay",
            json={"title": "Bed-Stuy", "kind": "single", "tracks": [track["uuid"]]},
        )
        status, _ = await call(brooklyn, "POST", f"/api/v1/releases/{rel['uuid']}/publish", "jay")
        assert status == 200

        async def in_feed():
            _, feed = await call(queens, "GET", "/api/v1/feed", "rosa")
            return feed["items"]

        (item, *_) = await eventually(in_feed)
        remote = item["release"]["tracks"][0]
        assert remote["uri"] == track["uri"] and remote["local"] is False

        # Queens points the fan's player at the origin's opus rendition...
        async with http.get(
            f"{queens.base_url}/tracks/{remote['uuid']}/stream?format=opus",
            allow_redirects=False,
        ) as r:
            assert r.status == 302
            assert r.headers["Location"] == f"{track['uri']}/stream?format=opus"
        # ...and what comes back there is the audio that was uploaded.
        async with http.get(f"{queens.base_url}/tracks/{remote['uuid']}/stream?format=opus") as r:
            assert r.status == 200
            data = await r.read()
    with av.open(io.BytesIO(data)) as c:
        stream = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(stream))
        assert stream.codec_context.name == "opus"
        assert abs(samples / stream.codec_context.sample_rate - 8) < 0.1
