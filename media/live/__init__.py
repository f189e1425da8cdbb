"""Live: WHIP ingest, WHEP playback, the packet relay, chat, recording, federation (DESIGN.md 9).

`setup(app)` installs the routes, the in-memory hub of sessions on the air,
the events `live.started` / `live.ended`, the federation of sessions, and
ends every session cleanly when the node stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from node.appkeys import CTX
from node.events import declare_events

from . import models  # noqa: F401 - the tables, on Base.metadata
from .http import LIVE
from .hub import LiveHub
from .sdp import parse_ice_servers


def setup(app: web.Application) -> None:
    """Install this part's routes, jobs and subscribers."""
    from . import chat, federation, objects, whep, whip

    declare_events("live.started", "live.ended")
    ctx = app[CTX]
    s = ctx.settings.live
    app[LIVE] = LiveHub(
        ice_servers=parse_ice_servers(s.ice_servers),
        queue_size=s.viewer_queue,
        max_viewers=s.max_viewers,
    )
    whip.install(app)
    whep.install(app)
    chat.install(app)
    objects.install(app)
    federation.setup(app)
    app.cleanup_ctx.append(_live_ctx)
    _feed_extra(app)


def _feed_extra(app: web.Application) -> None:
    """The first page of `/api/v1/feed` gets `live`: followed artists on the air."""
    from node.api.social import FEED_EXTRAS

    from .service import live_followed, on_air_json

    ctx = app[CTX]

    async def on_air(session, actor_id: int) -> list[dict]:
        hub = app[LIVE]
        out = []
        for live in await live_followed(session, actor_id):
            key = live.actor.handle if live.local else f"{live.actor.handle}@{live.actor.domain}"
            if live.local and key not in hub.broadcasts:
                continue  # a row left over by another process: not on the air here
            out.append(on_air_json(ctx, live, hub.viewer_count(key)))
        return out

    ctx.extras.setdefault(FEED_EXTRAS, {})["live"] = on_air


async def _live_ctx(app: web.Application) -> AsyncIterator[None]:
    from .service import end_all_local

    ctx = app[CTX]
    # Nothing survives a restart on the air: rows still "live" were cut off.
    await end_all_local(ctx, "node restarted")
    yield
    await app[LIVE].close()
