"""A fan on another node hears a live artist through their own node's relay.

Brooklyn hosts the artist; Queens hosts the fans. Going live is federated to
Queens (the fan follows the artist); Queens subscribes upstream once and
serves both of its fans from that one subscription.
"""

from __future__ import annotations

import asyncio

import aiohttp
from sqlalchemy import select

from media.live.chat import CHAT_ROOMS
from media.live.client import play, publish
from media.live.http import LIVE
from media.live.models import LiveSession, RemoteChatBan

from .conftest import ToneTrack, collect, dominant_hz


async def eventually(check, timeout: float = 15.0, interval: float = 0.1):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def remote_session(node, state: str):
    async with node.ctx.db.read_session() as s:
        return await s.scalar(
            select(LiveSession).where(LiveSession.local.is_(False), LiveSession.state == state)
        )


async def test_fans_on_another_node_listen_through_one_upstream_subscription(network, http):
    brooklyn, queens = await network(2)
    token = await brooklyn.user("jay", role="artist")
    await queens.user("rosa")
    async with http.post(
        queens.base_url + "/api/v1/follows",
        json={"target": f"@jay@{brooklyn.ctx.domain}"},
        headers=queens.auth("rosa"),
    ) as resp:
        assert resp.status == 201

    async def accepted():
        async with http.get(queens.base_url + "/api/v1/follows", headers=queens.auth("rosa")) as r:
            return (await r.json())[0]["state"] == "accepted"

    await eventually(accepted)

    # Jay goes live on Brooklyn; Queens learns of it through federation.
    publisher = await publish(
        http, f"{brooklyn.base_url}/live/jay/whip?title=Rooftop", token, [ToneTrack(660.0)]
    )
    learned = await eventually(lambda: remote_session(queens, "live"))
    assert learned.title == "Rooftop"
    assert learned.whep_url == f"{brooklyn.base_url}/live/jay/whep"

    # Two fans on Queens play it from Queens' own WHEP endpoint.
    key = f"jay@{brooklyn.ctx.domain}"
    fans = [await play(http, f"{queens.base_url}/live/{key}/whep") for _ in range(2)]
    for fan in fans:
        frames = await collect(fan.tracks[0], 75)
        assert abs(dominant_hz(frames[25:]) - 660.0) < 8
    # The origin serves one viewer (Queens' relay), Queens serves two.
    assert brooklyn.app[LIVE].viewer_count("jay") == 1
    assert queens.app[LIVE].viewer_count(key) == 2

    # Jay ends the show: Queens hears of it and drops its relay.
    assert await publisher.close(http, {"Authorization": f"Bearer {token}"}) == 200
    await eventually(lambda: remote_session(queens, "ended"))

    async def relay_gone():
        return key not in queens.app[LIVE].broadcasts

    await eventually(relay_gone)
    for fan in fans:
        await fan.pc.close()


async def test_the_session_object_is_served_as_activitypub(live_node, http):
    token = await live_node.user("jay", role="artist")
    publisher = await publish(http, f"{live_node.base_url}/live/jay/whip", token, [ToneTrack()])
    b = live_node.app[LIVE].broadcasts["jay"]
    url = f"{live_node.base_url}/live/{b.session_uuid}"
    async with http.get(url, headers={"Accept": "application/activity+json"}) as resp:
        doc = await resp.json(content_type=None)
    assert doc["type"] == "Video"
    assert doc["nycmg:state"] == "live"
    assert doc["nycmg:whep"] == f"{live_node.base_url}/live/jay/whep"
    async with http.get(url, allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/live/jay"
    await publisher.close(http, {"Authorization": f"Bearer {token}"})
    async with aiohttp.ClientSession() as h2:
        async with h2.get(url, headers={"Accept": "application/activity+json"}) as resp:
            assert (await resp.json(content_type=None))["nycmg:state"] == "ended"


async def next_of(ws, kind: str, timeout: float = 10.0) -> dict:
    async def run():
        while True:
            frame = await ws.receive_json()
            if frame["type"] == kind:
                return frame

    return await asyncio.wait_for(run(), timeout)


async def test_a_fan_on_another_node_chats_with_the_artist(network, http):
    brooklyn, queens = await network(2)
    token = await brooklyn.user("jay", role="artist")
    await queens.user("rosa", name="Rosa")
    async with http.post(
        queens.base_url + "/api/v1/follows",
        json={"target": f"@jay@{brooklyn.ctx.domain}"},
        headers=queens.auth("rosa"),
    ) as resp:
        assert resp.status == 201

    async def accepted():
        async with http.get(queens.base_url + "/api/v1/follows", headers=queens.auth("rosa")) as r:
            return (await r.json())[0]["state"] == "accepted"

    await eventually(accepted)
    publisher = await publish(http, f"{brooklyn.base_url}/live/jay/whip", token, [ToneTrack()])
    await eventually(lambda: remote_session(queens, "live"))
    key = f"jay@{brooklyn.ctx.domain}"

    jay = await http.ws_connect(
        f"{brooklyn.base_url}/live/jay/chat", headers={"Authorization": f"Bearer {token}"}
    )
    await next_of(jay, "hello")
    rosa = await http.ws_connect(f"{queens.base_url}/live/{key}/chat", headers=queens.auth("rosa"))
    await next_of(rosa, "hello")
    await next_of(rosa, "reset", timeout=30.0)  # Queens is following Brooklyn's room now

    # Rosa writes on Queens; the message is signed by Queens and lands in Jay's room.
    await rosa.send_json({"type": "say", "text": "hello from Queens"})
    heard = await next_of(jay, "message")
    assert heard["user"] == f"rosa@{queens.ctx.domain}"
    assert heard["text"] == "hello from Queens"
    assert (await next_of(rosa, "message"))["id"] == heard["id"]

    await jay.send_json({"type": "say", "text": "welcome, Queens"})
    assert (await next_of(rosa, "message"))["text"] == "welcome, Queens"

    # The artist bans her on Brooklyn: her node's messages are refused there.
    await jay.send_json({"type": "ban", "user": heard["user"]})
    assert (await next_of(rosa, "deleted"))["id"] == heard["id"]
    await rosa.send_json({"type": "say", "text": "let me back"})
    assert "did not take" in (await next_of(rosa, "error"))["message"]

    # The ban is kept, not held by the room: with the rooms gone (as after a
    # restart of Brooklyn) she is still refused, until Jay lifts it.
    async with brooklyn.ctx.db.read_session() as s:
        ban = await s.scalar(select(RemoteChatBan))
    assert (ban.acct, ban.kind) == (heard["user"], "ban")
    await jay.close()
    brooklyn.app[CHAT_ROOMS].clear()
    await rosa.send_json({"type": "say", "text": "after the restart"})
    assert "did not take" in (await next_of(rosa, "error"))["message"]
    jay = await http.ws_connect(
        f"{brooklyn.base_url}/live/jay/chat", headers={"Authorization": f"Bearer {token}"}
    )
    await next_of(jay, "hello")
    await jay.send_json({"type": "unban", "user": heard["user"]})
    assert (await next_of(jay, "moderation"))["action"] == "unban"
    await rosa.send_json({"type": "say", "text": "thanks, Jay"})
    back = await next_of(jay, "message")
    assert (back["user"], back["text"]) == (heard["user"], "thanks, Jay")

    # Nobody else can speak for Queens' fans: an unsigned post is refused.
    async with http.post(
        f"{brooklyn.base_url}/live/jay/chat/remote", json={"user": "x", "text": "forged"}
    ) as resp:
        assert resp.status in (400, 401)
    await rosa.close()
    await jay.close()
    await publisher.close(http, {"Authorization": f"Bearer {token}"})
