"""A fan on one node follows an artist on another, sees the release, and the play counts at the origin."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import func, select

from node.models import Follow, Play


async def eventually(check, timeout: float = 10.0, interval: float = 0.1):
    """Poll until `check()` returns something truthy (workers run in the background)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def api(node, method: str, path: str, who: str | None = None, **kw):
    headers = node.auth(who) if who else {}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, node.base_url + path, headers=headers, **kw) as r:
            body = await r.json(content_type=None) if r.status != 204 else None
            return r.status, body


async def test_fan_follows_remote_artist_sees_release_and_play_counts_once(network):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist", borough="Brooklyn")
    await queens.user("rosa")

    status, follow = await api(
        queens, "POST", "/api/v1/follows", "rosa", json={"target": f"@jay@{brooklyn.ctx.domain}"}
    )
    assert status == 201, follow
    assert follow["state"] == "pending"

    async def accepted():
        _, follows = await api(queens, "GET", "/api/v1/follows", "rosa")
        return follows[0]["state"] == "accepted"

    await eventually(accepted)

    # Jay publishes on Brooklyn; it reaches Rosa's feed on Queens.
    _, t = await api(
        brooklyn,
        "POST",
        "/api/v1/tracks",
        "jay",
        json={"title": "Fulton St", "duration_ms": 200_000},
    )
    _, rel = await api(
        brooklyn,
        "POST",
        "/api/v1/releases",
        "jay",
        json={"title": "Kings County", "kind": "ep", "tracks": [t["uuid"]]},
    )
    status, _ = await api(brooklyn, "POST", f"/api/v1/releases/{rel['uuid']}/publish", "jay")
    assert status == 200

    async def in_feed():
        _, feed = await api(queens, "GET", "/api/v1/feed", "rosa")
        return feed["items"]

    items = await eventually(in_feed)
    remote_release = items[0]["release"]
    assert remote_release["title"] == "Kings County" and remote_release["local"] is False
    assert remote_release["uri"] == rel["uri"]
    remote_track_uri = remote_release["tracks"][0]["uri"]
    assert remote_track_uri == t["uri"]

    # Rosa plays it; the retry with the same id counts once, at Brooklyn too.
    started = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    play = {
        "track": remote_track_uri,
        "started_at": started,
        "ms_listened": 190_000,
        "id": "rosa-play-000001",
    }
    for _ in range(3):
        status, body = await api(queens, "POST", "/api/v1/plays", "rosa", json=play)
        assert status == 201, body

    async def counted_at_origin():
        async with brooklyn.ctx.db.read_session() as s:
            return await s.scalar(
                select(func.count()).select_from(Play).where(Play.track_uri == t["uri"])
            )

    assert await eventually(counted_at_origin) == 1
    await asyncio.sleep(0.5)
    assert await counted_at_origin() == 1

    # Unfollow travels too.
    status, _ = await api(queens, "DELETE", f"/api/v1/follows/{follow['id']}", "rosa")
    assert status == 204

    async def gone_at_origin():
        async with brooklyn.ctx.db.read_session() as s:
            return await s.scalar(select(func.count()).select_from(Follow)) == 0

    await eventually(gone_at_origin)


async def test_a_nodes_own_listings_show_only_its_own_catalogue(network):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist")
    await queens.user("rosa")
    await queens.user("ana", "artist")
    status, _ = await api(
        queens, "POST", "/api/v1/follows", "rosa", json={"target": f"@jay@{brooklyn.ctx.domain}"}
    )
    assert status == 201
    _, t = await api(brooklyn, "POST", "/api/v1/tracks", "jay", json={"title": "Crossing"})
    _, rel = await api(
        brooklyn, "POST", "/api/v1/releases", "jay", json={"title": "Over", "tracks": [t["uuid"]]}
    )

    async def accepted():
        _, follows = await api(queens, "GET", "/api/v1/follows", "rosa")
        return follows[0]["state"] == "accepted"

    await eventually(accepted)
    await api(brooklyn, "POST", f"/api/v1/releases/{rel['uuid']}/publish", "jay")

    async def crossed():
        _, feed = await api(queens, "GET", "/api/v1/feed", "rosa")
        return feed["items"]

    await eventually(crossed)
    _, listing = await api(queens, "GET", "/api/v1/releases")
    assert listing["items"] == []
    _, tracks = await api(queens, "GET", "/api/v1/tracks")
    assert tracks["items"] == []
    # ...but the remote artist's own page on Queens shows what Queens knows of them.
    _, theirs = await api(queens, "GET", f"/api/v1/artists/jay@{brooklyn.ctx.domain}/releases")
    assert [r["title"] for r in theirs["items"]] == ["Over"]


async def test_a_report_about_a_remote_track_reaches_its_node_as_a_flag(network):
    from node.models import Report

    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist")
    await queens.user("rosa")
    _, t = await api(brooklyn, "POST", "/api/v1/tracks", "jay", json={"title": "Loud"})
    _, rel = await api(
        brooklyn, "POST", "/api/v1/releases", "jay", json={"title": "Noise", "tracks": [t["uuid"]]}
    )
    await api(brooklyn, "POST", f"/api/v1/releases/{rel['uuid']}/publish", "jay")
    # Queens learns of the track when Rosa plays it, then she reports it.
    started = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    status, _ = await api(
        queens,
        "POST",
        "/api/v1/plays",
        "rosa",
        json={"track": t["uri"], "started_at": started, "ms_listened": 60_000},
    )
    assert status == 201
    status, _ = await api(
        queens,
        "POST",
        "/api/v1/reports",
        "rosa",
        json={"targets": [t["uri"]], "reason": "not music"},
    )
    assert status == 201

    async def flagged():
        async with brooklyn.ctx.db.read_session() as s:
            return (await s.scalars(select(Report))).all()

    reports = await eventually(flagged)
    assert reports[0].origin_host == queens.ctx.domain.lower()
    assert t["uri"] in reports[0].target_uris and reports[0].reason == "not music"
    assert "rosa" not in reports[0].reporter_uri  # the reporter stays private to her node
