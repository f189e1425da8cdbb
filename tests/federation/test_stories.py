"""Federation as people live it, on real nodes over loopback HTTP.

Artists on Brooklyn, fans on Queens (and more nodes where a story needs
them); every message crosses real HTTP with real signatures and the real
delivery worker. Nodes go down, come back, and get killed mid-delivery.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from federation.models import OutboxItem
from node.models import Actor, Comment, Follow, Job, Like, Release

FAST_RETRIES = {"jobs.backoff_base_seconds": 0.2, "jobs.poll_seconds": 0.05}


async def count(node, model, *where) -> int:
    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(func.count()).select_from(model).where(*where))


async def follow(api, eventually, fan_node, fan: str, artist_node, artist: str) -> dict:
    """`fan` on one node follows `artist` on another and waits for the answer."""
    status, f = await api(
        fan_node,
        "POST",
        "/api/v1/follows",
        fan,
        json={"target": f"@{artist}@{artist_node.ctx.domain}"},
    )
    assert status == 201, f

    async def answered():
        _, mine = await api(fan_node, "GET", "/api/v1/follows", fan)
        state = next(x["state"] for x in mine if x["id"] == f["id"])
        return state if state != "pending" else None

    f["state"] = await eventually(answered)
    return f


async def publish(api, node, artist: str, title: str, **release) -> dict:
    """An artist makes a track and publishes it as a release."""
    _, track = await api(
        node,
        "POST",
        "/api/v1/tracks",
        artist,
        json={"title": f"{title} (A1)", "duration_ms": 200_000},
    )
    status, rel = await api(
        node,
        "POST",
        "/api/v1/releases",
        artist,
        json={"title": title, "kind": "ep", "tracks": [track["uuid"]], **release},
    )
    assert status == 201, rel
    status, rel = await api(node, "POST", f"/api/v1/releases/{rel['uuid']}/publish", artist)
    assert status == 200, rel
    return rel


async def feed(api, node, fan: str) -> list[dict]:
    _, body = await api(node, "GET", "/api/v1/feed", fan)
    return body["items"]


def in_feed(api, node, fan: str, predicate=lambda items: items):
    async def check():
        items = await feed(api, node, fan)
        return predicate(items)

    return check


# ---- follows ----------------------------------------------------------------


async def test_an_artist_who_approves_followers_accepts_one_fan_and_rejects_another(
    network, api, eventually
):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist")
    await queens.user("rosa")
    await queens.user("mo")
    status, _ = await api(
        brooklyn, "PATCH", "/api/v1/artists/jay", "jay", json={"manually_approves_followers": True}
    )
    assert status == 200

    # Given two fans on Queens ask to follow Jay on Brooklyn...
    for fan in ("rosa", "mo"):
        status, f = await api(
            queens, "POST", "/api/v1/follows", fan, json={"target": f"@jay@{brooklyn.ctx.domain}"}
        )
        assert (status, f["state"]) == (201, "pending")

    async def requests():
        _, body = await api(brooklyn, "GET", "/api/v1/follow-requests", "jay")
        return body if len(body) == 2 else None

    pending = {r["follower"]["handle"]: r for r in await eventually(requests)}
    assert set(pending) == {"rosa", "mo"}

    # ...they stay pending on Queens until Jay decides.
    _, mine = await api(queens, "GET", "/api/v1/follows", "rosa")
    assert mine[0]["state"] == "pending"

    status, body = await api(
        brooklyn, "POST", f"/api/v1/follow-requests/{pending['rosa']['id']}/accept", "jay"
    )
    assert (status, body["state"]) == (200, "accepted")
    status, body = await api(
        brooklyn, "POST", f"/api/v1/follow-requests/{pending['mo']['id']}/reject", "jay"
    )
    assert (status, body["state"]) == (200, "rejected")

    async def state_of(fan):
        _, mine = await api(queens, "GET", "/api/v1/follows", fan)
        return mine[0]["state"]

    await eventually(lambda: _equals(state_of("rosa"), "accepted"))
    await eventually(lambda: _equals(state_of("mo"), "rejected"))

    # Only Rosa sees Jay's release.
    rel = await publish(api, brooklyn, "jay", "Approved Only")
    await eventually(in_feed(api, queens, "rosa"))
    assert (await feed(api, queens, "rosa"))[0]["release"]["uri"] == rel["uri"]
    assert await feed(api, queens, "mo") == []


async def _equals(awaitable, expected) -> bool:
    return (await awaitable) == expected


async def test_a_fan_unfollows_and_stops_receiving_releases(network, api, eventually):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist")
    await queens.user("rosa")
    f = await follow(api, eventually, queens, "rosa", brooklyn, "jay")
    assert f["state"] == "accepted"

    status, _ = await api(queens, "DELETE", f"/api/v1/follows/{f['id']}", "rosa")
    assert status == 204

    async def no_followers_at_origin():
        return await count(brooklyn, Follow) == 0

    await eventually(no_followers_at_origin)
    _, followers = await api(
        brooklyn,
        "GET",
        "/actors/jay/followers",
        headers={"Accept": "application/activity+json"},
    )
    assert followers["totalItems"] == 0

    # Jay's next release is addressed to no one on Queens.
    rel = await publish(api, brooklyn, "jay", "After You Left")
    async with brooklyn.ctx.db.read_session() as s:
        deliveries = await s.scalar(
            select(func.count()).select_from(Job).where(Job.kind == "federation.deliver")
        )
    assert await count(brooklyn, OutboxItem, OutboxItem.type == "Create") == 0, rel
    assert deliveries == 1  # the Accept of Rosa's follow, and nothing since
    assert await feed(api, queens, "rosa") == []


# ---- the catalog travelling ----------------------------------------------------------


async def test_a_release_update_and_delete_reach_the_followers_node(network, api, eventually):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist")
    await queens.user("rosa")
    await follow(api, eventually, queens, "rosa", brooklyn, "jay")

    rel = await publish(api, brooklyn, "jay", "Kings County", description="Four tracks.")
    items = await eventually(in_feed(api, queens, "rosa"))
    assert items[0]["release"]["title"] == "Kings County"

    # Jay renames the release: Queens' copy follows.
    status, _ = await api(
        brooklyn,
        "PATCH",
        f"/api/v1/releases/{rel['uuid']}",
        "jay",
        json={"title": "Kings County (Deluxe)", "description": "Now with a remix."},
    )
    assert status == 200

    def renamed(items):
        return items and items[0]["release"]["title"] == "Kings County (Deluxe)" and items

    items = await eventually(in_feed(api, queens, "rosa", renamed))
    assert "remix" in items[0]["release"]["description"]
    assert await count(queens, Release) == 1

    # Jay deletes it: it leaves Rosa's feed and Queens forgets it.
    status, _ = await api(brooklyn, "DELETE", f"/api/v1/releases/{rel['uuid']}", "jay")
    assert status == 204
    await eventually(in_feed(api, queens, "rosa", lambda items: items == []))
    assert await count(queens, Release, Release.uri == rel["uri"]) == 0


async def test_an_event_with_a_place_reaches_the_followers_feed(network, api, eventually):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist")
    await queens.user("rosa")
    await follow(api, eventually, queens, "rosa", brooklyn, "jay")

    status, venue = await api(
        brooklyn,
        "POST",
        "/api/v1/venues",
        "jay",
        json={
            "name": "Union Pool",
            "address": "484 Union Ave",
            "borough": "Brooklyn",
            "lat": 40.7152,
            "lon": -73.9516,
        },
    )
    assert status == 201, venue
    starts = (datetime.now(UTC) + timedelta(days=9)).replace(microsecond=0)
    status, event = await api(
        brooklyn,
        "POST",
        "/api/v1/events",
        "jay",
        json={
            "title": "Kings County release show",
            "starts_at": starts.isoformat(),
            "venue": venue["uuid"],
            "price_amount": 1500,
            "price_currency": "USD",
        },
    )
    assert status == 201, event

    items = await eventually(in_feed(api, queens, "rosa"))
    got = items[0]
    assert got["kind"] == "event"
    assert got["event"]["uri"] == event["uri"] and got["event"]["local"] is False
    assert got["event"]["starts_at"] == starts.isoformat().replace("+00:00", "Z")
    place = got["event"]["venue"]
    assert place["name"] == "Union Pool" and place["borough"] == "Brooklyn"
    assert (place["lat"], place["lon"]) == (40.7152, -73.9516)
    assert got["event"]["price"] == {"amount": 1500, "currency": "USD"}


# ---- reactions -------------------------------------------------------------------


async def test_a_remote_fans_like_and_comment_arrive_at_the_artists_node(network, api, eventually):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist")
    await queens.user("rosa")
    await follow(api, eventually, queens, "rosa", brooklyn, "jay")
    rel = await publish(api, brooklyn, "jay", "Kings County")
    items = await eventually(in_feed(api, queens, "rosa"))
    track_uri = items[0]["release"]["tracks"][0]["uri"]

    status, _ = await api(queens, "POST", "/api/v1/likes", "rosa", json={"object": rel["uri"]})
    assert status == 201
    status, _ = await api(
        queens,
        "POST",
        "/api/v1/comments",
        "rosa",
        json={"object": track_uri, "content": "That bassline <3\n\nSee you at the show"},
    )
    assert status == 201

    async def liked_at_origin():
        return await count(brooklyn, Like, Like.object_uri == rel["uri"])

    assert await eventually(liked_at_origin) == 1

    async def comments_at_origin():
        _, body = await api(brooklyn, "GET", "/api/v1/comments", params={"object": track_uri})
        return body

    (comment,) = await eventually(comments_at_origin)
    assert comment["local"] is False
    assert comment["author"]["handle"] == "rosa"
    assert comment["content"] == "<p>That bassline &lt;3</p><p>See you at the show</p>"

    # Rosa takes the like back; it is gone at the origin too.
    status, _ = await api(queens, "DELETE", "/api/v1/likes", "rosa", params={"object": rel["uri"]})
    assert status == 204
    await eventually(lambda: _equals(liked_at_origin(), 0))
    async with brooklyn.ctx.db.read_session() as s:
        rosa = await s.scalar(select(Actor).where(Actor.handle == "rosa"))
    assert rosa is not None and rosa.local is False
    assert await count(brooklyn, Comment) == 1
