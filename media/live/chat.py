"""Live chat over WebSocket at `/live/HANDLE/chat`.

Anyone may watch the chat; signed-in fans (session cookie, or a Bearer
token for scripts) may write. Each message is plain text, stripped of
control characters and cut to `live.chat_max_chars`; clients render it as
text, never as HTML. Per-account rate limit (`live.chat_rate_count` per
`live.chat_rate_seconds`). The artist and the node's admins moderate:
delete a message, mute a fan for a while, ban (kept in `live_chat_bans`,
and for fans of other nodes, `user@host`, in `live_chat_remote_bans`, so a
ban or mute holds across sessions and restarts). Late joiners get the last
`live.chat_history` messages and the viewer count, which is pushed again
whenever it changes.

Frames, client to server: `{"type": "say", "text"}`, and for moderators
`{"type": "delete", "id"}`, `{"type": "mute", "user", "seconds"}`,
`{"type": "ban", "user"}`, `{"type": "unban", "user"}`.
Server to client: `hello` (history, viewers, me), `message`, `deleted`,
`viewers`, `moderation`, `error`, and `reset` (a new history, when a
relaying node's bridge to the origin's room connects).

For a remote artist (`name@origin`), this node's room is a bridge to the
origin's (see `chat_bridge.py`): fans here read the origin's chat and
their messages go there, signed by this node.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web
from sqlalchemy import delete, select

from node.appkeys import ACCOUNT, CTX, SESSION_SECRET
from node.auth import has_role
from node.models import Account, Actor, utcnow

from .http import hub_of
from .models import ChatBan, RemoteChatBan

log = logging.getLogger("nycmg.live.chat")

MAX_FRAME = 4096
_CONTROL = re.compile(
    r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]"
)


def clean_text(text: Any, limit: int) -> str:
    """Plain text for the chat: normalized, no control or bidi-override characters, bounded."""
    if not isinstance(text, str):
        return ""
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text).replace("\r", "").strip()
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text[:limit]


@dataclass(eq=False)
class Member:
    ws: web.WebSocketResponse
    account_id: int | None
    username: str | None
    name: str
    moderator: bool


@dataclass
class ChatRoom:
    key: str
    artist_id: int
    history: deque[dict[str, Any]]
    members: set[Member] = field(default_factory=set)
    session_uuid: str | None = None
    next_id: int = 1
    sent: dict[int | str, deque[float]] = field(default_factory=dict)
    muted: dict[int | str, float] = field(default_factory=dict)
    last_viewers: int = -1
    ticker: asyncio.Task | None = None
    # For a remote artist: the origin's chat socket, followed by `bridge`.
    origin: str | None = None
    bridge: asyncio.Task | None = None

    async def send_all(self, frame: dict[str, Any]) -> None:
        data = json.dumps(frame)
        for m in tuple(self.members):
            if m.ws.closed:
                self.members.discard(m)
                continue
            try:
                await m.ws.send_str(data)
            except (ConnectionError, RuntimeError):
                self.members.discard(m)


CHAT_ROOMS: web.AppKey[dict[str, ChatRoom]] = web.AppKey("live_chat_rooms")


async def _artist(request: web.Request, key: str) -> Actor | None:
    ctx = request.config_dict[CTX]
    name, _, domain = key.partition("@")
    async with ctx.db.read_session() as s:
        return await s.scalar(
            select(Actor).where(Actor.handle == name, Actor.domain == (domain or ctx.domain))
        )


def _origin_ok(request: web.Request) -> bool:
    """Cookie-authenticated sockets must come from our own pages (no cross-site hijacking)."""
    if request[SESSION_SECRET] is None:
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    base = urlsplit(request.config_dict[CTX].settings.base_url)
    got = urlsplit(origin)
    return (got.scheme, got.netloc) == (base.scheme, base.netloc)


async def _ban_of(request: web.Request, artist_id: int, account_id: int) -> ChatBan | None:
    ctx = request.config_dict[CTX]
    async with ctx.db.read_session() as s:
        return await s.scalar(
            select(ChatBan).where(ChatBan.artist_id == artist_id, ChatBan.account_id == account_id)
        )


async def remote_ban_of(ctx: Any, artist_id: int, acct: str) -> RemoteChatBan | None:
    """The ban, or the mute still running, of fan `user@host` in `artist_id`'s chats."""
    async with ctx.db.read_session() as s:
        ban = await s.scalar(
            select(RemoteChatBan).where(
                RemoteChatBan.artist_id == artist_id, RemoteChatBan.acct == acct
            )
        )
    if ban is not None and ban.kind == "mute" and (ban.until is None or ban.until <= utcnow()):
        return None
    return ban


async def chat_socket(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    key = request.match_info["handle"]
    if key.endswith("@" + ctx.domain):
        key = key.split("@", 1)[0]
    artist = await _artist(request, key)
    if artist is None:
        raise web.HTTPNotFound(text="no such artist")
    if not _origin_ok(request):
        raise web.HTTPForbidden(text="cross-site chat connections are refused")
    account: Account | None = request[ACCOUNT]
    ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_FRAME)
    await ws.prepare(request)

    rooms = request.config_dict[CHAT_ROOMS]
    room = rooms.get(key)
    if room is None:
        room = rooms[key] = ChatRoom(
            key=key, artist_id=artist.id, history=deque(maxlen=ctx.settings.live.chat_history)
        )
    b = hub_of(request).broadcasts.get(key)
    if b is not None and room.session_uuid != b.session_uuid:
        room.session_uuid = b.session_uuid
        room.history.clear()
    moderator = account is not None and (
        account.actor_id == artist.id or has_role(account, "admin")
    )
    member = Member(
        ws=ws,
        account_id=account.id if account else None,
        username=account.username if account else None,
        name=(account.actor.name or account.username) if account else "",
        moderator=moderator,
    )
    room.members.add(member)
    loop = asyncio.get_running_loop()
    if room.ticker is None or room.ticker.done():
        room.ticker = loop.create_task(_tick(request.app, room))
    banned = account is not None and await _ban_of(request, artist.id, account.id)
    await ws.send_json(
        {
            "type": "hello",
            "history": list(room.history),
            "viewers": hub_of(request).viewer_count(key),
            "live": b is not None,
            "me": {
                "username": member.username,
                "moderator": moderator,
                "can_post": account is not None and not (banned and banned.kind == "ban"),
            },
        }
    )
    if "@" in key:
        # Only after `hello`: the bridge's first frame (`reset`) must not overtake it.
        from .chat_bridge import origin_chat_url, run_bridge

        room.origin = await origin_chat_url(request.app, key)
        if room.origin and (room.bridge is None or room.bridge.done()):
            room.bridge = loop.create_task(run_bridge(request.app, room, room.origin))
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                frame = json.loads(msg.data)
            except ValueError:
                await ws.send_json({"type": "error", "message": "frames are JSON objects"})
                continue
            if not isinstance(frame, dict):
                continue
            await _handle(request, room, member, frame)
    finally:
        room.members.discard(member)
    return ws


async def _handle(request: web.Request, room: ChatRoom, m: Member, frame: dict[str, Any]) -> None:
    kind = frame.get("type")
    if kind == "say":
        await _say(request, room, m, frame.get("text"))
    elif kind in ("delete", "mute", "ban", "unban"):
        if not m.moderator:
            await m.ws.send_json(
                {"type": "error", "message": "only the artist and admins moderate"}
            )
            return
        await _moderate(request, room, m, kind, frame)
    else:
        await m.ws.send_json({"type": "error", "message": f"unknown frame type {kind!r}"})


async def _say(request: web.Request, room: ChatRoom, m: Member, raw: Any) -> None:
    ctx = request.config_dict[CTX]
    s = ctx.settings.live
    if m.account_id is None:
        await m.ws.send_json({"type": "error", "message": "sign in to chat"})
        return
    now = time.monotonic()
    ban = await _ban_of(request, room.artist_id, m.account_id)
    if ban is not None and ban.kind == "ban":
        await m.ws.send_json({"type": "error", "message": "you are banned from this chat"})
        return
    if ban is not None and ban.kind == "mute" and ban.until and ban.until > utcnow():
        await m.ws.send_json({"type": "error", "message": "you are muted for a while"})
        return
    if room.muted.get(m.account_id, 0) > now:
        await m.ws.send_json({"type": "error", "message": "you are muted for a while"})
        return
    sent = room.sent.setdefault(m.account_id, deque())
    while sent and now - sent[0] > s.chat_rate_seconds:
        sent.popleft()
    if len(sent) >= s.chat_rate_count and not m.moderator:
        await m.ws.send_json({"type": "error", "message": "slow down: too many messages"})
        return
    text = clean_text(raw, s.chat_max_chars)
    if not text:
        return
    sent.append(now)
    if room.origin:
        # A remote artist's chat lives on their node: send it there; it comes
        # back down the bridge like everyone else's messages.
        from .chat_bridge import send_up

        if not await send_up(request.app, room.origin, m.username or "", m.name, text):
            await m.ws.send_json({"type": "error", "message": "the artist's node did not take it"})
        return
    message = {
        "type": "message",
        "id": room.next_id,
        "user": m.username,
        "name": m.name,
        "moderator": m.moderator,
        "text": text,
        "at": utcnow().isoformat(),
    }
    room.next_id += 1
    room.history.append(message)
    await room.send_all(message)


async def _moderate(
    request: web.Request, room: ChatRoom, m: Member, kind: str, frame: dict[str, Any]
) -> None:
    ctx = request.config_dict[CTX]
    if kind == "delete":
        mid = frame.get("id")
        before = len(room.history)
        kept = [x for x in room.history if x["id"] != mid]
        room.history.clear()
        room.history.extend(kept)
        if len(kept) != before:
            await room.send_all({"type": "deleted", "id": mid})
        return
    username = frame.get("user")
    if not isinstance(username, str) or not username:
        await m.ws.send_json({"type": "error", "message": "say which user"})
        return
    if "@" in username:
        await _moderate_remote(request, room, m, kind, username, frame)
        return
    async with ctx.db.transaction() as s:
        target = await s.scalar(select(Account).where(Account.username == username))
        if target is None:
            await m.ws.send_json({"type": "error", "message": f"no user {username}"})
            return
        if target.actor_id == room.artist_id:
            await m.ws.send_json({"type": "error", "message": "the artist cannot be muted here"})
            return
        await s.execute(
            delete(ChatBan).where(
                ChatBan.artist_id == room.artist_id, ChatBan.account_id == target.id
            )
        )
        if kind in ("ban", "mute"):
            seconds = frame.get("seconds", 600)
            seconds = seconds if isinstance(seconds, int) and 0 < seconds <= 86400 * 30 else 600
            s.add(
                ChatBan(
                    artist_id=room.artist_id,
                    account_id=target.id,
                    kind=kind,
                    until=utcnow() + timedelta(seconds=seconds) if kind == "mute" else None,
                    by=m.username or "",
                )
            )
            if kind == "mute":
                room.muted[target.id] = time.monotonic() + seconds
        else:
            room.muted.pop(target.id, None)
        target_id = target.id
    if kind == "ban":
        # The banned fan's messages go too.
        gone = [x["id"] for x in room.history if x["user"] == username]
        kept = [x for x in room.history if x["user"] != username]
        room.history.clear()
        room.history.extend(kept)
        for mid in gone:
            await room.send_all({"type": "deleted", "id": mid})
        for other in tuple(room.members):
            if other.account_id == target_id:
                await other.ws.send_json(
                    {"type": "error", "message": "you are banned from this chat"}
                )
    await room.send_all({"type": "moderation", "action": kind, "user": username})


async def _moderate_remote(
    request: web.Request, room: ChatRoom, m: Member, kind: str, acct: str, frame: dict[str, Any]
) -> None:
    """Mute, ban or unban a fan of another node (no account here: kept by `user@host`)."""
    user, _, host = acct.rpartition("@")
    if not user or not host or len(acct) > 320 or any(c.isspace() for c in acct):
        await m.ws.send_json({"type": "error", "message": f"no user {acct[:80]}"})
        return
    ctx = request.config_dict[CTX]
    seconds = frame.get("seconds", 600)
    seconds = seconds if isinstance(seconds, int) and 0 < seconds <= 86400 * 30 else 600
    async with ctx.db.transaction() as s:
        await s.execute(
            delete(RemoteChatBan).where(
                RemoteChatBan.artist_id == room.artist_id, RemoteChatBan.acct == acct
            )
        )
        if kind in ("ban", "mute"):
            s.add(
                RemoteChatBan(
                    artist_id=room.artist_id,
                    acct=acct,
                    kind=kind,
                    until=utcnow() + timedelta(seconds=seconds) if kind == "mute" else None,
                    by=m.username or "",
                )
            )
    if kind == "ban":
        gone = [x["id"] for x in room.history if x["user"] == acct]
        kept = [x for x in room.history if x["user"] != acct]
        room.history.clear()
        room.history.extend(kept)
        for mid in gone:
            await room.send_all({"type": "deleted", "id": mid})
    await room.send_all({"type": "moderation", "action": kind, "user": acct})


async def _tick(app: web.Application, room: ChatRoom) -> None:
    """Push the viewer count while anyone is in the room, when it changes."""
    from .http import LIVE

    while room.members:
        count = app[LIVE].viewer_count(room.key)
        if count != room.last_viewers:
            room.last_viewers = count
            await room.send_all({"type": "viewers", "count": count})
        await asyncio.sleep(2.0)
    room.last_viewers = -1


async def _close_rooms(app: web.Application):
    yield
    for room in app[CHAT_ROOMS].values():
        for task in (room.ticker, room.bridge):
            if task is not None:
                task.cancel()
        for m in tuple(room.members):
            await m.ws.close()


def install(app: web.Application) -> None:
    app[CHAT_ROOMS] = {}
    from .chat_bridge import receive_remote

    app.router.add_get("/live/{handle}/chat", chat_socket, name="live.chat")
    app.router.add_post("/live/{handle}/chat/remote", receive_remote, name="live.chat.remote")
    app.cleanup_ctx.append(_close_rooms)
