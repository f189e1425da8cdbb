"""Signed batch uploads: one POST per batch, signed with the device's key.

The signature is draft-cavage `hs2019` with Ed25519 over `(request-target)
host date digest content-type` (federation.signatures.sign_request), keyId
the device's URL. A connection failure, a 5xx or a 429 is worth retrying;
any other refusal (revoked device, bad credential) is not.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from yarl import URL

from federation.signatures import sign_request

from .buffer import Pending
from .config import AgentConfig

TIMEOUT = aiohttp.ClientTimeout(total=60, connect=10)


class Retry(Exception):
    """The node could not be reached or asked us to come back later."""


class Refused(Exception):
    """The node refused the batch for good (e.g. the device is revoked)."""


@dataclass(frozen=True)
class Answer:
    items: list[dict]


def batch_body(config: AgentConfig, items: list[Pending]) -> bytes:
    """The batch as sent: its id is derived from its items, so a retry is the same batch."""
    batch_id = f"b{items[0].seq}-{items[-1].seq}-{len(items)}"
    doc = {
        "batch_id": batch_id,
        "device": config.device_url,
        "sent_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "items": [
            {
                "seq": i.seq,
                "captured_at": i.captured_at,
                "duration_ms": i.duration_ms,
                "fingerprint": i.fingerprint,
            }
            for i in items
        ],
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def signed_headers(config: AgentConfig, url: str, body: bytes) -> dict[str, str]:
    return sign_request(
        "POST",
        url,
        {"Content-Type": "application/json", "Accept": "application/json"},
        body,
        config.device_url,
        config.private_key_pem,
    )


async def send(session: aiohttp.ClientSession, config: AgentConfig, body: bytes) -> Answer:
    url = config.batch_url
    headers = signed_headers(config, url, body)
    headers["X-Request-Id"] = str(uuid.uuid4())
    try:
        async with session.post(URL(url, encoded=True), data=body, headers=headers) as r:
            text = await r.text()
            if r.status == 200:
                return Answer(json.loads(text)["items"])
            detail = _detail(text) or r.reason
            if r.status >= 500 or r.status in (408, 429):
                raise Retry(f"{r.status} {detail}")
            raise Refused(f"{r.status} {detail}")
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise Retry(f"{type(e).__name__}: {e}") from None


def _detail(text: str) -> str:
    try:
        return str(json.loads(text).get("detail", ""))
    except (ValueError, AttributeError):
        return text[:200]
