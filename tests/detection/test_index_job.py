"""Every track an artist uploads is fingerprinted by a job once its audio is
ready, so a venue's device can recognise it without anyone lifting a finger."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import FormData
from sqlalchemy import select

from detection import synth
from detection.audio import encode_pcm
from detection.fingerprint import fingerprint
from detection.matching import match
from detection.models import IndexedTrack
from node.models import Job, Track


async def test_an_uploaded_track_is_indexed_by_its_job_and_recognised_in_a_noisy_room(node):
    await node.user("ana", "artist")
    song = synth.song(77, 14.0)
    form = FormData()
    form.add_field("title", "Bus Shelter")
    form.add_field(
        "file",
        encode_pcm(song, "flac", out_rate=44_100),
        filename="bus.flac",
        content_type="audio/flac",
    )
    r = await node.client.post("/api/v1/tracks", data=form, headers=node.auth("ana"))
    assert r.status == 201, await r.text()
    uuid = (await r.json())["uuid"]

    # The media pipeline makes the track ready; that queues the fingerprint job.
    await node.run_jobs()
    await node.run_jobs()

    async with node.ctx.db.read_session() as s:
        track = await s.scalar(select(Track).where(Track.uuid == uuid))
        assert track.state == "ready"
        jobs = (await s.scalars(select(Job).where(Job.kind == "detection.fingerprint"))).all()
        indexed = await s.scalar(select(IndexedTrack).where(IndexedTrack.track_id == track.id))
    assert [j.state for j in jobs] == ["done"]
    assert indexed is not None and indexed.hashes > 1000
    assert abs(indexed.duration_ms - 14_000) < 500

    heard = synth.mix_at_snr(synth.excerpt(song, 6.0, 5.0), synth.babble(3, 6.0), 5)
    async with node.ctx.db.read_session() as s:
        found = await match(s, fingerprint(heard))
    assert found is not None
    assert found.track_uri == track.uri
    assert abs(found.offset_ms - 6000) <= 100


async def test_a_track_ready_again_is_indexed_again_not_twice(node):
    await node.user("ana", "artist")
    song = synth.song(78, 8.0)
    form = FormData()
    form.add_field("title", "Twice")
    form.add_field("file", encode_pcm(song, "wav"), filename="twice.wav", content_type="audio/wav")
    r = await node.client.post("/api/v1/tracks", data=form, headers=node.auth("ana"))
    assert r.status == 201, await r.text()
    await node.run_jobs()
    await node.run_jobs()

    async with node.ctx.db.transaction() as s:
        track = await s.scalar(select(Track).where(Track.uuid == (await r.json())["uuid"]))
        await node.ctx.bus.emit(s, "track.ready", track_id=track.id, uri=track.uri)
    await node.run_jobs()

    async with node.ctx.db.read_session() as s:
        rows = (await s.scalars(select(IndexedTrack))).all()
    assert [row.track_id for row in rows] == [track.id]


async def test_a_remote_track_is_fingerprinted_from_its_origin_nodes_audio(node, live_node):
    """A remote track this node knows is indexed from the stream link its origin
    published, fetched over real HTTP from the origin node."""
    from detection.index import enqueue_fingerprint
    from node.models import Actor

    origin = live_node
    await origin.user("bo", "artist")
    song = synth.song(79, 10.0)
    form = FormData()
    form.add_field("title", "Far Shore")
    form.add_field("file", encode_pcm(song, "wav"), filename="far.wav", content_type="audio/wav")
    async with aiohttp.ClientSession() as http:
        r = await http.post(
            f"{origin.base_url}/api/v1/tracks", data=form, headers=origin.auth("bo")
        )
        assert r.status == 201, await r.text()
        uuid = (await r.json())["uuid"]
        # The origin's own worker transcodes it; wait (bounded) until it is ready.
        for _ in range(600):
            r = await http.get(f"{origin.base_url}/api/v1/tracks/{uuid}", headers=origin.auth("bo"))
            if (await r.json())["state"] in ("ready", "failed"):
                break
            await asyncio.sleep(0.1)
        assert (await r.json())["state"] == "ready"

    async with node.ctx.db.transaction() as s:
        actor = Actor(
            uri=f"{origin.base_url}/actors/bo",
            handle="bo",
            domain=origin.settings.node.domain,
            local=False,
            is_artist=True,
        )
        s.add(actor)
        await s.flush()
        remote = Track(
            uri=f"{origin.base_url}/tracks/{uuid}",
            artist_id=actor.id,
            local=False,
            title="Far Shore",
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
        s.add(remote)
        await s.flush()
        await enqueue_fingerprint(node.ctx, s, remote.id)
    await node.run_jobs()
    async with node.ctx.db.read_session() as s:
        job = await s.scalar(select(Job).where(Job.kind == "detection.fingerprint"))
    assert job.state == "done", job.last_error

    heard = synth.mix_at_snr(synth.excerpt(song, 3.0, 5.0), synth.babble(4, 6.0), 10)
    async with node.ctx.db.read_session() as s:
        found = await match(s, fingerprint(heard))
    assert found is not None
    assert found.track_uri == f"{origin.base_url}/tracks/{uuid}"
