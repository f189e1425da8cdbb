"""Someone on the network tries to slip an activity past our inbox.

Every story: a fake remote server (keys we control, on loopback) sends a
Follow for Jay, an artist on our node, in some forged or broken way. Each is
refused with the right status and NOTHING is kept: no inbox item, no job, no
follow. The inbox's order of checks (federation/inbox.py): size and type,
a signature present and readable (400 when not), instance policy, the
signature valid (401), then the activity consistent with its signer (401).

Replay protection, decided here: a signed request is only good inside the
Date window (max_clock_skew_seconds, 1 h ahead / 65 min back), and within it
an activity is processed once per id (inbox_items.activity_id is unique). So
the same request replayed is acknowledged (202, "duplicate") and changes
nothing; a replay after the window is 401; and a captured signature cannot
carry a new id, because the digest covers the body.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import func, select

from federation.signatures import sign_request
from node.models import Follow

AS = "https://www.w3.org/ns/activitystreams"
ACCEPT = "application/activity+json"


@pytest.fixture
async def scene(network, remote):
    """Our node with the artist Jay, and a fake Mastodon server with Alice and Bob."""
    (node,) = await network(1)
    await node.user("jay", "artist")
    fake = await remote("mastodon")
    fake.add_actor("alice")
    fake.add_actor("bob")
    return node, fake


def follow_of(fake, node, actor: str = "alice", *, activity_host: str | None = None) -> dict:
    base = f"http://{activity_host}" if activity_host else fake.base
    return {
        "@context": AS,
        "id": f"{base}/{uuid.uuid4()}",
        "type": "Follow",
        "actor": fake.actors[actor].uri,
        "object": node.ctx.urls.actor("jay"),
    }


async def follows(node) -> int:
    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(func.count()).select_from(Follow))


async def refused(node, status: int, answer, expected: int, stored) -> None:
    assert status == expected, answer
    assert await stored(node) == (0, 0)
    assert await follows(node) == 0


async def test_an_honest_follow_is_accepted_for_comparison(scene, stored, eventually):
    node, fake = scene
    status, answer = await fake.post(node.base_url + "/inbox", follow_of(fake, node))
    assert (status, answer["status"]) == (202, "accepted")
    assert await stored(node) == (1, 1)
    assert await eventually(lambda: follows(node))


async def test_an_honest_large_activity_sent_in_chunks_is_read_whole(scene, stored):
    """For comparison with the oversized one below: a 300 kB activity in 64 kB chunks."""
    node, fake = scene
    body = json.dumps(follow_of(fake, node) | {"content": "x" * 300_000}).encode()
    alice = fake.actors["alice"]
    headers = sign_request(
        "POST", node.base_url + "/inbox", {}, body, alice.key_id, alice.private_pem
    )

    async def chunks():
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    async with aiohttp.ClientSession() as http:
        async with http.post(
            node.base_url + "/inbox", data=chunks(), headers=headers | {"Accept": ACCEPT}
        ) as r:
            assert r.status == 202, await r.text()
    assert await stored(node) == (1, 1)


async def test_a_tampered_body_does_not_match_its_digest(scene, stored):
    node, fake = scene
    signed = follow_of(fake, node)
    forged = dict(signed, object=node.ctx.urls.actor("someone-else"))
    status, answer = await fake.post(
        node.base_url + "/inbox", signed, body=json.dumps(forged).encode()
    )
    await refused(node, status, answer, 401, stored)
    assert "Digest" in answer["detail"]


async def test_a_signed_header_changed_after_signing(scene, stored):
    node, fake = scene
    later = (datetime.now(UTC) + timedelta(seconds=3)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    status, answer = await fake.post(
        node.base_url + "/inbox", follow_of(fake, node), headers={"Date": later}
    )
    await refused(node, status, answer, 401, stored)


@pytest.mark.parametrize(
    "skew, why", [(-timedelta(hours=2), "too old"), (timedelta(hours=2), "future")]
)
async def test_a_date_two_hours_off_is_refused(scene, stored, skew, why):
    node, fake = scene
    status, answer = await fake.post(
        node.base_url + "/inbox", follow_of(fake, node), date=datetime.now(UTC) + skew
    )
    await refused(node, status, answer, 401, stored)
    assert why in answer["detail"]


async def test_a_key_from_another_host_than_the_actor(scene, remote, stored):
    node, fake = scene
    elsewhere = await remote("mastodon")
    mallory = elsewhere.add_actor("mallory", key=5)
    # Mallory signs, on her own server, a Follow that claims to be Alice's.
    status, answer = await fake.post(
        node.base_url + "/inbox", follow_of(fake, node), signer=mallory
    )
    await refused(node, status, answer, 401, stored)


async def test_an_actor_that_is_not_the_keys_owner(scene, stored):
    node, fake = scene
    # Bob and Alice share a server; Bob signs a Follow in Alice's name.
    status, answer = await fake.post(node.base_url + "/inbox", follow_of(fake, node), signer="bob")
    await refused(node, status, answer, 401, stored)
    assert "does not belong" in answer["detail"]


async def test_an_activity_id_on_another_host_cannot_preempt_someone_elses_id(
    scene, network, stored
):
    """Ids are deduplicated, so whoever may mint an id on a host could block that
    host's real activity: an activity's id must be on its actor's host."""
    node, fake = scene
    (other,) = await network(1)
    activity = follow_of(fake, node, activity_host=other.ctx.domain)
    status, answer = await fake.post(node.base_url + "/inbox", activity)
    await refused(node, status, answer, 401, stored)


async def test_a_replayed_request_is_acknowledged_but_processed_once(scene, stored, eventually):
    node, fake = scene
    activity = follow_of(fake, node)
    # The attacker captured one signed request and sends the very same bytes again.
    body = json.dumps(activity).encode()
    alice = fake.actors["alice"]
    headers = sign_request(
        "POST", node.base_url + "/inbox", {}, body, alice.key_id, alice.private_pem
    )
    headers["Accept"] = ACCEPT
    answers = []
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(node.base_url + "/inbox", data=body, headers=headers) as r:
                answers.append((r.status, (await r.json())["status"]))
    assert answers == [(202, "accepted"), (202, "duplicate")]
    assert await stored(node) == (1, 1)
    assert await eventually(lambda: follows(node)) == 1


async def test_an_oversized_body_is_refused_before_it_is_read(scene, stored):
    node, fake = scene
    limit = node.settings.federation.max_body_bytes
    activity = follow_of(fake, node) | {"content": "x" * (limit + 1)}
    status, answer = await fake.post(node.base_url + "/inbox", activity)
    await refused(node, status, answer, 413, stored)


async def test_an_oversized_chunked_body_is_cut_off(scene, stored):
    """No Content-Length to refuse up front: the read stops at the limit."""
    node, fake = scene
    limit = node.settings.federation.max_body_bytes
    body = json.dumps(follow_of(fake, node) | {"content": "x" * (limit + 1)}).encode()
    alice = fake.actors["alice"]
    headers = sign_request(
        "POST", node.base_url + "/inbox", {}, body, alice.key_id, alice.private_pem
    )

    async def chunks():
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    async with aiohttp.ClientSession() as http:
        async with http.post(
            node.base_url + "/inbox",
            data=chunks(),
            headers=headers | {"Accept": ACCEPT},
        ) as r:
            status, answer = r.status, await r.json()
    await refused(node, status, answer, 413, stored)


async def test_a_key_on_a_private_address_is_never_fetched(network, remote, stored):
    """A production node (no private addresses) is handed a keyId on loopback:
    it must not fetch it (SSRF), so the key is unknown: 401."""
    (node,) = await network(1, **{"federation.allow_private_addresses": False})
    await node.user("jay", "artist")
    fake = await remote("mastodon")
    fake.add_actor("alice")
    status, answer = await fake.post(node.base_url + "/inbox", follow_of(fake, node))
    await refused(node, status, answer, 401, stored)
    assert fake.fetched == []


async def test_a_missing_signature(scene, stored):
    node, fake = scene
    status, answer = await fake.post(node.base_url + "/inbox", follow_of(fake, node), signer=None)
    await refused(node, status, answer, 401, stored)


@pytest.mark.parametrize(
    "header",
    [
        "this is not a signature",
        'keyId="{key}",algorithm="rsa-sha256",headers="(request-target) host date digest",'
        'signature="%%% not base64 %%%"',
        'keyId="{key}",algorithm="rsa-sha256",signature="c2ln"',
    ],
    ids=["garbage", "signature-not-base64", "covers-nothing-required"],
)
async def test_a_malformed_signature_header(scene, stored, header):
    node, fake = scene
    key = fake.actors["alice"].key_id
    status, answer = await fake.post(
        node.base_url + "/inbox",
        follow_of(fake, node),
        headers={"Signature": header.replace("{key}", key)},
    )
    await refused(node, status, answer, 400, stored)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
async def test_a_wrong_content_type(scene, stored, content_type):
    node, fake = scene
    status, answer = await fake.post(
        node.base_url + "/inbox", follow_of(fake, node), headers={"Content-Type": content_type}
    )
    await refused(node, status, answer, 415, stored)
