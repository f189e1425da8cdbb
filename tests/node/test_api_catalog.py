"""An artist builds a catalog through the JSON API; fans and strangers browse it."""

from __future__ import annotations

import pytest


async def _track(node, who: str, title: str, **extra) -> dict:
    r = await node.client.post(
        "/api/v1/tracks", json={"title": title, **extra}, headers=node.auth(who)
    )
    assert r.status == 201, await r.text()
    return await r.json()


async def _release(node, who: str, title: str, tracks: list[str], **extra) -> dict:
    body = {"title": title, "kind": "ep", "tracks": tracks, **extra}
    r = await node.client.post("/api/v1/releases", json=body, headers=node.auth(who))
    assert r.status == 201, await r.text()
    return await r.json()


async def test_artist_publishes_a_release_that_anyone_can_then_see(node):
    await node.user("jay", "artist", borough="Brooklyn", genres=["hip hop"])
    t1 = await _track(node, "jay", "Fulton St", duration_ms=201_000, isrc="US-RC1-76-07839")
    t2 = await _track(node, "jay", "Myrtle Ave", duration_ms=180_500)
    release = await _release(
        node, "jay", "Kings County", [t1["uuid"], t2["uuid"]], genres=["hip hop"]
    )
    assert release["state"] == "draft"
    assert [t["title"] for t in release["tracks"]] == ["Fulton St", "Myrtle Ave"]
    assert release["uri"].endswith(f"/releases/{release['uuid']}")
    assert release["tracks"][0]["isrc"] == "USRC17607839"

    # A draft is invisible to strangers.
    r = await node.client.get(f"/api/v1/releases/{release['uuid']}")
    assert r.status == 404
    assert r.content_type == "application/problem+json"
    assert (await node.client.get(f"/api/v1/tracks/{t1['uuid']}")).status == 404

    r = await node.client.post(
        f"/api/v1/releases/{release['uuid']}/publish", headers=node.auth("jay")
    )
    assert r.status == 200
    published = await r.json()
    assert published["state"] == "published" and published["published_at"].endswith("Z")

    # Publishing twice changes nothing.
    r = await node.client.post(
        f"/api/v1/releases/{release['uuid']}/publish", headers=node.auth("jay")
    )
    assert (await r.json())["published_at"] == published["published_at"]

    r = await node.client.get(f"/api/v1/releases/{release['uuid']}")
    assert r.status == 200
    r = await node.client.get(f"/api/v1/tracks/{t1['uuid']}")
    assert (await r.json())["release"]["title"] == "Kings County"
    listing = await (await node.client.get("/api/v1/releases")).json()
    assert [x["title"] for x in listing["items"]] == ["Kings County"]
    tracks = await (await node.client.get("/api/v1/artists/jay/tracks")).json()
    assert {t["title"] for t in tracks["items"]} == {"Fulton St", "Myrtle Ave"}


async def test_fans_cannot_publish_and_artists_cannot_touch_each_others_work(node):
    await node.user("jay", "artist")
    await node.user("ana", "artist")
    await node.user("fan", "fan")
    r = await node.client.post("/api/v1/tracks", json={"title": "x"}, headers=node.auth("fan"))
    assert r.status == 403
    assert (await r.json())["type"].endswith("/forbidden")
    r = await node.client.post("/api/v1/tracks", json={"title": "x"})
    assert r.status == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")

    t = await _track(node, "jay", "Mine")
    r = await node.client.patch(
        f"/api/v1/tracks/{t['uuid']}", json={"title": "Stolen"}, headers=node.auth("ana")
    )
    assert r.status == 404  # ana cannot even see jay's draft
    r = await node.client.post(
        "/api/v1/releases", json={"title": "Heist", "tracks": [t["uuid"]]}, headers=node.auth("ana")
    )
    assert r.status == 422
    assert "another artist" in (await r.json())["detail"]

    # A curator may edit anyone's work.
    await node.user("cur", "curator")
    r = await node.client.patch(
        f"/api/v1/tracks/{t['uuid']}", json={"title": "Fixed typo"}, headers=node.auth("cur")
    )
    assert r.status == 200 and (await r.json())["title"] == "Fixed typo"


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "ok", "kind": "boxset"}, "kind"),
        ({"title": "ok", "tracks": ["not-a-uuid"]}, "tracks"),
        ({"title": "ok", "release_date": "yesterday"}, "release_date"),
        ({"title": "ok", "cover_url": "javascript:alert(1)"}, "cover_url"),
        ({"title": "ok", "surprise": True}, "surprise"),
        ({"title": ["a"]}, "title"),
    ],
)
async def test_release_validation_names_the_bad_field(node, body, field):
    await node.user("jay", "artist")
    r = await node.client.post("/api/v1/releases", json=body, headers=node.auth("jay"))
    assert r.status == 422
    problem = await r.json()
    assert r.content_type == "application/problem+json"
    assert field in [e["field"] for e in problem["errors"]]


async def test_malformed_bodies_are_problems_not_crashes(node):
    await node.user("jay", "artist")
    h = {**node.auth("jay"), "Content-Type": "application/json"}
    r = await node.client.post("/api/v1/releases", data=b"{not json", headers=h)
    assert r.status == 400 and (await r.json())["title"] == "Bad request"
    r = await node.client.post("/api/v1/releases", data=b"[1,2]", headers=h)
    assert r.status == 422
    r = await node.client.post("/api/v1/releases", data=b"x" * 2_000_000, headers=h)
    assert r.status == 413
    r = await node.client.get("/api/v1/releases?limit=abc")
    assert r.status == 422
    r = await node.client.get("/api/v1/releases?cursor=%%%")
    assert r.status == 400
    r = await node.client.get("/api/v1/nothing-here")
    assert r.status == 404 and r.content_type == "application/problem+json"
    r = await node.client.put("/api/v1/releases")
    assert r.status == 405 and r.content_type == "application/problem+json"
    r = await node.client.get("/api/v1/me", headers={"Authorization": "Bearer forged"})
    assert r.status == 401


async def test_artist_profile_edit_and_directory_filters(node):
    await node.user("jay", "artist", borough="Brooklyn")
    await node.user("queenie", "artist", borough="Queens")
    r = await node.client.patch(
        "/api/v1/artists/jay",
        json={
            "name": "Jay K",
            "summary": "Beats from Bed-Stuy",
            "genres": ["Hip Hop", "jazz"],
            "links": ["https://jay.example"],
        },
        headers=node.auth("jay"),
    )
    assert r.status == 200, await r.text()
    assert (await r.json())["genres"] == ["Hip Hop", "jazz"]
    r = await node.client.patch(
        "/api/v1/artists/jay", json={"borough": "Atlantis"}, headers=node.auth("jay")
    )
    assert r.status == 422
    r = await node.client.patch(
        "/api/v1/artists/queenie", json={"name": "x"}, headers=node.auth("jay")
    )
    assert r.status == 403

    brooklyn = await (await node.client.get("/api/v1/artists?borough=Brooklyn")).json()
    assert [a["handle"] for a in brooklyn["items"]] == ["jay"]
    jazz = await (await node.client.get("/api/v1/artists?genre=jazz")).json()
    assert [a["handle"] for a in jazz["items"]] == ["jay"]
    r = await node.client.get("/api/v1/artists/nobody")
    assert r.status == 404


async def test_deep_pages_with_cursors_visit_every_release_once(node):
    await node.user("jay", "artist")
    ids = []
    for i in range(23):
        t = await _track(node, "jay", f"T{i}")
        rel = await _release(node, "jay", f"R{i}", [t["uuid"]])
        r = await node.client.post(
            f"/api/v1/releases/{rel['uuid']}/publish", headers=node.auth("jay")
        )
        assert r.status == 200
        ids.append(rel["uuid"])
    seen, cursor = [], None
    while True:
        url = "/api/v1/releases?limit=5" + (f"&cursor={cursor}" if cursor else "")
        page = await (await node.client.get(url)).json()
        seen += [x["uuid"] for x in page["items"]]
        cursor = page["next"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    assert seen[0] == ids[-1]  # newest first


async def test_events_at_venues_with_prices_in_minor_units(node):
    await node.user("jay", "artist")
    r = await node.client.post(
        "/api/v1/venues",
        json={
            "name": "Elsewhere",
            "address": "599 Johnson Ave",
            "borough": "Brooklyn",
            "lat": 40.7097,
            "lon": -73.9233,
        },
        headers=node.auth("jay"),
    )
    assert r.status == 201, await r.text()
    venue = await r.json()
    r = await node.client.post(
        "/api/v1/events",
        json={
            "title": "Rooftop",
            "starts_at": "2099-06-01T22:00:00-04:00",
            "ends_at": "2099-06-02T03:00:00-04:00",
            "venue": venue["uuid"],
            "price_amount": 1500,
            "price_currency": "usd",
            "lineup": ["jay"],
        },
        headers=node.auth("jay"),
    )
    assert r.status == 201, await r.text()
    event = await r.json()
    assert event["starts_at"] == "2099-06-02T02:00:00Z"
    assert event["price"] == {"amount": 1500, "currency": "USD"}
    assert event["venue"]["borough"] == "Brooklyn"

    upcoming = await (await node.client.get("/api/v1/events?borough=Brooklyn")).json()
    assert [e["title"] for e in upcoming["items"]] == ["Rooftop"]

    bad = [
        {"title": "x", "starts_at": "2099-06-01T22:00:00"},  # no offset
        {"title": "x", "starts_at": "2099-06-01T22:00:00Z", "ends_at": "2099-06-01T21:00:00Z"},
        {"title": "x", "starts_at": "2099-06-01T22:00:00Z", "price_amount": 12.5},
        {
            "title": "x",
            "starts_at": "2099-06-01T22:00:00Z",
            "venue": "00000000-0000-0000-0000-000000000000",
        },
    ]
    for body in bad:
        r = await node.client.post("/api/v1/events", json=body, headers=node.auth("jay"))
        assert r.status in (404, 422), (body, await r.text())
    r = await node.client.patch(
        f"/api/v1/events/{event['uuid']}", json={"state": "cancelled"}, headers=node.auth("jay")
    )
    assert r.status == 200
    upcoming = await (await node.client.get("/api/v1/events")).json()
    assert upcoming["items"] == []


async def test_uploading_a_master_keeps_it_and_queues_it_for_media(node):
    await node.user("jay", "artist")
    from aiohttp import FormData

    from media import synth

    master = synth.encode(synth.master(2), "wav")  # uploads are decoded: it must be real audio
    form = FormData()
    form.add_field("title", "Demo take")
    form.add_field("file", master, filename="take.wav", content_type="audio/wav")
    r = await node.client.post("/api/v1/tracks", data=form, headers=node.auth("jay"))
    assert r.status == 201, await r.text()
    track = await r.json()
    assert track["state"] == "processing"
    from sqlalchemy import select

    from node.models import Track

    async with node.ctx.db.read_session() as s:
        row = await s.scalar(select(Track).where(Track.uuid == track["uuid"]))
    stored = node.settings.data_dir / row.original_path
    assert stored.read_bytes() == master
