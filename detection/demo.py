"""The demo's venue-device step: each node's first venue gets a listening
device, and its DJ integration reports tonight's set through signed batches.

Run by `nycmg demo` once the nodes follow and play across each other
(node/demo/across.py calls `venue_devices`). The device is registered as an
admin would (its credential is written to `DATA/devices/UUID.toml`, ready
for `nycmg device run`); the set is three of the node's own tracks and, when
the node knows one, a track from another node (that play is reported to the
track's node as a `Listen`). A device already registered at the venue means
the step ran before: nothing is sent twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import func, select

from node.models import Track, Venue

from .client import DeviceClient, declared
from .device_models import Device
from .devices import register_device, write_credential

SET_LENGTH = 4


async def _one(node: Any, http: aiohttp.ClientSession) -> str | None:
    """Register the device and send the set; returns a note when something failed."""
    ctx = node.ctx
    async with ctx.db.transaction() as s:
        venue = await s.scalar(
            select(Venue).where(Venue.local.is_(True)).order_by(Venue.id).limit(1)
        )
        if venue is None:
            return None
        if await s.scalar(select(func.count()).where(Device.venue_id == venue.id)):
            return None  # done on an earlier run
        device, cred = await register_device(
            ctx, s, venue, name=f"{venue.name} booth", registered_by="demo"
        )
        local = (
            await s.scalars(
                select(Track.uri).where(Track.local.is_(True)).order_by(Track.id).limit(3)
            )
        ).all()
        remote = (
            await s.scalars(
                select(Track.uri).where(Track.local.is_(False)).order_by(Track.id).limit(1)
            )
        ).all()
    write_credential(cred, ctx.settings.data_dir / "devices" / f"{device.uuid}.toml")
    tracks = [*local, *remote][:SET_LENGTH]
    if not tracks:
        return None
    client = DeviceClient.from_credential(cred.as_dict())
    start = datetime.now(UTC) - timedelta(hours=2)
    items = [
        declared(n + 1, start + timedelta(minutes=4 * n), 230_000, uri)
        for n, uri in enumerate(tracks)
    ]
    body = client.body("demo-set", items)
    async with http.post(client.batch_url, data=body, headers=client.headers(body)) as r:
        if r.status != 200:
            return f"{node.spec.name}: the venue device's batch was refused ({r.status})"
    return None


async def venue_devices(network: Any) -> None:
    """One device per node, one DJ set each; problems become banner notes."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        for node in network.nodes:
            note = await _one(node, http)
            if note:
                network.notes.append(note)
