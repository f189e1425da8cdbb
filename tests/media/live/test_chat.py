"""Fans chat during a live session; the artist and admins moderate it."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from media.live.client import play, publish
from node.auth import issue_token
from node.services.accounts import get_account

from .conftest import ToneTrack


async def next_of(ws, kind: str, timeout: float = 5.0) -> dict:
    """The next frame of `kind`, skipping others (viewer counts arrive at any time)."""

    async def run():
        while True:
            frame = await ws.receive_json()
            if frame["type"] == kind:
                return frame

    return await asyncio.wait_for(run(), timeout)


@pytest.fixture
async def chat(live_node):
    sockets = []
    sessions = []

    async def connect(who: str | None = None, headers: dict | None = None):
        http = aiohttp.ClientSession()
        sessions.append(http)
        h = dict(headers or {})
        if who:
            h.update(live_node.auth(who))
        ws = await http.ws_connect(f"{live_node.base_url}/live/jay/chat", headers=h)
        sockets.append(ws)
        hello = await next_of(ws, "hello")
        return ws, hello

    yield connect
    for ws in sockets:
        await ws.close()
    for s in sessions:
        await s.close()


async def test_fans_chat_and_late_joiners_see_the_history(live_node, chat):
    await live_node.user("jay", role="artist")
    await live_node.user("ana")
    await live_node.user("bob")

    guest, hello = await chat()
    assert hello["me"]["can_post"] is False
    await guest.send_json({"type": "say", "text": "hi"})
    assert "sign in" in (await next_of(guest, "error"))["message"]

    ana, hello = await chat("ana")
    assert hello["me"] == {"username": "ana", "moderator": False, "can_post": True}
    await ana.send_json({"type": "say", "text": "  hello\u202e from\x07 Queens " + "!" * 900})
    msg = await next_of(ana, "message")
    assert msg["user"] == "ana"
    assert msg["text"].startswith("hello from Queens")
    assert len(msg["text"]) == live_node.settings.live.chat_max_chars
    assert (await next_of(guest, "message"))["id"] == msg["id"]

    _, late = await chat("bob")
    assert [m["text"] for m in late["history"]] == [msg["text"]]


async def test_a_fan_who_floods_the_chat_is_slowed_down(live_node, chat):
    await live_node.user("jay", role="artist")
    await live_node.user("ana")
    ana, _ = await chat("ana")
    limit = live_node.settings.live.chat_rate_count
    for i in range(limit):
        await ana.send_json({"type": "say", "text": f"msg {i}"})
        await next_of(ana, "message")
    await ana.send_json({"type": "say", "text": "one too many"})
    assert "slow down" in (await next_of(ana, "error"))["message"]


async def test_the_artist_deletes_mutes_and_bans(live_node, chat):
    await live_node.user("jay", role="artist")
    await live_node.user("ana")
    await live_node.user("bob")
    jay, hello = await chat("jay")
    assert hello["me"]["moderator"] is True
    ana, _ = await chat("ana")
    bob, _ = await chat("bob")

    # Fans cannot moderate.
    await bob.send_json({"type": "ban", "user": "ana"})
    assert "only the artist" in (await next_of(bob, "error"))["message"]

    await ana.send_json({"type": "say", "text": "buy followers at spam.example"})
    spam = await next_of(jay, "message")
    await jay.send_json({"type": "delete", "id": spam["id"]})
    assert (await next_of(bob, "deleted"))["id"] == spam["id"]
    _, late = await chat()
    assert late["history"] == []

    await jay.send_json({"type": "mute", "user": "bob", "seconds": 300})
    assert (await next_of(bob, "moderation")) == {
        "type": "moderation",
        "action": "mute",
        "user": "bob",
    }
    await bob.send_json({"type": "say", "text": "why"})
    assert "muted" in (await next_of(bob, "error"))["message"]

    await ana.send_json({"type": "say", "text": "again"})
    again = await next_of(jay, "message")
    await jay.send_json({"type": "ban", "user": "ana"})
    assert (await next_of(jay, "deleted"))["id"] == again["id"]
    assert "banned" in (await next_of(ana, "error"))["message"]
    await ana.send_json({"type": "say", "text": "let me back"})
    assert "banned" in (await next_of(ana, "error"))["message"]
    # The ban holds on a new connection too (it is stored).
    _, hello = await chat("ana")
    assert hello["me"]["can_post"] is False


async def test_an_admin_moderates_and_the_viewer_count_is_pushed(live_node, chat):
    token = await live_node.user("jay", role="artist")
    await live_node.user("mod", role="admin")
    await live_node.user("ana")
    mod, hello = await chat("mod")
    assert hello["me"]["moderator"] is True
    assert hello["viewers"] == 0
    async with aiohttp.ClientSession() as http:
        pub = await publish(http, f"{live_node.base_url}/live/jay/whip", token, [ToneTrack()])
        fan = await play(http, f"{live_node.base_url}/live/jay/whep")

        async def count_is(n):
            while (await next_of(mod, "viewers", timeout=10))["count"] != n:
                pass

        await asyncio.wait_for(count_is(1), 10)
        await fan.close(http)
        await asyncio.wait_for(count_is(0), 10)
        await pub.close(http, {"Authorization": f"Bearer {token}"})
    ana, _ = await chat("ana")
    await ana.send_json({"type": "say", "text": "hey"})
    msg = await next_of(mod, "message")
    await mod.send_json({"type": "delete", "id": msg["id"]})
    assert (await next_of(ana, "deleted"))["id"] == msg["id"]


async def test_cookie_sockets_from_another_site_are_refused(live_node):
    await live_node.user("jay", role="artist")
    await live_node.user("ana")
    async with live_node.ctx.db.transaction() as s:
        account = await get_account(s, "ana")
        secret, _ = await issue_token(s, account, "session", "browser")
    cookies = {"nycmg_session": secret}
    async with aiohttp.ClientSession(cookies=cookies) as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await http.ws_connect(
                f"{live_node.base_url}/live/jay/chat", headers={"Origin": "https://evil.example"}
            )
        assert err.value.status == 403
        ws = await http.ws_connect(
            f"{live_node.base_url}/live/jay/chat", headers={"Origin": live_node.base_url}
        )
        hello = await next_of(ws, "hello")
        assert hello["me"]["username"] == "ana"
        await ws.close()
