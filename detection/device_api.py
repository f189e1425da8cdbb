"""JSON API for devices: register (returns the credential once), list, revoke,
quarantine, release; and the device's own URL, which is its signing keyId."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from node.api import API
from node.api.routing import Call
from node.appkeys import CTX
from node.auth import has_role, require_role
from node.errors import NotFound
from node.models import Venue
from node.validation import F, Schema

from .device_models import Device
from .devices import (
    device_json,
    find_venue,
    get_device,
    register_device,
    require_venue_manager,
    set_state,
)

DeviceIn = Schema(
    "DeviceCreate",
    F("venue", required=True, max_len=512, description="the venue's uuid, URI or exact name"),
    F("name", max_len=100),
)
DeviceListQ = Schema("DeviceListQuery", F("venue", max_len=512))
StateIn = Schema("DeviceStateChange", F("reason", max_len=300))


@API.route(
    "POST",
    "/api/v1/devices",
    name="api.devices_create",
    summary="Register a venue's detection device; returns its credential (once)",
    tag="detection",
    body=DeviceIn,
    role="fan",
    status=201,
)
async def create_device(call: Call) -> dict[str, Any]:
    async with call.ctx.db.transaction() as s:
        venue = await find_venue(s, call.body["venue"])
        account = require_venue_manager(call.account, venue)
        device, cred = await register_device(
            call.ctx, s, venue, name=call.body.get("name", ""), registered_by=account.username
        )
        return {"device": device_json(device, venue), "credential": cred.as_dict()}


@API.route(
    "GET",
    "/api/v1/devices",
    name="api.devices",
    summary="Devices of the venues the caller manages (admins: every device)",
    tag="detection",
    query=DeviceListQ,
    role="fan",
    response="array",
)
async def list_devices(call: Call) -> list[dict[str, Any]]:
    account = require_role(call.account, "fan")
    async with call.ctx.db.read_session() as s:
        stmt = select(Device, Venue).join(Venue, Venue.id == Device.venue_id)
        if call.query.get("venue"):
            venue = await find_venue(s, call.query["venue"])
            stmt = stmt.where(Venue.id == venue.id)
        if not has_role(account, "admin"):
            stmt = stmt.where(Venue.manager_id == account.actor_id)
        rows = (await s.execute(stmt.order_by(Device.id))).all()
    return [device_json(d, v) for d, v in rows]


async def _change(call: Call, state: str, admin_only: bool = False) -> dict[str, Any]:
    async with call.ctx.db.transaction() as s:
        device = await get_device(s, call.path("uuid"))
        venue = await s.get(Venue, device.venue_id)
        if admin_only:
            require_role(call.account, "admin")
        else:
            require_venue_manager(call.account, venue)
        await set_state(device, state, call.body.get("reason", ""))
        return device_json(device, venue)


for _state, _verb, _admin in (
    ("revoked", "revoke", False),
    ("quarantined", "quarantine", True),
    ("active", "release", True),
):

    def _make(state: str, admin_only: bool):
        async def handler(call: Call) -> dict[str, Any]:
            return await _change(call, state, admin_only)

        handler.__name__ = f"device_{state}"
        return handler

    API.route(
        "POST",
        f"/api/v1/devices/{{uuid}}/{_verb}",
        name=f"api.devices_{_verb}",
        summary=f"{_verb.capitalize()} a device"
        + (" (admin)" if _admin else " (admin or the venue's manager)"),
        tag="detection",
        body=StateIn,
        role="fan",
    )(_make(_state, _admin))


async def device_document(request: web.Request) -> web.Response:
    """`/devices/UUID`: the keyId of a device's signatures resolves to its public key."""
    ctx = request.config_dict[CTX]
    async with ctx.db.read_session() as s:
        device = await s.scalar(select(Device).where(Device.uuid == request.match_info["uuid"]))
        venue = await s.get(Venue, device.venue_id) if device is not None else None
    if device is None or venue is None:
        raise NotFound("no such device")
    return web.json_response(
        {
            "id": device.uri,
            "type": "Device",
            "venue": venue.uri,
            "state": device.state,
            "publicKeyPem": device.public_key_pem,
        }
    )
