"""Devices: venues' detection devices and the venue plays the fraud rules held back.

Curators see the devices (state, last seen, reputation, match rates, plays)
and the held plays with their reasons; admins register devices, revoke,
quarantine and release them, and release held plays. Every action writes
its audit entry in the same transaction.

A device's private key is shown once: registering from the console puts
the credential in a one-time slot (in this process, ten minutes) and the
device's page offers it a single time; the JSON twin returns it directly.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from sqlalchemy import func, select

from detection import fraud
from detection.device_models import Device, PlayHold
from detection.devices import (
    device_json,
    device_play_counts,
    find_venue,
    open_holds,
    register_device,
    set_state,
)
from node.errors import NotFound
from node.models import Play, Track, Venue
from node.validation import F, Schema, iso

from .audit import record, register_audit_action
from .console import CONSOLE, Done, Section, View

CONSOLE.section(Section("devices", "Devices", "admin.devices", role="curator", order=45))

for _name, _label in (
    ("device.register", "Registered a device"),
    ("device.revoke", "Revoked a device"),
    ("device.quarantine", "Quarantined a device"),
    ("device.release", "Released a device"),
    ("play.release", "Released a held play"),
):
    register_audit_action(_name, _label)

DEVICE = "/devices/{id:\\d+}"
CREDENTIAL_TTL = 600
_ONE_TIME = "admin.devices.credentials"

RegisterIn = Schema(
    "ConsoleRegisterDevice",
    F("venue", required=True, max_len=512, description="the venue's uuid, URI or exact name"),
    F("name", max_len=100),
)
ReasonIn = Schema("ConsoleDeviceReason", F("reason", max_len=300))


def _target(device: Device) -> str:
    return f"device:{device.uuid}"


async def _held_plays(session, *, device_id: int | None = None, limit: int = 50) -> list[dict]:
    stmt = (
        select(PlayHold, Play, Track.title, Venue.name, Device.name)
        .join(Play, Play.id == PlayHold.play_id)
        .outerjoin(Track, Track.id == Play.track_id)
        .outerjoin(Venue, Venue.id == Play.venue_id)
        .join(Device, Device.id == PlayHold.device_id)
        .where(PlayHold.released_at.is_(None))
        .order_by(PlayHold.created_at.desc(), PlayHold.id.desc())
        .limit(limit)
    )
    if device_id is not None:
        stmt = stmt.where(PlayHold.device_id == device_id)
    out = []
    for hold, play, title, venue, device in (await session.execute(stmt)).all():
        out.append(
            {
                "hold": hold.id,
                "play": play.id,
                "play_uri": play.uri,
                "track": play.track_uri,
                "title": title or play.track_uri,
                "venue": venue,
                "device": device,
                "device_id": hold.device_id,
                "started_at": iso(play.started_at),
                "ms_listened": play.ms_listened,
                "rule": hold.rule,
                "reason": hold.reason,
                "held_at": iso(hold.created_at),
            }
        )
    return out


@CONSOLE.page(
    "/devices", name="admin.devices", template="devices.html", role="curator", section="devices"
)
async def devices(view: View) -> dict[str, Any]:
    """Every device with its state and health, the held plays, and the register form."""
    async with view.ctx.db.read_session() as s:
        rows = (
            await s.execute(
                select(Device, Venue).join(Venue, Venue.id == Device.venue_id).order_by(Device.id)
            )
        ).all()
        ids = [d.id for d, _ in rows]
        plays = await device_play_counts(s, ids)
        holds = await open_holds(s, ids)
        held = await _held_plays(s)
        venues = (
            await s.execute(
                select(Venue.uuid, Venue.name).where(Venue.local.is_(True)).order_by(Venue.name)
            )
        ).all()
    listed = []
    for d, v in rows:
        item = device_json(d, v) | {
            "id": d.id,
            "uri": d.uri,
            "venue_name": v.name,
            "plays": plays.get(d.id, 0),
            "held": holds.get(d.id, 0),
        }
        listed.append(item)
    return {
        "devices": listed,
        "held": held,
        "venues": [{"uuid": u, "name": n} for u, n in venues],
    }


@CONSOLE.page(
    DEVICE, name="admin.device", template="device.html", role="curator", section="devices"
)
async def device_detail(view: View) -> dict[str, Any]:
    """One device: facts, match-rate history, its recent plays (held ones with why)."""
    async with view.ctx.db.read_session() as s:
        device = await s.get(Device, int(view.arg("id")))
        if device is None:
            raise NotFound("no such device")
        venue = await s.get(Venue, device.venue_id)
        recent = (
            await s.execute(
                select(Play, Track.title)
                .outerjoin(Track, Track.id == Play.track_id)
                .where(Play.device_id == device.id)
                .order_by(Play.started_at.desc())
                .limit(50)
            )
        ).all()
        reasons: dict[int, str] = {}
        if recent:
            for play_id, reason in (
                await s.execute(
                    select(PlayHold.play_id, PlayHold.reason).where(
                        PlayHold.play_id.in_([p.id for p, _ in recent]),
                        PlayHold.released_at.is_(None),
                    )
                )
            ).all():
                reasons[play_id] = reasons.get(play_id, "") + ("; " if play_id in reasons else "")
                reasons[play_id] += reason
        total = await s.scalar(select(func.count()).where(Play.device_id == device.id))
    history = [
        h | {"rate": round(h["matched"] / h["items"], 3) if h.get("items") else None}
        for h in reversed(device.history or [])
    ]
    out: dict[str, Any] = {
        "device": device_json(device, venue)
        | {"id": device.id, "uri": device.uri, "venue_name": venue.name if venue else ""},
        "history": history,
        "plays_total": total,
        "plays": [
            {
                "play": p.id,
                "uri": p.uri,
                "title": title or p.track_uri,
                "track": p.track_uri,
                "source": p.source,
                "started_at": iso(p.started_at),
                "ms_listened": p.ms_listened,
                "held": reasons.get(p.id),
            }
            for p, title in recent
        ],
    }
    token = view.query.get("credential")
    if token and not view.json:
        out["credential"] = _take_credential(view, token, device.uuid)
    return out


@CONSOLE.action(
    "/devices", name="admin.devices.register", back="admin.devices", role="admin", body=RegisterIn
)
async def register(view: View) -> Done:
    async with view.ctx.db.transaction() as s:
        venue = await find_venue(s, view.body["venue"])
        device, cred = await register_device(
            view.ctx,
            s,
            venue,
            name=view.body.get("name", ""),
            registered_by=view.account.username,
        )
        await record(s, view, "device.register", _target(device), {"after": {"venue": venue.name}})
    token = _keep_credential(view, device.uuid, cred.toml())
    return Done(
        {"device": device_json(device, venue), "credential": cred.as_dict()},
        view.url("admin.device", {"credential": token}, id=str(device.id)),
        f"Registered {device.name}. Save its credential now: it is shown once.",
        status=201,
    )


async def _change(view: View, state: str, action: str) -> Done:
    reason = view.body.get("reason", "")
    async with view.ctx.db.transaction() as s:
        device = await s.get(Device, int(view.arg("id")))
        if device is None:
            raise NotFound("no such device")
        before = device.state
        await set_state(device, state, reason)
        details: dict[str, Any] = {"before": {"state": before}, "after": {"state": state}}
        if reason:
            details["reason"] = reason
        await record(s, view, action, _target(device), details)
        venue = await s.get(Venue, device.venue_id)
        data = {"device": device_json(device, venue)}
    return Done(data, view.url("admin.device", id=str(device.id)), f"{device.name} is {state}.")


@CONSOLE.action(DEVICE + "/revoke", name="admin.device.revoke", back="admin.device", body=ReasonIn)
async def revoke(view: View) -> Done:
    return await _change(view, "revoked", "device.revoke")


@CONSOLE.action(
    DEVICE + "/quarantine", name="admin.device.quarantine", back="admin.device", body=ReasonIn
)
async def quarantine(view: View) -> Done:
    return await _change(view, "quarantined", "device.quarantine")


@CONSOLE.action(
    DEVICE + "/release", name="admin.device.release", back="admin.device", body=ReasonIn
)
async def release(view: View) -> Done:
    return await _change(view, "active", "device.release")


@CONSOLE.action(
    "/held-plays/{id:\\d+}/release",
    name="admin.held_play.release",
    back="admin.devices",
    body=ReasonIn,
)
async def release_play(view: View) -> Done:
    """Let a held venue play count again (every open hold on it is released)."""
    play_id = int(view.arg("id"))
    async with view.ctx.db.transaction() as s:
        play = await s.get(Play, play_id)
        if play is None:
            raise NotFound("no such play")
        n = await fraud.release(s, play_id, view.account.username)
        details: dict[str, Any] = {"after": {"released_holds": n}}
        if view.body.get("reason"):
            details["reason"] = view.body["reason"]
        await record(s, view, "play.release", f"play:{play.uuid}", details)
    return Done(
        {"play": play.uri, "released": n},
        view.url("admin.devices"),
        "The play counts again." if n else "That play was not held.",
    )


def _slots(view: View) -> dict[str, tuple[float, str, str]]:
    return view.ctx.extras.setdefault(_ONE_TIME, {})


def _keep_credential(view: View, device_uuid: str, toml: str) -> str:
    slots = _slots(view)
    now = time.monotonic()
    for k in [k for k, (at, _, _) in slots.items() if now - at > CREDENTIAL_TTL]:
        del slots[k]
    token = secrets.token_urlsafe(24)
    slots[token] = (now, device_uuid, toml)
    return token


def _take_credential(view: View, token: str, device_uuid: str) -> str | None:
    slot = _slots(view).pop(token, None)
    if slot is None:
        return None
    at, uuid, toml = slot
    if uuid != device_uuid or time.monotonic() - at > CREDENTIAL_TTL:
        return None
    return toml
