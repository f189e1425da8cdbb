"""Attacks on the batch endpoint: only a registered, active device's own key,
over this very body, recently, gets a play counted. Every refusal is a
problem+json and stores nothing."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import time
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from detection.client import DeviceClient, declared
from detection.device_models import DetectionItem
from detection.devices import new_key_pair
from federation.signatures import sign_rfc9421
from node.models import Track


async def _setup(node) -> tuple[DeviceClient, dict, bytes]:
    await node.user("mo", "artist")
    await node.user("ada", "admin")
    venue = await (
        await node.client.post(
            "/api/v1/venues",
            json={"name": "Barbès", "borough": "Brooklyn"},
            headers=node.auth("mo"),
        )
    ).json()
    body = await (
        await node.client.post(
            "/api/v1/devices", json={"venue": venue["uuid"]}, headers=node.auth("mo")
        )
    ).json()
    client = DeviceClient.from_credential(body["credential"])
    async with node.ctx.db.transaction() as s:
        from node.models import Actor

        artist = (await s.scalars(select(Actor).where(Actor.handle == "mo"))).one()
        s.add(
            Track(
                uri=node.ctx.urls.obj("tracks", "hit"),
                artist_id=artist.id,
                title="Hit",
                isrc="USNYC2699999",
                state="ready",
                genres=[],
                media={},
            )
        )
    batch = client.body(
        "attack", [declared(1, datetime.now(UTC) - timedelta(minutes=1), 1000, "USNYC2699999")]
    )
    return client, body["device"], batch


async def _stored(node) -> int:
    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(func.count()).select_from(DetectionItem))


def _cavage(client: DeviceClient, body: bytes, key_pem: str, date: str, digest: str | None = None):
    """A draft-cavage signature made by hand, so the Date and Digest can lie."""
    host = client.batch_url.split("/")[2]
    digest = digest or "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode()
    headers = {
        "Host": host,
        "Date": date,
        "Digest": digest,
        "Content-Type": "application/json",
    }
    signing = "\n".join(
        [
            f"(request-target): post {client.batch_path}",
            f"host: {host}",
            f"date: {date}",
            f"digest: {digest}",
            "content-type: application/json",
        ]
    )
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    sig = base64.b64encode(key.sign(signing.encode())).decode()
    headers["Signature"] = (
        f'keyId="{client.device_url}",algorithm="hs2019",'
        f'headers="(request-target) host date digest content-type",signature="{sig}"'
    )
    return headers


async def _post(node, client, body, headers):
    return await node.client.post(client.batch_path, data=body, headers=headers)


async def test_a_properly_signed_batch_is_accepted_in_both_signature_dialects(node):
    client, _, batch = await _setup(node)
    now = email.utils.formatdate(usegmt=True)

    cavage = await _post(node, client, batch, _cavage(client, batch, client.private_key_pem, now))
    rfc9421 = await _post(
        node,
        client,
        batch,
        sign_rfc9421(
            "POST",
            client.batch_url,
            {"Content-Type": "application/json"},
            batch,
            client.device_url,
            client.private_key_pem,
        ),
    )

    assert cavage.status == 200, await cavage.text()
    assert (await cavage.json())["items"][0]["status"] == "matched"
    assert rfc9421.status == 200, await rfc9421.text()
    assert (await rfc9421.json())["items"][0]["status"] == "duplicate"


async def test_an_unsigned_batch_is_refused(node):
    client, _, batch = await _setup(node)

    r = await _post(node, client, batch, {"Content-Type": "application/json"})

    assert r.status == 401 and r.content_type == "application/problem+json"
    assert await _stored(node) == 0


async def test_a_signature_by_another_key_is_refused(node):
    client, _, batch = await _setup(node)
    thief_key, _ = new_key_pair()
    now = email.utils.formatdate(usegmt=True)

    r = await _post(node, client, batch, _cavage(client, batch, thief_key, now))

    assert r.status == 401
    assert "key" in (await r.json())["detail"]
    assert await _stored(node) == 0


async def test_a_tampered_body_does_not_match_its_digest(node):
    client, _, batch = await _setup(node)
    headers = client.headers(batch)
    tampered = batch.replace(b'"duration_ms":1000', b'"duration_ms":9000')

    r = await _post(node, client, tampered, headers)
    lying_digest = await _post(
        node,
        client,
        tampered,
        _cavage(
            client,
            tampered,
            client.private_key_pem,
            email.utils.formatdate(usegmt=True),
            digest="SHA-256=" + base64.b64encode(hashlib.sha256(batch).digest()).decode(),
        ),
    )

    assert r.status == 401 and "Digest" in (await r.json())["detail"]
    assert lying_digest.status == 401
    assert await _stored(node) == 0


async def test_a_replayed_request_with_an_old_date_is_refused(node):
    client, _, batch = await _setup(node)
    old = email.utils.formatdate(time.time() - 3 * 3600, usegmt=True)
    ahead = email.utils.formatdate(time.time() + 3600, usegmt=True)

    r = await _post(node, client, batch, _cavage(client, batch, client.private_key_pem, old))
    future = await _post(node, client, batch, _cavage(client, batch, client.private_key_pem, ahead))

    assert r.status == 401 and "old" in (await r.json())["detail"]
    assert future.status == 401
    assert await _stored(node) == 0


async def test_an_unknown_device_is_refused(node):
    client, _, batch = await _setup(node)
    ghost = DeviceClient(
        client.device_url[:-12] + "000000000000", client.private_key_pem, client.batch_url
    )
    body = ghost.body("g", [declared(1, datetime.now(UTC), 1000, "USNYC2699999")])

    r = await _post(node, ghost, body, ghost.headers(body))

    assert r.status == 401


async def test_revoked_and_quarantined_devices_are_refused(node):
    client, device, batch = await _setup(node)
    uuid = device["uuid"]

    await node.client.post(f"/api/v1/devices/{uuid}/quarantine", json={}, headers=node.auth("ada"))
    quarantined = await _post(node, client, batch, client.headers(batch))
    await node.client.post(f"/api/v1/devices/{uuid}/revoke", json={}, headers=node.auth("ada"))
    revoked = await _post(node, client, batch, client.headers(batch))

    assert quarantined.status == 403 and "quarantined" in (await quarantined.json())["detail"]
    assert revoked.status == 403 and "revoked" in (await revoked.json())["detail"]
    assert revoked.content_type == "application/problem+json"
    assert await _stored(node) == 0


async def test_oversized_batches_are_refused_before_any_work(node):
    client, _, _ = await _setup(node)
    t = datetime.now(UTC)
    too_many = client.body(
        "big",
        [
            declared(i, t, 1000, "USNYC2699999")
            for i in range(node.settings.detection.max_batch_items + 1)
        ],
    )
    huge = b'{"padding":"' + b"x" * (node.settings.detection.max_batch_bytes + 10) + b'"}'

    r1 = await _post(node, client, too_many, client.headers(too_many))
    r2 = await _post(node, client, huge, client.headers(huge))

    assert r1.status == 413 and r1.content_type == "application/problem+json"
    assert r2.status == 413
    assert await _stored(node) == 0


async def test_a_batch_for_another_device_cannot_be_signed_by_this_one(node):
    client, _, _ = await _setup(node)
    other = DeviceClient(client.device_url, client.private_key_pem, client.batch_url)
    body = other.body("x", [declared(1, datetime.now(UTC), 1000, "USNYC2699999")]).replace(
        client.device_url.encode(), b"https://elsewhere.example/devices/1"
    )

    r = await _post(node, client, body, client.headers(body))

    assert r.status == 422
    assert await _stored(node) == 0


async def test_signed_bodies_that_are_not_strict_json_are_refused_with_a_problem(node):
    """Whatever the device's key signs must still be JSON as RFC 8259 has it,
    and a number too large for a sequence number is that field's error."""
    client, _, batch = await _setup(node)
    seq = b'"seq":1' if b'"seq":1' in batch else b'"seq": 1'
    assert seq in batch
    not_json = [batch.replace(seq, seq[:-1] + b"NaN"), batch[:-5], b"\xff\xfe" + batch]
    huge = batch.replace(seq, seq + b"0" * 30)

    for body in not_json:
        r = await _post(node, client, body, client.headers(body))
        assert r.status == 400, await r.text()
        assert r.content_type == "application/problem+json"
        assert "not valid JSON" in (await r.json())["detail"]
    r = await _post(node, client, huge, client.headers(huge))
    assert r.status == 422
    assert (await r.json())["errors"] == [
        {"field": "items[0].seq", "message": "an integer from 0 to 2^62"}
    ]
    ok = await _post(node, client, batch, client.headers(batch))
    assert ok.status == 200 and ok.content_type == "application/json"
    assert (await ok.json())["items"][0]["status"] == "matched"
    assert await _stored(node) == 1
