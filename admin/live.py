"""Live sessions in the console: on the air now (local and relayed), the past, ending one.

Curators may end a session (moderation: a stream breaking the node's rules);
the action is written to the audit log. Ending an artist who is not on the
air is harmless and says so, so scripts can call it blindly.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from media.live.http import LIVE
from media.live.models import LiveSession
from node.validation import F, Schema

from .audit import record, register_audit_action
from .console import CONSOLE, Done, Section, View

CONSOLE.section(Section("live", "Live", "admin.live", role="curator", order=60))
register_audit_action("live.end", "Ended a live session")

EndIn = Schema(
    "ConsoleLiveEnd",
    F("handle", "str", required=True, max_len=320),
    F("reason", "text", max_len=500),
)


def _on_air(view: View) -> list[dict[str, Any]]:
    hub = view.request.config_dict[LIVE]
    now = time.monotonic()
    out = []
    for b in sorted(hub.broadcasts.values(), key=lambda b: b.started):
        out.append(
            {
                "handle": b.key,
                "session": b.session_uuid,
                "relayed": not b.local,
                "viewers": len(b.viewers),
                "peak": b.peak,
                "joined": b.total,
                "seconds": int(now - b.started),
                "video": b.has_video,
                "frames": {kind: r.frames_in for kind, r in b.relays.items()},
                "recording": "recorder" in b.extras,
            }
        )
    return out


@CONSOLE.page("/live", name="admin.live", template="live.html", role="curator", section="live")
async def live_sessions(view: View) -> dict[str, Any]:
    async with view.ctx.db.read_session() as s:
        rows = (
            await s.scalars(
                select(LiveSession)
                .order_by(LiveSession.started_at.desc(), LiveSession.id.desc())
                .limit(50)
            )
        ).all()
        past = [
            {
                "uuid": r.uuid,
                "uri": r.uri,
                "artist": r.actor.acct,
                "local": r.local,
                "title": r.title,
                "state": r.state,
                "started_at": r.started_at.isoformat(),
                "ended_at": r.ended_at.isoformat() if r.ended_at else None,
                "viewers_peak": r.viewers_peak,
                "viewers_total": r.viewers_total,
                "recording": r.recording,
                "end_reason": r.end_reason,
            }
            for r in rows
        ]
    return {"on_air": _on_air(view), "sessions": past}


@CONSOLE.action("/live/end", name="admin.live.end", back="admin.live", role="curator", body=EndIn)
async def end_session(view: View) -> Done:
    handle = view.body["handle"].lstrip("@")
    hub = view.request.config_dict[LIVE]
    b = hub.broadcasts.get(handle)
    if b is None:
        return Done({"ended": False}, view.url("admin.live"), f"@{handle} was not live.")
    reason = view.body.get("reason") or ""
    await hub.end(b, "ended by a moderator")
    async with view.ctx.db.transaction() as s:
        await record(
            s, view, "live.end", f"live:{handle}", {"session": b.session_uuid, "reason": reason}
        )
    return Done(
        {"ended": True, "session": b.session_uuid},
        view.url("admin.live"),
        f"Ended @{handle}'s session.",
    )
