"""A venue on one node hears a song that only another node has: with peer
matching on, the node asks its peer (a signed request, node to node), the
window is matched to the peer's track, and the answer is cached. Unsigned
callers and nodes this one does not know are refused."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import select
from yarl import URL

from detection.client import DeviceClient
from detection.fingerprint import SAMPLE_RATE, encode, fingerprint
from detection.peers import MATCH_PATH
from federation.signatures import sign_request
from node.keys import RSA_FILE
from node.models import Play

from .test_batches import windows_of

PEERS = {"detection.peer_match": True}


async def eventually(check, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)
    return result


async def api(node, method: str, path: str, who: str | None = None, **kw):
    headers = {**(node.auth(who) if who else {}), **kw.pop("headers", {})}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, node.base_url + path, headers=headers, **kw) as r:
            return r.status, await r.json(content_type=None)


async def song_on(node, song_prints, seed: int) -> str:
    """An artist on `node` with one ready, indexed track of song `seed`; its URI."""
    from detection.index import index_track
    from node.models import Actor, Track
    from node.models.base import new_uuid
    from node.services.accounts import create_account

    ctx = node.ctx
    async with ctx.db.transaction() as s:
        account = await create_account(ctx, s, "synthband", "correct horse battery", "artist")
        actor = await s.get(Actor, account.actor_id)
        uuid = new_uuid()
        track = Track(
            uuid=uuid,
            uri=ctx.urls.obj("tracks", uuid),
            artist_id=actor.id,
            title=f"Song {seed}",
            state="ready",
            genres=[],
            media={},
            duration_ms=24_000,
        )
        s.add(track)
        await s.flush()
        await index_track(s, track.id, song_prints[seed])
        return track.uri


async def venue_device(node) -> DeviceClient:
    await node.user("mo", "artist")
    _, venue = await api(
        node, "POST", "/api/v1/venues", "mo", json={"name": "Nublu", "borough": "Brooklyn"}
    )
    _, body = await api(node, "POST", "/api/v1/devices", "mo", json={"venue": venue["uuid"]})
    return DeviceClient.from_credential(body["credential"])


async def send(client: DeviceClient, batch_id: str, items: list[dict]) -> dict:
    body = client.body(batch_id, items)
    async with aiohttp.ClientSession() as http:
        async with http.post(client.batch_url, data=body, headers=client.headers(body)) as r:
            assert r.status == 200, await r.text()
            return await r.json()


async def test_a_song_only_a_peer_node_knows_is_matched_by_asking_it(network, songs, song_prints):
    brooklyn, queens = await network(2, **PEERS)
    track_uri = await song_on(brooklyn, song_prints, 4)
    # A fan on Queens follows the artist on Brooklyn: Brooklyn is Queens' peer.
    await queens.user("rosa")
    status, _ = await api(
        queens,
        "POST",
        "/api/v1/follows",
        "rosa",
        json={"target": f"@synthband@{brooklyn.ctx.domain}"},
    )
    assert status == 201

    async def accepted():
        _, follows = await api(queens, "GET", "/api/v1/follows", "rosa")
        return follows[0]["state"] == "accepted"

    await eventually(accepted)
    device = await venue_device(queens)
    t0 = datetime.now(UTC) - timedelta(minutes=10)

    answer = await send(device, "b1", windows_of(songs[4], 2.0, 2, t0, seq0=1))

    assert [i["status"] for i in answer["items"]] == ["matched", "matched"]
    assert {i["track"] for i in answer["items"]} == {track_uri}
    async with queens.ctx.db.read_session() as s:
        (play,) = (await s.scalars(select(Play))).all()
    assert play.track_uri == track_uri and play.source == "venue"

    # Brooklyn goes away; the same windows heard again are answered from the cache.
    await brooklyn.runner.cleanup()
    brooklyn.runner = None
    again = await send(device, "b2", windows_of(songs[4], 2.0, 2, t0 + timedelta(minutes=5), 10))
    assert [i["track"] for i in again["items"]] == [track_uri, track_uri]


async def test_peer_questions_must_be_signed_by_a_node_this_one_knows(network, songs, song_prints):
    brooklyn, stranger = await network(2, **PEERS)
    await song_on(brooklyn, song_prints, 5)
    clip = songs[5][2 * SAMPLE_RATE : 12 * SAMPLE_RATE]
    body = {"fingerprints": [encode(fingerprint(clip))]}

    status, problem = await api(brooklyn, "POST", MATCH_PATH, json=body)
    assert status == 401, problem

    # Signed by a real node whose key Brooklyn can fetch, but one it never federated with.
    raw = json.dumps(body).encode()
    key_id = f"{stranger.base_url}/actor#main-key"
    from federation.actors import ensure_node_actor

    actor = await ensure_node_actor(stranger.ctx)
    pem = (stranger.settings.keys_dir / RSA_FILE).read_text()
    url = brooklyn.base_url + MATCH_PATH
    headers = sign_request(
        "POST", url, {"Content-Type": "application/json"}, raw, actor.key_id, pem
    )
    async with aiohttp.ClientSession() as http:
        async with http.post(URL(url, encoded=True), data=raw, headers=headers) as r:
            assert r.status == 403, (key_id, await r.text())
            assert (await r.json())["type"].endswith("unknown-peer")

    # Named in Brooklyn's detection.peers, the same node is answered.
    brooklyn.settings.values["detection.peers"] = [stranger.base_url]
    headers = sign_request(
        "POST", url, {"Content-Type": "application/json"}, raw, actor.key_id, pem
    )
    async with aiohttp.ClientSession() as http:
        async with http.post(URL(url, encoded=True), data=raw, headers=headers) as r:
            assert r.status == 200, await r.text()
            (match,) = (await r.json())["matches"]
    assert match is not None and match["track"].startswith(brooklyn.base_url)


async def test_a_node_with_peer_matching_off_answers_no_questions(node):
    r = await node.client.post(MATCH_PATH, json={"fingerprints": ["x"]})

    assert r.status == 403
    assert (await r.json())["type"].endswith("peer-matching-off")
