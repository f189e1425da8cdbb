"""Chat across nodes: a fan's node bridges its room for a remote session to the origin's.

The origin's room is the one true chat of a session. A node that relays a
remote artist (`name@origin`) keeps a local room for its own fans and:

- listens to the origin's chat socket (anonymously, like any viewer) and
  passes its history, messages and deletions down to its fans;
- sends its fans' messages up with `POST /live/NAME/chat/remote`, signed
  by this node's actor (draft-cavage HTTP signature, as federation does).
  The origin checks the signature, names the author `user@this.node`, and
  applies its own rate limit, mutes and bans before the message reaches
  anyone, here included (it comes back down the socket).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import select
from yarl import URL

from federation.appkeys import FEDERATION
from federation.signatures import SignatureError, http_status, sign_request, verify_request
from federation.vocab import host_of
from node.appkeys import CTX
from node.models import Actor, utcnow
from node.web_helpers import read_at_most

from .models import LiveSession

log = logging.getLogger("nycmg.live.chat")

MAX_BODY = 8192


async def origin_chat_url(app: web.Application, key: str) -> str | None:
    """The origin's chat socket for remote `name@host`, from its last known session."""
    ctx = app[CTX]
    name, _, domain = key.partition("@")
    async with ctx.db.read_session() as s:
        whep = await s.scalar(
            select(LiveSession.whep_url)
            .join(Actor, Actor.id == LiveSession.actor_id)
            .where(Actor.handle == name, Actor.domain == domain, LiveSession.local.is_(False))
            .order_by(LiveSession.started_at.desc())
            .limit(1)
        )
    if not whep or not whep.endswith("/whep") or host_of(whep) != domain:
        return None
    return whep[: -len("/whep")] + "/chat"


async def run_bridge(app: web.Application, room: Any, url: str) -> None:
    """Follow the origin's chat while anyone is in the local room; reconnect with backoff."""
    delay = 1.0
    ws_url = url.replace("https://", "wss://").replace("http://", "ws://")
    while room.members:
        try:
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(ws_url, heartbeat=30.0, max_msg_size=1 << 20) as ws:
                    delay = 1.0
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            continue
                        await _from_origin(room, json.loads(msg.data))
                        if not room.members:
                            break
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            log.info("chat bridge to %s: %s", url, exc)
        if room.members:
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)


async def _from_origin(room: Any, frame: dict[str, Any]) -> None:
    kind = frame.get("type")
    if kind == "hello":
        history = [m for m in frame.get("history", []) if isinstance(m, dict)]
        room.history.clear()
        room.history.extend(history[-(room.history.maxlen or 50) :])
        await room.send_all({"type": "reset", "history": list(room.history)})
    elif kind == "message":
        room.history.append(frame)
        await room.send_all(frame)
    elif kind == "deleted":
        kept = [m for m in room.history if m.get("id") != frame.get("id")]
        room.history.clear()
        room.history.extend(kept)
        await room.send_all(frame)
    elif kind == "moderation":
        await room.send_all(frame)


async def send_up(app: web.Application, url: str, user: str, name: str, text: str) -> bool:
    """POST a local fan's message to the origin's room, signed by this node."""
    fed = app[FEDERATION]
    if fed.client.node_key is None:
        return False
    key_id, pem = fed.client.node_key
    target = url + "/remote"
    body = json.dumps({"user": user, "name": name, "text": text}).encode()
    headers = sign_request("POST", target, {"Content-Type": "application/json"}, body, key_id, pem)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.post(URL(target, encoded=True), data=body, headers=headers) as r:
                return r.status == 202
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


async def receive_remote(request: web.Request) -> web.Response:
    """`POST /live/NAME/chat/remote`: a message from a fan on another node, signed by that node."""
    from .chat import CHAT_ROOMS, ChatRoom, clean_text, remote_ban_of
    from .http import hub_of, problem

    ctx = request.config_dict[CTX]
    fed = request.config_dict[FEDERATION]
    key = request.match_info["handle"]
    body = await read_at_most(request, MAX_BODY)
    if len(body) > MAX_BODY:
        return problem(413, "Payload Too Large", "chat messages are short")
    try:
        signed = await verify_request(
            "POST",
            request.raw_path,
            request.headers,
            body,
            fed.keys.lookup,
            scheme=ctx.settings.node.scheme,
        )
    except SignatureError as exc:
        return problem(http_status(exc), "Unauthorized", str(exc))
    b = hub_of(request).broadcasts.get(key)
    if b is None or not b.local:
        return problem(409, "Conflict", f"@{key} is not live here")
    try:
        data = json.loads(body)
        user = str(data["user"])[:64]
        name = str(data.get("name") or user)[:100]
    except (ValueError, KeyError, TypeError):
        return problem(400, "Bad Request", "send {user, name, text}")
    acct = f"{user}@{host_of(signed.owner)}"
    rooms = request.config_dict[CHAT_ROOMS]
    room = rooms.get(key)
    if room is None:
        room = rooms[key] = ChatRoom(
            key=key, artist_id=b.actor_id, history=deque(maxlen=ctx.settings.live.chat_history)
        )
    s = ctx.settings.live
    now = time.monotonic()
    if await remote_ban_of(ctx, b.actor_id, acct) is not None:
        return problem(403, "Forbidden", f"{acct} may not write in this chat")
    sent = room.sent.setdefault(acct, deque())
    while sent and now - sent[0] > s.chat_rate_seconds:
        sent.popleft()
    if len(sent) >= s.chat_rate_count:
        return problem(429, "Too Many Requests", "slow down", {"Retry-After": "10"})
    text = clean_text(data.get("text"), s.chat_max_chars)
    if not text:
        return problem(400, "Bad Request", "an empty message")
    sent.append(now)
    message = {
        "type": "message",
        "id": room.next_id,
        "user": acct,
        "name": clean_text(name, 100),
        "moderator": False,
        "text": text,
        "at": utcnow().isoformat(),
    }
    room.next_id += 1
    room.history.append(message)
    await room.send_all(message)
    return web.json_response({"id": message["id"]}, status=202)
