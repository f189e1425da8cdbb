"""Live pages: who is on the air, the artist's "go live" page, the fan's live page.

- `/live`: sessions on the air now (local and relayed from other nodes).
- `/live/go`: an artist's studio for going live from the browser (device
  picker, level meter, start/stop); it publishes with WHIP from the page.
- `/live/HANDLE`: the fan's page (player over WHEP, chat, viewer count);
  HANDLE may be `name@other.node`, played through this node's relay.
- `live_now(borough=None)` is a template global for the "live now" strip on
  the home, borough and feed pages. Templates cannot wait on the database,
  so it reads a small list refreshed every few seconds in the background.
- `followed_on_air(request, actor_id)`: the feed page's strip, the artists
  the fan follows who are on the air (read when the page is asked for).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy import select

from media.live.http import LIVE
from media.live.models import LiveSession
from media.live.service import live_followed, live_now
from node.appkeys import ACCOUNT, CTX
from node.auth import has_role
from node.errors import NotFound
from node.models import Actor, ArtistProfile

from .render import ENV, redirect, render, route_url

log = logging.getLogger("nycmg.web.live")

REFRESH_SECONDS = 3.0


@dataclass
class LiveNow:
    """The sessions on the air, as plain dicts for templates."""

    items: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, borough: str | None = None, limit: int = 12) -> list[dict[str, Any]]:
        items = self.items
        if borough:
            items = [i for i in items if i["borough"] == borough]
        return items[:limit]


LIVE_NOW: web.AppKey[LiveNow] = web.AppKey("web_live_now")


def _key(actor: Actor) -> str:
    return actor.handle if actor.local else f"{actor.handle}@{actor.domain}"


async def _load(app: web.Application) -> list[dict[str, Any]]:
    ctx = app[CTX]
    async with ctx.db.read_session() as s:
        sessions = await live_now(s, limit=50)
        boroughs = await _boroughs(s, {x.actor_id for x in sessions})
    return _items(app, sessions, boroughs)


async def _boroughs(s: Any, ids: set[int]) -> dict[int, str | None]:
    if not ids:
        return {}
    rows = await s.execute(
        select(ArtistProfile.actor_id, ArtistProfile.borough).where(ArtistProfile.actor_id.in_(ids))
    )
    return dict(rows.all())


def _items(
    app: web.Application, sessions: list[LiveSession], boroughs: dict[int, str | None]
) -> list[dict[str, Any]]:
    hub = app[LIVE]
    out = []
    for x in sessions:
        key = _key(x.actor)
        if x.local and key not in hub.broadcasts:
            continue  # a row left over by another process; not on the air here
        out.append(
            {
                "key": key,
                "name": x.actor.name or x.actor.handle,
                "acct": f"@{x.actor.handle}@{x.actor.domain}",
                "title": x.title,
                "borough": boroughs.get(x.actor_id),
                "local": x.local,
                "started_at": x.started_at,
                "viewers": hub.viewer_count(key),
                "video": x.has_video,
            }
        )
    return out


async def followed_on_air(request: web.Request, actor_id: int) -> list[dict[str, Any]]:
    """The artists `actor_id` follows who are on the air now (local or relayed)."""
    ctx = request.config_dict[CTX]
    async with ctx.db.read_session() as s:
        sessions = await live_followed(s, actor_id, limit=12)
        boroughs = await _boroughs(s, {x.actor_id for x in sessions})
    return _items(request.app, sessions, boroughs)


async def _refresher(app: web.Application) -> AsyncIterator[None]:
    live = app[LIVE_NOW]
    app[ENV].globals["live_now"] = live

    async def loop() -> None:
        while True:
            try:
                live.items = await _load(app)
            except Exception:  # noqa: BLE001 - a failed refresh keeps the last list
                log.debug("live now: refresh failed", exc_info=True)
            await asyncio.sleep(REFRESH_SECONDS)

    task = asyncio.get_running_loop().create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def live_index(request: web.Request) -> web.Response:
    items = await _load(request.app)
    request.app[LIVE_NOW].items = items
    return render(request, "live/index.html", {"sessions": items})


async def go_live(request: web.Request) -> web.Response:
    account = request.get(ACCOUNT)
    if account is None:
        return redirect(
            request, route_url(request, "web.login", query={"next": request.path}), status=302
        )
    if not account.actor.is_artist or not has_role(account, "artist"):
        return render(
            request,
            "live/go.html",
            {"not_artist": True, "handle": account.actor.handle},
            status=403,
        )
    ctx = request.config_dict[CTX]
    hub = request.config_dict[LIVE]
    handle = account.actor.handle
    return render(
        request,
        "live/go.html",
        {
            "handle": handle,
            "whip_url": str(request.app.router["live.whip"].url_for(handle=handle)),
            "live_now": handle in hub.broadcasts,
            "record_default": ctx.settings.live.record_default,
        },
    )


async def watch(request: web.Request) -> web.Response:
    ctx = request.config_dict[CTX]
    key = request.match_info["handle"]
    name, _, domain = key.partition("@")
    if domain == ctx.domain:
        key, domain = name, ""
    async with ctx.db.read_session() as s:
        actor = await s.scalar(
            select(Actor).where(Actor.handle == name, Actor.domain == (domain or ctx.domain))
        )
        if actor is None:
            raise NotFound(f"No artist @{key} is known here.")
        session = await s.scalar(
            select(LiveSession)
            .where(LiveSession.actor_id == actor.id)
            .order_by(LiveSession.started_at.desc())
            .limit(1)
        )
    hub = request.config_dict[LIVE]
    on_air = key in hub.broadcasts or (
        session is not None and session.state == "live" and not actor.local
    )
    router = request.app.router
    return render(
        request,
        "live/watch.html",
        {
            "artist": actor,
            "key": key,
            "session": session,
            "on_air": on_air,
            "viewers": hub.viewer_count(key),
            "whep_url": str(router["live.whep"].url_for(handle=key)),
            "chat_url": str(router["live.chat"].url_for(handle=key)),
        },
    )


def setup(app: web.Application) -> None:
    """Install these pages' routes."""
    app[LIVE_NOW] = LiveNow()
    app.router.add_get("/live", live_index, name="web.live")
    app.router.add_get("/live/go", go_live, name="web.live.go")
    app.router.add_get("/live/{handle}", watch, name="web.live.watch")
    app.cleanup_ctx.append(_refresher)
