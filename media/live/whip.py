"""WHIP ingest (RFC 9725): an artist goes live by POSTing an SDP offer.

`POST /live/HANDLE/whip` with `Content-Type: application/sdp` and the
artist's Bearer token (or, from the node's own page, the session cookie plus
`X-CSRF-Token`) answers `201 Created` with the answer SDP, `Location` (the
session resource), `ETag` and the ICE servers as `Link` headers. `DELETE` on
the resource ends the session; `PATCH` takes trickle candidates.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import select

from node.appkeys import ACCOUNT, CTX, SESSION_SECRET
from node.auth import check_csrf, has_role
from node.models import Account, Actor

from .http import hub_of, options, problem, read_sdp, sdp_created, trickle
from .hub import Broadcast, etag, new_id
from .models import LiveSession
from .sdp import BadOffer, check_offer
from .service import end_session, start_session

log = logging.getLogger("nycmg.live.whip")

TRUE = {"1", "true", "yes", "on"}


def _caller(request: web.Request) -> Account | web.Response:
    account = request[ACCOUNT]
    if account is None:
        return problem(
            401,
            "Unauthorized",
            "send the artist's token as Authorization: Bearer",
            {"WWW-Authenticate": 'Bearer realm="nycmg"'},
        )
    secret = request[SESSION_SECRET]
    if secret is not None:
        # Cookie-authenticated (the node's own page): same CSRF rule as the API.
        key = request.config_dict[CTX].settings.node.secret_key
        if not check_csrf(key, secret, request.headers.get("X-CSRF-Token")):
            return problem(403, "Forbidden", "missing or wrong X-CSRF-Token header")
    return account


async def _local_artist(request: web.Request, handle: str) -> Actor | None:
    ctx = request.config_dict[CTX]
    async with ctx.db.read_session() as s:
        return await s.scalar(select(Actor).where(Actor.handle == handle, Actor.local.is_(True)))


async def post_whip(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    hub = hub_of(request)
    handle = request.match_info["handle"]
    caller = _caller(request)
    if isinstance(caller, web.Response):
        return caller
    actor = await _local_artist(request, handle)
    if actor is None:
        return problem(404, "Not Found", f"no local artist @{handle}")
    if caller.actor_id != actor.id or not has_role(caller, "artist"):
        return problem(403, "Forbidden", f"only @{handle} can go live as @{handle}")
    sdp = await read_sdp(request)
    if isinstance(sdp, web.Response):
        return sdp
    if handle in hub.broadcasts or handle in hub.starting:
        return problem(409, "Conflict", f"@{handle} is already live; DELETE that session first")
    try:
        info = check_offer(sdp, want="send")
    except BadOffer as exc:
        return problem(400, "Bad Request", str(exc))
    record = request.query.get("record", "").lower() in TRUE or (
        "record" not in request.query and ctx.settings.live.record_default
    )
    title = request.query.get("title", "").strip()[:200] or f"{actor.name or actor.handle} live"

    hub.starting.add(handle)
    try:
        try:
            pc, relays, answer = await hub.accept_publisher(sdp, want_video=info.video)
        except Exception as exc:  # noqa: BLE001 - aiortc raises ValueError & co on odd SDP
            log.info("whip: offer refused: %s", exc)
            return problem(400, "Bad Request", f"the offer could not be used: {exc}")
        if "audio" not in relays:
            await pc.close()
            return problem(400, "Bad Request", "the offer has no usable Opus audio")
        try:
            async with ctx.db.transaction() as s:
                row = await s.get(Actor, actor.id)
                live = await start_session(
                    ctx, s, row, title=title, has_video="video" in relays, recording=record
                )
        except BaseException:
            await pc.close()  # no row, no session: do not leave a connection behind
            raise
        b = Broadcast(
            key=handle,
            actor_id=actor.id,
            session_id=live.id,
            session_uuid=live.uuid,
            local=True,
            pc=pc,
            relays=relays,
            resource_id=new_id(),
            etag=etag(),
            account_id=caller.id,
        )
        b.on_end.append(_close_row(ctx))
        if record:
            from .recording import start_recording

            start_recording(ctx, b)
        hub.register(b)
    finally:
        hub.starting.discard(handle)
    location = str(
        request.app.router["live.whip.resource"].url_for(handle=handle, rid=b.resource_id)
    )
    return sdp_created(request, answer, ctx.settings.base_url + location, b.etag)


def _close_row(ctx):
    async def close(b: Broadcast, reason: str) -> None:
        async with ctx.db.transaction() as s:
            live = await s.get(LiveSession, b.session_id)
            if live is not None:
                live.viewers_peak = max(live.viewers_peak, b.peak)
                live.viewers_total = max(live.viewers_total, b.total)
                await end_session(ctx, s, live, reason)

    return close


def _resource(request: web.Request) -> Broadcast | None:
    b = hub_of(request).by_resource.get(request.match_info["rid"])
    if b is None or b.key != request.match_info["handle"] or not b.local:
        return None
    return b


async def delete_whip(request: web.Request) -> web.StreamResponse:
    b = _resource(request)
    if b is None:
        return problem(404, "Not Found", "no such live session (it may have ended)")
    caller = _caller(request)
    if isinstance(caller, web.Response):
        return caller
    if caller.id != b.account_id and not has_role(caller, "admin"):
        return problem(403, "Forbidden", "only the artist or an admin can end this session")
    await hub_of(request).end(
        b, "ended by the artist" if caller.id == b.account_id else "ended by an admin"
    )
    return web.Response(status=200)


async def patch_whip(request: web.Request) -> web.StreamResponse:
    b = _resource(request)
    if b is None:
        return problem(404, "Not Found", "no such live session (it may have ended)")
    caller = _caller(request)
    if isinstance(caller, web.Response):
        return caller
    if caller.id != b.account_id:
        return problem(403, "Forbidden", "only the artist can change this session")
    return await trickle(request, b.pc, b.etag)


async def options_whip(request: web.Request) -> web.StreamResponse:
    return options(request, "OPTIONS, POST")


async def options_resource(request: web.Request) -> web.StreamResponse:
    return options(request, "OPTIONS, PATCH, DELETE")


def install(app: web.Application) -> None:
    whip = app.router.add_resource("/live/{handle}/whip", name="live.whip")
    whip.add_route("POST", post_whip)
    whip.add_route("OPTIONS", options_whip)
    res = app.router.add_resource("/live/{handle}/whip/{rid}", name="live.whip.resource")
    res.add_route("DELETE", delete_whip)
    res.add_route("PATCH", patch_whip)
    res.add_route("OPTIONS", options_resource)
