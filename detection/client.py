"""A device's side of the batch protocol, for DJ integrations, tests and the
benchmark: build a batch, sign it with the device's key, send it.

The agent (detection.agent) uses the same signing; this module adds only
what a caller needs to send declared tracks or ready-made fingerprints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from federation.signatures import sign_request


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class DeviceClient:
    """Signs batches as one device (its credential: device_url, private key, node URL)."""

    device_url: str
    private_key_pem: str
    batch_url: str

    @classmethod
    def from_credential(cls, cred: Mapping[str, Any]) -> DeviceClient:
        return cls(
            cred["device_url"],
            cred["private_key_pem"],
            cred.get("batch_url") or cred["node_url"].rstrip("/") + "/api/v1/detection/batches",
        )

    @property
    def batch_path(self) -> str:
        return urlsplit(self.batch_url).path

    def body(self, batch_id: str, items: list[dict[str, Any]]) -> bytes:
        doc = {"batch_id": batch_id, "device": self.device_url, "sent_at": iso(datetime.now(UTC))}
        doc["items"] = items
        return json.dumps(doc, separators=(",", ":")).encode()

    def headers(self, body: bytes) -> dict[str, str]:
        return sign_request(
            "POST",
            self.batch_url,
            {"Content-Type": "application/json", "Accept": "application/json"},
            body,
            self.device_url,
            self.private_key_pem,
        )


def declared(seq: int, captured_at: datetime, duration_ms: int, track: str) -> dict[str, Any]:
    """One declared item: a DJ integration says which track played, when, how long."""
    ref = {"isrc": track} if "://" not in track else {"track": track}
    return {
        "seq": seq,
        "captured_at": iso(captured_at),
        "duration_ms": duration_ms,
        "declared": ref,
    }


def window(seq: int, captured_at: datetime, duration_ms: int, fingerprint: str) -> dict[str, Any]:
    """One captured window's item (an encoded fingerprint)."""
    return {
        "seq": seq,
        "captured_at": iso(captured_at),
        "duration_ms": duration_ms,
        "fingerprint": fingerprint,
    }
