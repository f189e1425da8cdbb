"""WHEP playback (draft-ietf-wish-whep): a fan POSTs an SDP offer to watch/listen.

`POST /live/HANDLE/whep` answers `201 Created` with the answer SDP and a
`Location` for the viewer session (a capability URL: `DELETE` it to leave).
Nobody live: `409 Conflict` with `Retry-After`. No account is needed, as on
any public stream. For a remote artist (`HANDLE` = `name@their.node`) this
node relays: the first viewer makes it subscribe upstream once
(`federation.ensure_relay`), later viewers share that subscription.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import select

from node.appkeys import CTX
from node.models import Actor

from .http import hub_of, options, problem, read_sdp, sdp_created, trickle
from .hub import Broadcast, CodecMismatch
from .sdp import BadOffer, check_offer

log = logging.getLogger("nycmg.live.whep")

RETRY_AFTER = "30"


async def _artist_exists(request: web.Request, handle: str) -> bool:
    ctx = request.config_dict[CTX]
    name, _, domain = handle.partition("@")
    async with ctx.db.read_session() as s:
        found = await s.scalar(
            select(Actor.id).where(Actor.handle == name, Actor.domain == (domain or ctx.domain))
        )
    return found is not None


async def post_whep(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    hub = hub_of(request)
    handle = request.match_info["handle"]
    if handle.endswith("@" + ctx.domain):
        handle = handle.split("@", 1)[0]
    sdp = await read_sdp(request)
    if isinstance(sdp, web.Response):
        return sdp
    try:
        check_offer(sdp, want="recv")
    except BadOffer as exc:
        return problem(400, "Bad Request", str(exc))
    b: Broadcast | None = hub.broadcasts.get(handle)
    if b is None and "@" in handle:
        from .federation import ensure_relay

        b = await ensure_relay(request.app, handle)
    if b is None:
        if not await _artist_exists(request, handle):
            return problem(404, "Not Found", f"no artist @{handle} known here")
        return problem(
            409, "Conflict", f"@{handle} is not live right now", {"Retry-After": RETRY_AFTER}
        )
    if len(b.viewers) >= hub.max_viewers:
        return problem(
            503, "Service Unavailable", "this stream is full", {"Retry-After": RETRY_AFTER}
        )
    try:
        viewer, answer = await hub.add_viewer(b, sdp)
    except CodecMismatch as exc:
        return problem(400, "Bad Request", str(exc))
    except Exception as exc:  # noqa: BLE001 - aiortc raises ValueError & co on odd SDP
        log.info("whep: offer refused: %s", exc)
        return problem(400, "Bad Request", f"the offer could not be used: {exc}")
    # Peak and total viewers are kept in memory and written when the session
    # ends: no database write per join, so a crowd arriving at once never
    # queues on the (single SQLite) writer.
    location = request.app.router["live.whep.resource"].url_for(handle=b.key, vid=viewer.id)
    return sdp_created(request, answer, ctx.settings.base_url + str(location), viewer.etag)


def _viewer(request: web.Request):
    hub = hub_of(request)
    vid = request.match_info["vid"]
    b = hub.viewer_of.get(vid)
    if b is None or b.key != request.match_info["handle"]:
        return None, None
    return b, b.viewers.get(vid)


async def delete_whep(request: web.Request) -> web.StreamResponse:
    b, v = _viewer(request)
    if v is None:
        return problem(404, "Not Found", "no such viewer session")
    await hub_of(request).drop_viewer(b, v)
    return web.Response(status=200)


async def patch_whep(request: web.Request) -> web.StreamResponse:
    b, v = _viewer(request)
    if v is None:
        return problem(404, "Not Found", "no such viewer session")
    return await trickle(request, v.pc, v.etag)


async def options_whep(request: web.Request) -> web.StreamResponse:
    return options(request, "OPTIONS, POST")


async def options_resource(request: web.Request) -> web.StreamResponse:
    return options(request, "OPTIONS, PATCH, DELETE")


def install(app: web.Application) -> None:
    whep = app.router.add_resource("/live/{handle}/whep", name="live.whep")
    whep.add_route("POST", post_whep)
    whep.add_route("OPTIONS", options_whep)
    res = app.router.add_resource("/live/{handle}/whep/{vid}", name="live.whep.resource")
    res.add_route("DELETE", delete_whep)
    res.add_route("PATCH", patch_whep)
    res.add_route("OPTIONS", options_resource)
