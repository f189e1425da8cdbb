"""`/live/UUID`: a session as an ActivityPub `Video` for servers, a redirect for people."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import select

from federation.routes import ap_response, wants_activity_json
from federation.vocab import with_context
from node.appkeys import CTX

from .federation import session_to_ap
from .models import LiveSession

UUID = "{uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}}"


async def session_view(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    async with ctx.db.read_session() as s:
        live = await s.scalar(
            select(LiveSession).where(LiveSession.uuid == request.match_info["uuid"])
        )
    if live is None:
        raise web.HTTPNotFound(text="no such live session")
    actor = live.actor
    if wants_activity_json(request) and live.local:
        return ap_response(with_context(session_to_ap(ctx, live, actor)))
    key = actor.handle if actor.local else f"{actor.handle}@{actor.domain}"
    raise web.HTTPFound(f"/live/{key}")


def install(app: web.Application) -> None:
    app.router.add_get(f"/live/{UUID}", session_view, name="live.session")
