"""Federation as people live it, on real nodes over loopback HTTP.

Artists on Brooklyn, fans on Queens (and more nodes where a story needs
them); every message crosses real HTTP with real signatures and the real
delivery worker. Nodes go down, come back, and get killed mid-delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from federation.appkeys import FEDERATION
from federation.models import InboxItem, Instance, OutboxItem
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


async def test_fans_first_contacts_with_a_new_artist_at_the_same_moment(network, api, eventually):
    """Five fans on Queens follow Jay at once, before Queens knows Jay: each
    request fetches Jay's actor and stores it; all of them must succeed."""
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist")
    fans = [f"fan{i}" for i in range(5)]
    for fan in fans:
        await queens.user(fan)
    answers = await asyncio.gather(
        *(follow(api, eventually, queens, fan, brooklyn, "jay") for fan in fans)
    )
    assert [a["state"] for a in answers] == ["accepted"] * 5
    async with queens.ctx.db.read_session() as s:
        jays = (
            await s.scalars(select(Actor).where(Actor.uri == brooklyn.ctx.urls.actor("jay")))
        ).all()
    assert len(jays) == 1


async def test_a_new_remote_actors_first_activities_arrive_at_the_same_moment(
    network, remote, eventually
):
    """Brooklyn has never seen Alice when five of her activities arrive at once:
    each checks her key by fetching her actor; none may be refused for it."""
    (brooklyn,) = await network(1)
    await brooklyn.user("jay", "artist")
    jay = brooklyn.ctx.urls.actor("jay")
    fake = await remote("mastodon")
    alice = fake.add_actor("alice")
    activities = [
        {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{fake.base}/users/alice#likes/{i}",
            "type": "Like",
            "actor": alice.uri,
            "object": jay,
        }
        for i in range(5)
    ]
    answers = await asyncio.gather(
        *(fake.post(brooklyn.base_url + "/inbox", a) for a in activities)
    )
    assert [status for status, _ in answers] == [202] * 5, answers
    assert await count(brooklyn, InboxItem) == 5, answers


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

    async def forgotten():
        return await count(queens, Release, Release.uri == rel["uri"]) == 0

    await eventually(forgotten)
    assert await feed(api, queens, "rosa") == []


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


# ---- nodes that go away ----------------------------------------------------------------


async def deliveries(node, activity_type: str) -> list[Job]:
    """The delivery jobs of a node's activities of one type."""
    async with node.ctx.db.read_session() as s:
        items = {
            i.id
            for i in (
                await s.scalars(select(OutboxItem).where(OutboxItem.type == activity_type))
            ).all()
        }
        jobs = (await s.scalars(select(Job).where(Job.kind == "federation.deliver"))).all()
    return [j for j in jobs if j.payload["item"] in items]


async def outbox_id(node, activity_type: str) -> str:
    async with node.ctx.db.read_session() as s:
        return await s.scalar(
            select(OutboxItem.activity_id).where(OutboxItem.type == activity_type)
        )


async def test_a_node_down_for_a_while_gets_the_release_exactly_once_when_back(
    network, api, eventually, lifecycle
):
    brooklyn, queens = await network(2, **FAST_RETRIES)
    await brooklyn.user("jay", "artist")
    await queens.user("rosa")
    await follow(api, eventually, queens, "rosa", brooklyn, "jay")

    # Queens goes down; Jay publishes meanwhile.
    await lifecycle.stop(queens)
    rel = await publish(api, brooklyn, "jay", "While You Were Out")

    async def retrying():
        (job,) = await deliveries(brooklyn, "Create")
        return job.attempts >= 2 and job.state == "queued" and job.last_error and job

    job = await eventually(retrying)
    assert "connect" in job.last_error.lower() or "refused" in job.last_error.lower(), (
        job.last_error
    )
    async with brooklyn.ctx.db.read_session() as s:
        health = await s.scalar(select(Instance).where(Instance.host == queens.ctx.domain))
    assert health.consecutive_failures >= 2 and health.last_failure_at is not None

    # Queens comes back on the same port, database and keys: the retry lands.
    await lifecycle.start(queens)
    items = await eventually(in_feed(api, queens, "rosa"), timeout=15)
    assert [i["release"]["uri"] for i in items] == [rel["uri"]]

    async def delivered():
        (job,) = await deliveries(brooklyn, "Create")
        return job.state == "done"

    await eventually(delivered)
    activity_id = await outbox_id(brooklyn, "Create")
    assert await count(queens, InboxItem, InboxItem.activity_id == activity_id) == 1
    assert await count(queens, Release) == 1
    async with brooklyn.ctx.db.read_session() as s:
        health = await s.scalar(select(Instance).where(Instance.host == queens.ctx.domain))
    assert health.consecutive_failures == 0 and health.circuit_open_until is None


async def test_a_sender_killed_mid_fan_out_delivers_to_everyone_once_after_restart(
    network, api, eventually, lifecycle, inbox_held
):
    """Brooklyn publishes to six fans on three nodes and is killed while its first
    delivery hangs in flight (Queens' database is busy) and two more wait their
    turn. Restarted over the same data, it delivers the rest and redelivers the
    one cut off; every node processes the release once."""
    (brooklyn,) = await network(
        1, **FAST_RETRIES, **{"jobs.concurrency": 1, "jobs.lock_seconds": 2}
    )
    receivers = await network(3)
    await brooklyn.user("jay", "artist")
    fans = []
    for i, node in enumerate(receivers):
        for name in (f"fan{i}a", f"fan{i}b"):
            await node.user(name)
            fans.append((node, name))
    answers = await asyncio.gather(
        *(follow(api, eventually, node, name, brooklyn, "jay") for node, name in fans)
    )
    assert {f["state"] for f in answers} == {"accepted"}

    async with contextlib.AsyncExitStack() as held:
        for node in receivers:
            await held.enter_async_context(inbox_held(node))
        rel = await publish(api, brooklyn, "jay", "Fan-Out")

        async def first_in_flight():
            jobs = await deliveries(brooklyn, "Create")
            return len(jobs) == 3 and any(j.state == "running" for j in jobs) and jobs

        await eventually(first_in_flight, interval=0.01)
        await lifecycle.kill(brooklyn)
    jobs = await deliveries(brooklyn, "Create")
    assert sorted(j.state for j in jobs) == ["queued", "queued", "running"]

    await lifecycle.start(brooklyn)
    for node, name in fans:
        items = await eventually(in_feed(api, node, name), timeout=15)
        assert [i["release"]["uri"] for i in items] == [rel["uri"]]

    async def all_delivered():
        return all(j.state == "done" for j in await deliveries(brooklyn, "Create"))

    await eventually(all_delivered)
    activity_id = await outbox_id(brooklyn, "Create")
    for node in receivers:
        assert await count(node, InboxItem, InboxItem.activity_id == activity_id) == 1
        assert await count(node, Release) == 1

    # Redelivered once more, by hand: acknowledged, not processed again.
    async with brooklyn.ctx.db.read_session() as s:
        item = await s.scalar(select(OutboxItem).where(OutboxItem.type == "Create"))
        jay = await s.get(Actor, item.actor_id)
    fed = brooklyn.app[FEDERATION]
    status, text = await fed.client.post_activity(
        receivers[0].base_url + "/inbox", item.payload, jay.key_id, jay.private_key_pem
    )
    assert (status, json.loads(text)["status"]) == (202, "duplicate")
    assert await count(receivers[0], InboxItem, InboxItem.activity_id == activity_id) == 1


async def test_410_gone_from_a_personal_inbox_forgets_the_remote_actor(
    network, api, eventually, remote
):
    (brooklyn,) = await network(1)
    await brooklyn.user("jay", "artist")
    jay = brooklyn.ctx.urls.actor("jay")
    # Alice's server has no shared inbox; Bob's has one.
    personal = await remote("mastodon", shared_inbox=False)
    alice = personal.add_actor("alice")
    shared = await remote("mastodon")
    bob = shared.add_actor("bob", key=1)
    for fake, who in ((personal, alice), (shared, bob)):
        status, _ = await fake.post(
            brooklyn.base_url + "/inbox",
            {
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": f"{fake.base}/follows/1",
                "type": "Follow",
                "actor": who.uri,
                "object": jay,
            },
            signer=who,
        )
        assert status == 202
    await eventually(lambda: _both_accepted(personal, shared))

    # Both accounts' servers now answer 410 Gone.
    personal.inbox_status = shared.inbox_status = 410
    await publish(api, brooklyn, "jay", "Nobody Home")

    async def alice_forgotten():
        async with brooklyn.ctx.db.read_session() as s:
            return await s.scalar(select(Actor).where(Actor.uri == alice.uri)) is None

    await eventually(alice_forgotten)
    assert personal.activities("Create") and shared.activities("Create")
    # A shared inbox's 410 says nothing about Bob: he stays, and still follows.
    async with brooklyn.ctx.db.read_session() as s:
        kept = await s.scalar(select(Actor).where(Actor.uri == bob.uri))
    assert kept is not None
    assert await count(brooklyn, Follow) == 1
    assert all(j.state == "done" for j in await deliveries(brooklyn, "Create"))


async def test_410_gone_forgets_a_remote_artist_with_a_profile_too(
    network, api, eventually, remote
):
    (brooklyn,) = await network(1)
    await brooklyn.user("jay", "artist")
    fake = await remote("funkwhale", shared_inbox=False)
    bob = fake.add_actor("bob", genres=["dub"], borough="Queens")  # an artist: he has a profile
    status, _ = await fake.post(
        brooklyn.base_url + "/inbox",
        {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{bob.uri}#follows/1",
            "type": "Follow",
            "actor": bob.uri,
            "object": brooklyn.ctx.urls.actor("jay"),
        },
        signer=bob,
    )
    assert status == 202
    await eventually(lambda: _both_accepted(fake))
    fake.inbox_status = 410
    await publish(api, brooklyn, "jay", "Nobody Home")

    async def bob_forgotten():
        async with brooklyn.ctx.db.read_session() as s:
            return await s.scalar(select(Actor).where(Actor.uri == bob.uri)) is None

    await eventually(bob_forgotten, timeout=3)


async def _both_accepted(*fakes) -> bool:
    return all(f.activities("Accept") for f in fakes)


# ---- instance policy --------------------------------------------------------------


async def test_a_blocked_host_can_neither_post_to_us_nor_receive_from_us(
    network, api, eventually, remote, policy, stored
):
    brooklyn, queens = await network(2)
    await brooklyn.user("jay", "artist")
    await queens.user("rosa")
    await follow(api, eventually, queens, "rosa", brooklyn, "jay")
    fake = await remote("mastodon")
    alice = fake.add_actor("alice")

    # The admin blocks the fake server and Queens.
    await policy(brooklyn, fake.host, "block")
    await policy(brooklyn, queens.ctx.domain, "block")
    before = await stored(brooklyn)
    status, answer = await fake.post(
        brooklyn.base_url + "/inbox",
        {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{fake.base}/follows/1",
            "type": "Follow",
            "actor": alice.uri,
            "object": brooklyn.ctx.urls.actor("jay"),
        },
    )
    assert status == 403, answer
    assert await stored(brooklyn) == before
    assert fake.fetched == []  # not even its key was fetched

    # Jay publishes: nothing is sent to Queens, and the delivery says why.
    await publish(api, brooklyn, "jay", "Members Only")

    async def refused():
        (job,) = await deliveries(brooklyn, "Create")
        return job.state == "dead" and job

    job = await eventually(refused)
    assert "blocked" in job.last_error
    assert await count(queens, InboxItem, InboxItem.type == "Create") == 0
    assert await feed(api, queens, "rosa") == []

    # Nor can Brooklyn's fans reach a blocked host.
    await brooklyn.user("kim")
    status, answer = await api(
        brooklyn, "POST", "/api/v1/follows", "kim", json={"target": f"@alice@{fake.host}"}
    )
    assert status == 404, answer


async def test_an_allowlist_node_federates_only_with_the_hosts_it_allows(
    network, api, eventually, remote, policy, stored
):
    (brooklyn,) = await network(1, **{"federation.policy": "allowlist"})
    await brooklyn.user("jay", "artist")
    friend, stranger, limited = [await remote("mastodon") for _ in range(3)]
    await policy(brooklyn, friend.host, "allow")
    await policy(brooklyn, limited.host, "limit")
    jay = brooklyn.ctx.urls.actor("jay")

    async def follow_from(fake, key: int):
        who = fake.add_actor("alice", key=key)
        return await fake.post(
            brooklyn.base_url + "/inbox",
            {
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": f"{fake.base}/follows/1",
                "type": "Follow",
                "actor": who.uri,
                "object": jay,
            },
        )

    status, answer = await follow_from(stranger, 0)
    assert status == 403, answer
    assert await stored(brooklyn) == (0, 0)

    assert (await follow_from(friend, 1))[0] == 202
    assert (await follow_from(limited, 2))[0] == 202
    await eventually(lambda: _both_accepted(friend))

    # A limited host federates, but its follows wait for Jay's approval.
    async def limited_pending():
        _, body = await api(brooklyn, "GET", "/api/v1/follow-requests", "jay")
        return body

    (pending,) = await eventually(limited_pending)
    assert pending["follower"]["uri"] == limited.actors["alice"].uri
    assert limited.activities("Accept") == []

    # Brooklyn's fans reach only allowed hosts.
    await brooklyn.user("kim")
    status, _ = await api(
        brooklyn, "POST", "/api/v1/follows", "kim", json={"target": f"@alice@{stranger.host}"}
    )
    assert status == 404
    status, body = await api(
        brooklyn, "POST", "/api/v1/follows", "kim", json={"target": f"@alice@{friend.host}"}
    )
    assert status == 201, body
