"""A venue's device uploads signed batches: windows it heard and tracks a DJ
declared. Each item is answered; consecutive matches are one venue play; the
same batch again, or batches out of order, change nothing they should not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from detection import synth
from detection.client import DeviceClient, declared, window
from detection.device_models import DetectionBatch, DetectionItem, Device
from detection.fingerprint import SAMPLE_RATE, encode, fingerprint
from node.models import Play, Track

WINDOW_S, HOP_S = 10.0, 5.0


async def device_for(node, manager: str = "mo") -> tuple[DeviceClient, dict]:
    """A venue managed by `manager` and a registered device for it."""
    await node.user(manager, "artist")
    r = await node.client.post(
        "/api/v1/venues", json={"name": "Nublu", "borough": "Brooklyn"}, headers=node.auth(manager)
    )
    venue = await r.json()
    r = await node.client.post(
        "/api/v1/devices", json={"venue": venue["uuid"]}, headers=node.auth(manager)
    )
    body = await r.json()
    return DeviceClient.from_credential(body["credential"]), body["device"]


async def send(node, client: DeviceClient, batch_id: str, items: list[dict]):
    body = client.body(batch_id, items)
    return await node.client.post(client.batch_path, data=body, headers=client.headers(body))


def windows_of(samples, start_s: float, count: int, t0: datetime, seq0: int, noise_seed=1):
    """`count` overlapping windows of `samples` from `start_s`, as a device cuts them
    (with crowd babble 10 dB below the music)."""
    sr = SAMPLE_RATE
    items = []
    for k in range(count):
        at = start_s + k * HOP_S
        clip = samples[int(at * sr) : int((at + WINDOW_S) * sr)]
        noisy = synth.mix_at_snr(clip, synth.babble(noise_seed + k, WINDOW_S)[: clip.size], 10.0)
        items.append(
            window(seq0 + k, t0 + timedelta(seconds=k * HOP_S), 10_000, encode(fingerprint(noisy)))
        )
    return items


async def _isrc_tracks(node, n: int = 2) -> list[str]:
    from node.models import Actor
    from node.services.accounts import create_account

    uris = []
    async with node.ctx.db.transaction() as s:
        account = await create_account(node.ctx, s, "djfriendly", "correct horse battery", "artist")
        actor = await s.get(Actor, account.actor_id)
        for i in range(n):
            t = Track(
                uri=node.ctx.urls.obj("tracks", f"dj-{i}"),
                artist_id=actor.id,
                title=f"Cut {i}",
                isrc=f"USNYC2600{i:03d}",
                state="ready",
                genres=[],
                media={},
                duration_ms=200_000,
            )
            s.add(t)
            uris.append(t.uri)
    return uris


async def _plays(node) -> list[Play]:
    async with node.ctx.db.read_session() as s:
        return list((await s.scalars(select(Play).order_by(Play.started_at))).all())


async def test_a_dj_integration_declares_tracks_by_uri_and_isrc(node):
    client, device = await device_for(node)
    a, b = await _isrc_tracks(node)
    t0 = datetime.now(UTC) - timedelta(hours=1)

    r = await send(
        node,
        client,
        "dj-1",
        [
            declared(1, t0, 180_000, a),
            declared(2, t0 + timedelta(minutes=3), 200_000, "USNYC2600001"),
            declared(3, t0 + timedelta(minutes=7), 60_000, "https://elsewhere.example/tracks/x"),
        ],
    )

    assert r.status == 200, await r.text()
    answer = await r.json()
    assert [i["status"] for i in answer["items"]] == ["matched", "matched", "unmatched"]
    assert answer["items"][1]["track"] == b
    plays = await _plays(node)
    assert [(p.track_uri, p.source, p.ms_listened) for p in plays] == [
        (a, "dj", 180_000),
        (b, "dj", 200_000),
    ]
    assert all(p.device_id is not None and p.venue_id is not None for p in plays)
    assert {i["play"] for i in answer["items"][:2]} == {p.uri for p in plays}


async def test_consecutive_windows_of_a_song_heard_through_a_crowd_are_one_venue_play(
    node, catalog, songs
):
    ids = await catalog(node, seeds=(3, 4, 5))
    client, _ = await device_for(node)
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    heard = windows_of(songs[4], 2.0, 3, t0, seq0=100)
    stranger = synth.song(777, 12.0)  # music that is not in the catalogue
    heard.append(
        window(103, t0 + timedelta(seconds=60), 10_000, encode(fingerprint(stranger[:80_000])))
    )

    r = await send(node, client, "room-1", heard)

    answer = await r.json()
    assert [i["status"] for i in answer["items"]] == ["matched"] * 3 + ["unmatched"]
    assert len({i["play"] for i in answer["items"][:3]}) == 1
    (play,) = await _plays(node)
    assert play.track_id == ids[4] and play.source == "venue"
    assert play.ms_listened == 20_000  # three 10 s windows, 5 s apart
    assert play.started_at == t0.replace(microsecond=(t0.microsecond // 1000) * 1000)

    # The device's match rate today, which the fraud rules compare batches with,
    # counts every captured window; a later batch adds to the same day.
    later = window(104, t0 + timedelta(seconds=70), 10_000, encode(fingerprint(stranger[:80_000])))
    await send(node, client, "room-2", [later])
    today = datetime.now(UTC).date().isoformat()
    async with node.ctx.db.read_session() as s:
        device = (await s.scalars(select(Device))).one()
    assert device.history == [{"day": today, "items": 5, "matched": 3}]
    assert (device.items_total, device.items_matched) == (5, 3)


async def test_the_same_batch_again_changes_nothing_and_says_duplicate(node):
    client, _ = await device_for(node)
    a, _b = await _isrc_tracks(node)
    t0 = datetime.now(UTC) - timedelta(hours=2)
    items = [declared(7, t0, 120_000, a), declared(8, t0 + timedelta(minutes=5), 1_000, a)]

    first = await (await send(node, client, "same", items)).json()
    again = await (await send(node, client, "same", items)).json()
    renamed = await (await send(node, client, "other-name", items[:1])).json()

    assert [i["status"] for i in again["items"]] == ["duplicate", "duplicate"]
    assert [i["play"] for i in again["items"]] == [i["play"] for i in first["items"]]
    assert renamed["items"][0]["status"] == "duplicate"
    assert len(await _plays(node)) == 2
    async with node.ctx.db.read_session() as s:
        assert await s.scalar(select(func.count()).select_from(DetectionItem)) == 2
        receipts = (await s.execute(select(DetectionBatch.batch_id, DetectionBatch.items))).all()
    assert sorted(receipts) == [("other-name", 1), ("same", 2)]  # the first receipt kept

    # The venue manager's list counts each item once and shows when it was last heard from.
    r = await node.client.get("/api/v1/devices", headers=node.auth("mo"))
    (listed,) = await r.json()
    assert (listed["items"], listed["matched"]) == (2, 2)
    assert listed["last_seen_at"] == renamed["received_at"]


async def test_a_dj_integration_back_online_uploads_its_whole_backlog_in_one_batch(
    tmp_path, databases, aiohttp_client
):
    """More plays than SQLite takes in one statement, and a count that is not
    a round number: each is recorded once, with its own time and length."""
    from tests.conftest import build_node

    node = await build_node(tmp_path / "node", databases, **{"detection.max_batch_items": 2_500})
    node.client = await aiohttp_client(node.app)
    client, _ = await device_for(node)
    tracks = await _isrc_tracks(node, 60)  # a set that does not repeat one track for hours
    t0 = (datetime.now(UTC) - timedelta(hours=140)).replace(microsecond=0)
    n = 2_345
    items = [
        declared(k + 1, t0 + timedelta(minutes=3 * k), 60_000 + k, tracks[k % 60]) for k in range(n)
    ]

    r = await send(node, client, "backlog", items)
    assert r.status == 200, await r.text()
    answer = await r.json()
    again = await (await send(node, client, "backlog", items)).json()

    assert [i["status"] for i in answer["items"]] == ["matched"] * n
    assert {i["status"] for i in again["items"]} == {"duplicate"}
    plays = await _plays(node)
    assert [(p.started_at, p.ms_listened) for p in plays] == [
        (t0 + timedelta(minutes=3 * k), 60_000 + k) for k in range(n)
    ]
    assert [p.uri for p in plays] == [i["play"] for i in answer["items"]]
    assert [p.track_uri for p in plays[:61]] == [*tracks, tracks[0]]
    async with node.ctx.db.read_session() as s:
        assert await s.scalar(select(func.count()).select_from(DetectionItem)) == n


async def test_batches_out_of_order_still_make_one_play(node, catalog, songs):
    await catalog(node, seeds=(6, 7))
    client, _ = await device_for(node)
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    windows = windows_of(songs[6], 0.0, 4, t0, seq0=500, noise_seed=40)

    later = await (await send(node, client, "b2", windows[2:])).json()
    earlier = await (await send(node, client, "b1", windows[:2])).json()

    plays = await _plays(node)
    assert len(plays) == 1
    assert {i["play"] for i in later["items"] + earlier["items"]} == {plays[0].uri}
    assert plays[0].ms_listened == 25_000
    assert plays[0].started_at.replace(microsecond=0) == t0.replace(microsecond=0)


async def test_items_captured_in_the_future_or_long_ago_are_rejected_alone(node):
    client, _ = await device_for(node)
    a, _ = await _isrc_tracks(node)
    now = datetime.now(UTC)

    r = await send(
        node,
        client,
        "clock",
        [
            declared(1, now + timedelta(hours=1), 1000, a),
            declared(2, now - timedelta(days=30), 1000, a),
            declared(3, now - timedelta(minutes=5), 1000, a),
            {"seq": 4, "captured_at": now.isoformat(), "duration_ms": 1, "fingerprint": "@@@"},
        ],
    )

    items = (await r.json())["items"]
    assert [i["status"] for i in items] == ["rejected", "rejected", "matched", "rejected"]
    assert "future" in items[0]["error"] and "long ago" in items[1]["error"]
    assert "fingerprint" in items[3]["error"]


async def test_a_malformed_batch_is_refused_whole_with_every_problem(node):
    client, _ = await device_for(node)

    r = await send(
        node, client, "bad", [{"seq": -1}, {"seq": 2, "captured_at": "yesterday", "duration_ms": 5}]
    )
    wrong_device = client.body("x", [declared(1, datetime.now(UTC), 1, "USNYC2600000")]).replace(
        client.device_url.encode(),
        client.device_url.encode()[:-1] + (b"1" if client.device_url.endswith("0") else b"0"),
    )
    r2 = await node.client.post(
        client.batch_path, data=wrong_device, headers=client.headers(wrong_device)
    )

    assert r.status == 422 and r.content_type == "application/problem+json"
    fields = {e["field"] for e in (await r.json())["errors"]}
    assert {"items[0].seq", "items[1].captured_at"} <= fields
    assert r2.status == 422


async def test_a_batch_that_arrives_in_slow_pieces_is_read_whole(node):
    """A device on a poor venue connection: the signed body comes in several pieces
    with pauses between them, and the node checks its digest over all of it."""
    import asyncio

    client, _ = await device_for(node)
    a, _ = await _isrc_tracks(node)
    t0 = datetime.now(UTC) - timedelta(hours=2)
    items = [declared(n, t0 + timedelta(minutes=3 * n), 180_000, a) for n in range(1, 41)]
    body = client.body("slow-1", items)

    async def trickle():
        for k in range(0, len(body), 1024):
            yield body[k : k + 1024]
            await asyncio.sleep(0.01)

    headers = {**client.headers(body), "Content-Length": str(len(body))}
    r = await node.client.post(client.batch_path, data=trickle(), headers=headers)

    assert r.status == 200, await r.text()
    assert [i["status"] for i in (await r.json())["items"]] == ["matched"] * 40
