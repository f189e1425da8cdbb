"""Fraud rules: a device that reports too much, two songs at once, one song on
a loop, or a match rate unlike its own history gets those plays held back,
with the reason, for the admin to see and release; too many holds in a day
quarantine the device, whose next batch is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from detection.client import DeviceClient, declared, window
from detection.device_models import Device, PlayHold
from detection.fraud import (
    PlaySpan,
    drift_flag_reason,
    loop_flags,
    overlap_flags,
    rate_flags,
)
from node.models import Actor, Track

T0 = datetime(2026, 5, 1, 22, 0, tzinfo=UTC)


def span(i: int, track: int, start_min: float, minutes: float) -> PlaySpan:
    start = T0 + timedelta(minutes=start_min)
    return PlaySpan(i, track, start, start + timedelta(minutes=minutes))


# ---- the rules, alone --------------------------------------------------------------


def test_more_plays_in_an_hour_than_allowed_are_flagged():
    plays = [span(i, i, i * 2, 2) for i in range(30)]  # one every 2 minutes

    flags = rate_flags(plays, [p.start for p in plays], limit=25)

    assert [f.play_id for f in flags] == [25, 26, 27, 28, 29]
    assert flags[0].rule == "rate" and "26 plays" in flags[0].reason


def test_two_songs_at_once_are_flagged_but_a_song_change_is_not():
    a = span(1, 10, 0, 4)
    b = span(2, 11, 3.8, 4)  # 12 s of overlap: windows around a song change
    c = span(3, 12, 1, 2)  # inside a: impossible in one room

    assert overlap_flags([b], [a, b]) == []
    flags = overlap_flags([c], [a, b, c])
    assert [(f.play_id, f.rule) for f in flags] == [(3, "overlap")]


def test_the_same_track_again_and_again_is_a_loop():
    again = [span(i, 7, i * 5, 4) for i in range(8)]
    endless = span(99, 8, 0, 45)

    flags = loop_flags([*again, endless], [*again, endless], 6, {7: 240_000, 8: 240_000})

    assert [f.play_id for f in flags] == [6, 7, 99]
    assert "45 min" in flags[-1].reason


def test_a_match_rate_unlike_the_devices_history_is_suspicious():
    history = [{"day": f"2026-04-{d:02d}", "items": 100, "matched": 30} for d in range(1, 6)]

    assert drift_flag_reason(history, 50, 16, 0.4) is None  # 32 %, as usual
    reason = drift_flag_reason(history, 50, 50, 0.4)  # everything, suddenly
    assert reason == "match rate 100% in this batch, 30% usually"
    assert drift_flag_reason(history[:1], 50, 50, 0.4) is None  # too little history


# ---- through the endpoint ----------------------------------------------------------


async def _device(node) -> tuple[DeviceClient, str]:
    await node.user("mo", "artist")
    await node.user("ada", "admin")
    venue = await (
        await node.client.post(
            "/api/v1/venues", json={"name": "Sultan Room"}, headers=node.auth("mo")
        )
    ).json()
    body = await (
        await node.client.post(
            "/api/v1/devices", json={"venue": venue["uuid"]}, headers=node.auth("mo")
        )
    ).json()
    return DeviceClient.from_credential(body["credential"]), body["device"]["uuid"]


async def _tracks(node, n: int) -> list[str]:
    async with node.ctx.db.transaction() as s:
        artist = (await s.scalars(select(Actor).where(Actor.handle == "mo"))).one()
        uris = [node.ctx.urls.obj("tracks", f"f-{i}") for i in range(n)]
        for i, uri in enumerate(uris):
            s.add(
                Track(
                    uri=uri,
                    artist_id=artist.id,
                    title=f"F{i}",
                    state="ready",
                    genres=[],
                    media={},
                    duration_ms=120_000,
                )
            )
    return uris


async def _send(node, client, batch_id, items):
    body = client.body(batch_id, items)
    r = await node.client.post(client.batch_path, data=body, headers=client.headers(body))
    assert r.status == 200, await r.text()
    return (await r.json())["items"]


async def test_a_device_that_reports_too_much_has_plays_held_and_the_admin_sees_why(node):
    node.settings.values["detection.max_plays_per_hour"] = 5
    client, _ = await _device(node)
    uris = await _tracks(node, 8)
    start = datetime.now(UTC) - timedelta(hours=2)
    items = [declared(i + 1, start + timedelta(minutes=2 * i), 110_000, uris[i]) for i in range(8)]

    answers = await _send(node, client, "busy", items)

    assert ["held" in a for a in answers] == [False] * 5 + [True] * 3
    assert "plays from this device within an hour" in answers[-1]["held"]
    console = await (await node.client.get("/admin/devices.json", headers=node.auth("ada"))).json()
    assert [d["held"] for d in console["devices"]] == [3]
    assert console["devices"][0]["reputation"] == 94
    held = console["held"]
    assert {h["rule"] for h in held} == {"rate"} and len(held) == 3

    released = await node.client.post(
        f"/admin/held-plays/{held[0]['play']}/release.json", json={}, headers=node.auth("ada")
    )

    assert (await released.json())["released"] == 1
    after = await (await node.client.get("/admin/devices.json", headers=node.auth("ada"))).json()
    assert len(after["held"]) == 2
    from royalties.models import HeldPlay

    async with node.ctx.db.read_session() as s:
        open_holds = (
            await s.scalars(select(HeldPlay.play_id).where(HeldPlay.released_at.is_(None)))
        ).all()
    assert sorted(open_holds) == sorted(h["play"] for h in after["held"])


async def test_too_many_holds_in_a_day_quarantine_the_device(node):
    node.settings.values["detection.max_plays_per_hour"] = 2
    node.settings.values["detection.quarantine_after_holds"] = 3
    client, uuid = await _device(node)
    uris = await _tracks(node, 6)
    start = datetime.now(UTC) - timedelta(hours=1)
    items = [declared(i + 1, start + timedelta(minutes=2 * i), 110_000, uris[i]) for i in range(6)]

    await _send(node, client, "flood", items)
    body = client.body("next", [declared(99, start, 1000, uris[0])])
    refused = await node.client.post(client.batch_path, data=body, headers=client.headers(body))

    assert refused.status == 403
    assert "quarantined" in (await refused.json())["detail"]
    async with node.ctx.db.read_session() as s:
        device = (await s.scalars(select(Device).where(Device.uuid == uuid))).one()
    assert device.state == "quarantined" and device.state_reason.startswith("automatic")


async def test_two_songs_heard_at_once_by_one_device_are_held(node):
    client, _ = await _device(node)
    a, b = await _tracks(node, 2)
    start = datetime.now(UTC) - timedelta(hours=1)

    answers = await _send(
        node,
        client,
        "double",
        [declared(1, start, 110_000, a), declared(2, start + timedelta(seconds=10), 100_000, b)],
    )

    assert "held" not in answers[0]
    assert "overlaps another track" in answers[1]["held"]


async def test_a_device_suddenly_matching_everything_is_held_back(node, catalog, songs):
    from detection import synth
    from detection.fingerprint import SAMPLE_RATE, encode, fingerprint

    await catalog(node, seeds=(1, 2))
    client, uuid = await _device(node)
    async with node.ctx.db.transaction() as s:
        device = (await s.scalars(select(Device).where(Device.uuid == uuid))).one()
        device.history = [{"day": "2026-04-01", "items": 1000, "matched": 20}]  # usually 2 %
    start = datetime.now(UTC) - timedelta(minutes=30)
    items = []
    for k in range(20):  # 20 windows, every one a catalog song
        seed = 1 + k // 10
        at = (k % 10) * 1.2
        clip = songs[seed][int(at * SAMPLE_RATE) : int((at + 10) * SAMPLE_RATE)]
        noisy = synth.mix_at_snr(clip, synth.white(k, 10.0)[: clip.size], 15.0)
        when = start + timedelta(seconds=5 * k + (300 if seed == 2 else 0))
        items.append(window(k + 1, when, 10_000, encode(fingerprint(noisy))))

    answers = await _send(node, client, "suspicious", items)

    matched = [a for a in answers if a["status"] == "matched"]
    assert len(matched) >= 18
    assert all("match rate" in a.get("held", "") for a in matched)
    async with node.ctx.db.read_session() as s:
        rules = set((await s.scalars(select(PlayHold.rule))).all())
    assert rules == {"match-rate"}
