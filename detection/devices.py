"""Venue devices: registration (key pair + credential file), revoke, quarantine, release.

The node keeps only the device's public key. The private key is written
once, into the credential file the venue installs on the device; the node
cannot hand it out again (a lost credential means a new registration).
The device signs every batch with that key; its keyId is the device's URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.auth import has_role, require_role
from node.context import NodeContext
from node.errors import Conflict, Forbidden, NotFound, ValidationFailed
from node.models import Account, Play, Venue, utcnow

from .device_models import DEVICE_STATES, Device, PlayHold


@dataclass(frozen=True)
class Credential:
    """What a device needs to talk to its node; `toml()` is the credential file."""

    node_url: str
    device_url: str
    private_key_pem: str
    venue: str
    venue_name: str
    name: str

    def as_dict(self) -> dict[str, str]:
        return {
            "node_url": self.node_url,
            "device_url": self.device_url,
            "batch_url": self.node_url + "/api/v1/detection/batches",
            "venue": self.venue,
            "venue_name": self.venue_name,
            "name": self.name,
            "private_key_pem": self.private_key_pem,
        }

    def toml(self) -> str:
        return "# nycmg device credential: keep it secret (it signs this device's uploads)\n" + (
            tomli_w.dumps({"device": self.as_dict()})
        )


def new_key_pair() -> tuple[str, str]:
    """(private PEM, public PEM) of a fresh Ed25519 key."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def can_manage_venue(account: Account | None, venue: Venue) -> bool:
    """Admins manage every venue's devices; a venue's manager manages its own."""
    return has_role(account, "admin") or (
        account is not None and not account.disabled and account.actor_id == venue.manager_id
    )


async def find_venue(session: AsyncSession, ref: str) -> Venue:
    """A local venue by uuid, URI or exact name."""
    ref = ref.strip()
    venue = await session.scalar(
        select(Venue).where((Venue.uuid == ref) | (Venue.uri == ref) | (Venue.name == ref))
    )
    if venue is None or not venue.local:
        raise NotFound(f"no local venue {ref!r}")
    return venue


async def register_device(
    ctx: NodeContext,
    session: AsyncSession,
    venue: Venue,
    *,
    name: str = "",
    registered_by: str = "",
) -> tuple[Device, Credential]:
    """Create a device for `venue` with a new key pair; returns its credential."""
    private, public = new_key_pair()
    count = await session.scalar(select(func.count()).where(Device.venue_id == venue.id))
    device = Device(
        uri="",
        venue_id=venue.id,
        name=(name or f"{venue.name} device {count + 1}")[:100],
        public_key_pem=public,
        state="active",
        registered_by=registered_by[:64],
    )
    session.add(device)
    await session.flush()
    device.uri = device_url(ctx, device.uuid)
    await session.flush()
    return device, Credential(
        node_url=ctx.settings.base_url,
        device_url=device.uri,
        private_key_pem=private,
        venue=venue.uri,
        venue_name=venue.name,
        name=device.name,
    )


def device_url(ctx: NodeContext, uuid: str) -> str:
    return f"{ctx.settings.base_url}/devices/{uuid}"


async def get_device(session: AsyncSession, uuid: str) -> Device:
    device = await session.scalar(select(Device).where(Device.uuid == uuid))
    if device is None:
        raise NotFound("no such device")
    return device


async def set_state(device: Device, state: str, reason: str = "") -> Device:
    """Move a device between active, quarantined and revoked. Revoked is final."""
    if state not in DEVICE_STATES:
        raise ValidationFailed([{"field": "state", "message": "unknown device state"}])
    if device.state == "revoked" and state != "revoked":
        raise Conflict("a revoked device stays revoked; register a new one")
    device.state = state
    device.state_reason = reason[:300]
    device.state_changed_at = utcnow()
    return device


def write_credential(cred: Credential, path: Path) -> Path:
    """Write the credential file readable by its owner only (0600), never wider."""
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(cred.toml())
    path.chmod(0o600)
    return path


def require_venue_manager(account: Account | None, venue: Venue) -> Account:
    account = require_role(account, "fan")
    if not can_manage_venue(account, venue):
        raise Forbidden("only an admin or the venue's manager manages its devices")
    return account


def device_json(device: Device, venue: Venue | None = None) -> dict[str, Any]:
    return {
        "id": device.uri,
        "uuid": device.uuid,
        "name": device.name,
        "venue": venue.uri if venue is not None else None,
        "state": device.state,
        "state_reason": device.state_reason,
        "last_seen_at": _iso(device.last_seen_at),
        "reputation": device.reputation,
        "items": device.items_total,
        "matched": device.items_matched,
        "created_at": _iso(device.created_at),
    }


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


async def device_play_counts(session: AsyncSession, device_ids: list[int]) -> dict[int, int]:
    if not device_ids:
        return {}
    rows = await session.execute(
        select(Play.device_id, func.count())
        .where(Play.device_id.in_(device_ids), Play.source.in_(("venue", "dj")))
        .group_by(Play.device_id)
    )
    return {d: n for d, n in rows.all()}


async def open_holds(session: AsyncSession, device_ids: list[int]) -> dict[int, int]:
    if not device_ids:
        return {}
    rows = await session.execute(
        select(PlayHold.device_id, func.count(func.distinct(PlayHold.play_id)))
        .where(PlayHold.device_id.in_(device_ids), PlayHold.released_at.is_(None))
        .group_by(PlayHold.device_id)
    )
    return {d: n for d, n in rows.all()}
