"""The inbox under a burst: many activities at once, from hosts whose standing
changes, with keys that rotate (federation/intake.py, federation/keys.py).

The inbox stores concurrent requests together (group commit) and keeps what
it learned about keys and hosts in memory. None of that may change what a
sender sees: each activity is stored once and answered after it is stored,
a block or an unblock takes effect on the next request, and a rotated key
is picked up on first use.
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select

from federation.appkeys import FEDERATION
from federation.models import InboxItem, Instance

AS = "https://www.w3.org/ns/activitystreams"


def like(fake, node, actor: str = "alice") -> dict:
    """A Like of something each time new, so the processing of one never meets
    another's row (this is about storing; tests/federation covers the handlers)."""
    return {
        "@context": AS,
        "id": f"{fake.base}/likes/{uuid.uuid4()}",
        "type": "Like",
        "actor": fake.actors[actor].uri,
        "object": node.ctx.urls.obj("tracks", str(uuid.uuid4())),
    }


async def received_count(node, host: str) -> int:
    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(Instance.received).where(Instance.host == host))


async def test_a_burst_with_redeliveries_is_stored_once_per_activity_and_all_processed(
    network, remote, stored, eventually
):
    # Given our node and a remote server with two fans we have never heard of
    (node,) = await network(1)
    await node.user("jay", "artist")
    fake = await remote("mastodon")
    fake.add_actor("alice")
    fake.add_actor("bob")
    likes = [like(fake, node, "alice" if i % 2 else "bob") for i in range(30)]

    # When they all arrive at once, ten of them twice
    sends = [
        fake.post(node.ctx.urls.base + "/inbox", a, signer=a["actor"].rsplit("/", 1)[1])
        for a in likes + likes[:10]
    ]
    answers = await asyncio.gather(*sends)

    # Then everyone hears 202; each activity is accepted once, its repeat is a duplicate
    assert {status for status, _ in answers} == {202}
    outcomes = [body["status"] for _, body in answers]
    assert outcomes.count("accepted") == 30 and outcomes.count("duplicate") == 10
    for a in likes[:10]:
        mine = [
            body["status"]
            for (_, body), sent in zip(answers, likes + likes[:10], strict=True)
            if sent is a
        ]
        assert sorted(mine) == ["accepted", "duplicate"]
    # and exactly one item and one job each, counted once on the host
    assert await stored(node) == (30, 30)
    assert await received_count(node, fake.host) == 30
    assert node.app[FEDERATION].intake.rows == 30

    # and the worker processes every one of them
    async def all_processed():
        async with node.ctx.db.read_session() as s:
            waiting = await s.scalar(
                select(func.count()).select_from(InboxItem).where(InboxItem.state == "received")
            )
        return waiting == 0

    await eventually(all_processed)


async def test_a_block_and_an_unblock_take_effect_on_the_next_activity(
    network, remote, stored, policy
):
    # Given a host whose first activity was accepted (the inbox now remembers it may post)
    (node,) = await network(1)
    await node.user("jay", "artist")
    fake = await remote("mastodon")
    fake.add_actor("alice")
    inbox = node.ctx.urls.base + "/inbox"
    status, body = await fake.post(inbox, like(fake, node))
    assert (status, body["status"]) == (202, "accepted")

    # When the admin blocks it, its next activity is refused and nothing is kept
    await policy(node, fake.host, "block")
    status, _ = await fake.post(inbox, like(fake, node))
    assert status == 403
    assert await stored(node) == (1, 1)
    assert await received_count(node, fake.host) == 1

    # And when the admin lifts the block, the next one is accepted at once
    await policy(node, fake.host, "default")
    status, body = await fake.post(inbox, like(fake, node))
    assert (status, body["status"]) == (202, "accepted")
    assert await stored(node) == (2, 2)


async def test_a_rotated_key_is_fetched_again_on_first_use(network, remote, stored):
    # Given a fan whose key our node has fetched and keeps in memory
    (node,) = await network(1)
    await node.user("jay", "artist")
    fake = await remote("mastodon")
    alice = fake.add_actor("alice", key=0)
    inbox = node.ctx.urls.base + "/inbox"
    assert (await fake.post(inbox, like(fake, node)))[0] == 202
    fetches = fake.fetched.count("/users/alice")

    # When her server rotates her key and she signs with the new one
    rotated = fake.add_actor("alice", key=1)
    assert rotated.public_pem != alice.public_pem

    # Then the remembered key fails, the actor is fetched once more, and it is accepted
    status, body = await fake.post(inbox, like(fake, node))
    assert (status, body["status"]) == (202, "accepted")
    assert fake.fetched.count("/users/alice") == fetches + 1
    # and from then on the new key is remembered: no further fetch
    assert (await fake.post(inbox, like(fake, node)))[0] == 202
    assert fake.fetched.count("/users/alice") == fetches + 1

    # And the old key no longer works
    status, _ = await fake.post(inbox, like(fake, node), signer=alice)
    assert status == 401
    assert await stored(node) == (3, 3)
