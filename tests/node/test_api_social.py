"""Fans follow artists on their own node, play, like and comment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


async def _published_track(node, who: str) -> dict:
    t = await (
        await node.client.post(
            "/api/v1/tracks", json={"title": "Song", "duration_ms": 200_000}, headers=node.auth(who)
        )
    ).json()
    rel = await (
        await node.client.post(
            "/api/v1/releases", json={"title": "EP", "tracks": [t["uuid"]]}, headers=node.auth(who)
        )
    ).json()
    await node.client.post(f"/api/v1/releases/{rel['uuid']}/publish", headers=node.auth(who))
    return t


async def test_fan_follows_a_local_artist_and_sees_the_release_in_the_feed(node):
    await node.user("jay", "artist")
    await node.user("rosa")
    r = await node.client.post(
        "/api/v1/follows", json={"target": "@jay"}, headers=node.auth("rosa")
    )
    assert r.status == 201, await r.text()
    follow = await r.json()
    assert follow["state"] == "accepted" and follow["target"]["handle"] == "jay"
    # Following twice is the same follow.
    again = await (
        await node.client.post(
            "/api/v1/follows", json={"target": f"@jay@{node.ctx.domain}"}, headers=node.auth("rosa")
        )
    ).json()
    assert again["id"] == follow["id"]

    await _published_track(node, "jay")
    feed = await (await node.client.get("/api/v1/feed", headers=node.auth("rosa"))).json()
    assert [i["kind"] for i in feed["items"]] == ["release"]
    assert feed["items"][0]["release"]["title"] == "EP"

    r = await node.client.delete(f"/api/v1/follows/{follow['id']}", headers=node.auth("rosa"))
    assert r.status == 204
    assert (await (await node.client.get("/api/v1/feed", headers=node.auth("rosa"))).json())[
        "items"
    ] == []
    assert (
        await node.client.post(
            "/api/v1/follows", json={"target": "@nobody"}, headers=node.auth("rosa")
        )
    ).status == 404
    assert (
        await node.client.post(
            "/api/v1/follows", json={"target": "not a handle!"}, headers=node.auth("rosa")
        )
    ).status == 400


async def test_an_artist_who_approves_followers_decides(node):
    await node.user("jay", "artist")
    await node.user("rosa")
    await node.client.patch(
        "/api/v1/artists/jay", json={"manually_approves_followers": True}, headers=node.auth("jay")
    )
    follow = await (
        await node.client.post(
            "/api/v1/follows", json={"target": "@jay"}, headers=node.auth("rosa")
        )
    ).json()
    assert follow["state"] == "pending"
    pending = await (
        await node.client.get("/api/v1/follow-requests", headers=node.auth("jay"))
    ).json()
    assert [p["follower"]["handle"] for p in pending] == ["rosa"]
    r = await node.client.post(
        f"/api/v1/follow-requests/{follow['id']}/accept", headers=node.auth("rosa")
    )
    assert r.status == 404  # only the artist decides
    r = await node.client.post(
        f"/api/v1/follow-requests/{follow['id']}/accept", headers=node.auth("jay")
    )
    assert (await r.json())["state"] == "accepted"


async def test_a_play_is_counted_once_however_often_it_is_reported(node):
    await node.user("jay", "artist")
    await node.user("rosa")
    track = await _published_track(node, "jay")
    started = (datetime.now(UTC) - timedelta(minutes=4)).isoformat()
    body = {
        "track": track["uri"],
        "started_at": started,
        "ms_listened": 185_000,
        "id": "play-0001-abcdef",
    }
    first = await node.client.post("/api/v1/plays", json=body, headers=node.auth("rosa"))
    assert first.status == 201 and (await first.json())["new"] is True
    again = await (
        await node.client.post("/api/v1/plays", json=body, headers=node.auth("rosa"))
    ).json()
    assert again["new"] is False and again["id"] == "play-0001-abcdef"

    from sqlalchemy import func, select

    from node.models import Play

    async with node.ctx.db.read_session() as s:
        assert await s.scalar(select(func.count()).select_from(Play)) == 1

    future = {
        **body,
        "id": "play-0002-abcdef",
        "started_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
    }
    assert (
        await node.client.post("/api/v1/plays", json=future, headers=node.auth("rosa"))
    ).status == 422
    unknown = {**body, "id": "play-0003-abcdef", "track": "http://elsewhere.example/tracks/x"}
    assert (
        await node.client.post("/api/v1/plays", json=unknown, headers=node.auth("rosa"))
    ).status == 404


async def test_likes_and_comments_are_escaped_and_idempotent(node):
    await node.user("jay", "artist")
    await node.user("rosa")
    track = await _published_track(node, "jay")
    for _ in range(2):
        r = await node.client.post(
            "/api/v1/likes", json={"object": track["uri"]}, headers=node.auth("rosa")
        )
        assert r.status == 201
    r = await node.client.post(
        "/api/v1/comments",
        json={"object": track["uri"], "content": "<script>x</script> fire\n\nsecond"},
        headers=node.auth("rosa"),
    )
    assert r.status == 201
    comments = await (
        await node.client.get("/api/v1/comments", params={"object": track["uri"]})
    ).json()
    assert comments[0]["content"] == "<p>&lt;script&gt;x&lt;/script&gt; fire</p><p>second</p>"
    r = await node.client.delete(
        f"/api/v1/comments/{comments[0]['uuid']}", headers=node.auth("jay")
    )
    assert r.status == 403
    r = await node.client.delete(
        "/api/v1/likes", params={"object": track["uri"]}, headers=node.auth("rosa")
    )
    assert r.status == 204
    r = await node.client.post(
        "/api/v1/reports",
        json={"targets": [track["uri"]], "reason": "spam"},
        headers=node.auth("rosa"),
    )
    assert r.status == 201
