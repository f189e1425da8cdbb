"""Live sessions across nodes: announce to followers, learn from others, relay.

- Going live sends `Create` of a `Video` (with `nycmg:state` "live" and the
  WHEP endpoint as a `Link`) to the artist's followers; ending sends an
  `Update` with state "ended". Both go through the federation outbox in the
  transaction that changed the session row.
- Inbound `Create`/`Update` of such a `Video` store or end a remote
  `LiveSession`, after checking it lives on its author's host.
- A fan's node relays a remote session (`ensure_relay`): on the first
  viewer it subscribes to the origin's WHEP endpoint once and serves its own
  fans from that one subscription; it leaves when its last viewer has been
  gone a while, or when the origin says the session ended.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from federation.errors import BadActivity
from federation.handlers import HANDLERS, Inbound
from federation.outbox import follower_inboxes, send
from federation.safefetch import check_url_async
from federation.vocab import PUBLIC, host_of, id_of, text_of
from node.appkeys import CTX
from node.context import NodeContext
from node.events import DomainEvent
from node.models import Actor, utcnow

from .http import LIVE
from .hub import Broadcast, LiveHub, etag, new_id
from .models import LiveSession

log = logging.getLogger("nycmg.live.federation")

HUB_KEY = "live.hub"
RELAY_IDLE_SECONDS = 30.0
UPSTREAM_TIMEOUT = 15.0


def session_to_ap(ctx: NodeContext, live: LiveSession, actor: Actor) -> dict[str, Any]:
    """The session as an AS2 `Video` (a live broadcast, like PeerTube's `isLiveBroadcast`)."""
    page = f"{ctx.settings.base_url}/live/{actor.handle}"
    doc: dict[str, Any] = {
        "id": live.uri,
        "type": "Video",
        "name": live.title,
        "attributedTo": actor.uri,
        "url": [
            {"type": "Link", "mediaType": "text/html", "href": page},
            {"type": "Link", "rel": "whep", "mediaType": "application/sdp", "href": live.whep_url},
        ],
        "nycmg:state": live.state,
        "nycmg:whep": live.whep_url,
        "nycmg:video": live.has_video,
        "isLiveBroadcast": True,
        "startTime": live.started_at.isoformat(),
        "published": live.started_at.isoformat(),
        "to": [PUBLIC],
        "cc": [actor.followers_url] if actor.followers_url else [],
    }
    if live.ended_at is not None:
        doc["endTime"] = live.ended_at.isoformat()
        doc["updated"] = live.ended_at.isoformat()
    return doc


def register_outbox(ctx: NodeContext) -> None:
    async def broadcast(session: AsyncSession, e: DomainEvent, kind: str) -> None:
        live = await session.get(LiveSession, e.payload["session_id"])
        if live is None or not live.local:
            return
        actor = await session.get(Actor, live.actor_id)
        inboxes = await follower_inboxes(session, actor.id)
        if not inboxes:
            return
        obj = session_to_ap(ctx, live, actor)
        activity = {
            "type": kind,
            "actor": actor.uri,
            "object": obj,
            "published": utcnow().isoformat(),
            "to": obj["to"],
            "cc": obj["cc"],
        }
        await send(ctx, session, actor, activity, inboxes)

    async def on_started(session: AsyncSession, e: DomainEvent) -> None:
        await broadcast(session, e, "Create")

    async def on_ended(session: AsyncSession, e: DomainEvent) -> None:
        await broadcast(session, e, "Update")

    ctx.bus.subscribe("live.started", on_started)
    ctx.bus.subscribe("live.ended", on_ended)


# ---- inbound -------------------------------------------------------------------------


def _whep_of(doc: dict[str, Any]) -> str | None:
    whep = doc.get("nycmg:whep") or doc.get("whep")
    if isinstance(whep, str):
        return whep
    for link in doc.get("url") or []:
        if (
            isinstance(link, dict)
            and link.get("rel") == "whep"
            and isinstance(link.get("href"), str)
        ):
            return link["href"]
    return None


async def on_live_video(inb: Inbound) -> str | None:
    doc = inb.activity.get("object")
    if not isinstance(doc, dict):
        return "live sessions arrive embedded"
    whep = _whep_of(doc)
    if whep is None:
        return "a Video that is not a live session"
    uri = id_of(doc)
    if not uri or host_of(uri) != host_of(inb.actor.uri) or host_of(whep) != host_of(inb.actor.uri):
        raise BadActivity("a live session must live on its author's host")
    author = id_of(doc.get("attributedTo")) or inb.actor.uri
    if author != inb.actor.uri:
        raise BadActivity("the live session is attributed to someone else")
    state = "ended" if doc.get("nycmg:state") == "ended" else "live"
    s = inb.session
    live = await s.scalar(select(LiveSession).where(LiveSession.uri == uri))
    if live is not None and live.actor_id != inb.actor.id:
        raise BadActivity("that session belongs to someone else")
    if live is None:
        if state == "ended" and inb.activity.get("type") == "Update":
            return "an ended session we never saw"
        live = LiveSession(uri=uri, actor_id=inb.actor.id, local=False, started_at=utcnow())
        s.add(live)
    live.title = text_of(doc.get("name"), 200)
    live.whep_url = whep[:512]
    live.has_video = bool(doc.get("nycmg:video"))
    if live.state != "ended":
        live.state = state
    if state == "ended" and live.ended_at is None:
        live.ended_at = utcnow()
    await s.flush()
    if state == "ended":
        hub: LiveHub | None = inb.ctx.extras.get(HUB_KEY)
        if hub is not None:
            key = f"{inb.actor.handle}@{inb.actor.domain}"
            b = hub.broadcasts.get(key)
            if b is not None:
                asyncio.get_running_loop().create_task(hub.end(b, "ended at the origin"))
    return None


def register_inbound() -> None:
    for verb in ("Create", "Update"):
        if (verb, "Video") not in HANDLERS.table:
            HANDLERS.register(verb, "Video", on_live_video)


# ---- relaying a remote session -------------------------------------------------------------


async def ensure_relay(app: web.Application, key: str) -> Broadcast | None:
    """The local relay of remote `name@host`'s session, subscribing upstream if needed."""
    hub: LiveHub = app[LIVE]
    ctx: NodeContext = app[CTX]
    locks: dict[str, asyncio.Lock] = ctx.extras.setdefault("live.relay_locks", {})
    lock = locks.setdefault(key, asyncio.Lock())
    async with lock:
        b = hub.broadcasts.get(key)
        if b is not None:
            return b
        name, _, domain = key.partition("@")
        async with ctx.db.read_session() as s:
            actor = await s.scalar(
                select(Actor).where(
                    Actor.handle == name, Actor.domain == domain, Actor.local.is_(False)
                )
            )
            if actor is None:
                return None
            live = await s.scalar(
                select(LiveSession)
                .where(LiveSession.actor_id == actor.id, LiveSession.state == "live")
                .order_by(LiveSession.started_at.desc())
                .limit(1)
            )
        if live is None:
            return None
        try:
            await check_url_async(
                live.whep_url, allow_private=ctx.settings.federation.allow_private_addresses
            )
            b = await _subscribe(hub, ctx, key, actor, live)
        except Exception as exc:  # noqa: BLE001 - an unreachable origin means "not live here"
            log.warning("live relay: upstream %s failed: %s", live.whep_url, exc)
            return None
        return b


async def _subscribe(
    hub: LiveHub, ctx: NodeContext, key: str, actor: Actor, live: LiveSession
) -> Broadcast:
    timeout = aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT)

    async def post_offer(sdp: str) -> tuple[str, str]:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.post(
                live.whep_url, data=sdp.encode(), headers={"Content-Type": "application/sdp"}
            ) as resp:
                body = await resp.content.read(64 * 1024)
                if resp.status != 201:
                    raise RuntimeError(f"origin answered {resp.status}")
                location = resp.headers.get("Location", "")
                return body.decode(), str(resp.url.join(URL(location)))

    pc, relays, location = await hub.subscribe_upstream(post_offer, video=live.has_video)
    if "audio" not in relays:
        await pc.close()
        raise RuntimeError("the origin sent no audio")
    b = Broadcast(
        key=key,
        actor_id=actor.id,
        session_id=live.id,
        session_uuid=live.uuid,
        local=False,
        pc=pc,
        relays=relays,
        resource_id=new_id(),
        etag=etag(),
        upstream_location=location,
    )

    async def leave_upstream(b: Broadcast, reason: str) -> None:
        if b.upstream_location and host_of(b.upstream_location) == host_of(live.whep_url):
            try:
                async with aiohttp.ClientSession(timeout=timeout) as http:
                    async with http.delete(b.upstream_location):
                        pass
            except Exception:  # noqa: BLE001 - the origin may be gone already
                pass

    b.on_end.append(leave_upstream)
    hub.register(b)
    b.extras["idle_task"] = asyncio.get_running_loop().create_task(_leave_when_idle(hub, b))
    return b


async def _leave_when_idle(hub: LiveHub, b: Broadcast) -> None:
    idle_since: float | None = None
    while not b.ended.is_set():
        await asyncio.sleep(2.0)
        if b.viewers:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > RELAY_IDLE_SECONDS:
            await hub.end(b, "no viewers left")


def setup(app: web.Application) -> None:
    ctx: NodeContext = app[CTX]
    ctx.extras[HUB_KEY] = app[LIVE]
    register_outbox(ctx)
    register_inbound()
