"""An artist goes live with WHIP and fans listen with WHEP (RFC 9725, draft-ietf-wish-whep)."""

from __future__ import annotations

import asyncio

from media.live.client import WhipError, play, publish
from media.live.http import LIVE

from .conftest import ToneTrack, collect, dominant_hz, offer_sdp


def whip(node, handle="jay"):
    return f"{node.base_url}/live/{handle}/whip"


def whep(node, handle="jay"):
    return f"{node.base_url}/live/{handle}/whep"


async def test_a_fan_hears_the_artists_tone_through_the_relay(live_node, http):
    token = await live_node.user("jay", role="artist")
    publisher = await publish(http, whip(live_node), token, [ToneTrack(440.0)])
    assert publisher.location.startswith(f"{live_node.base_url}/live/jay/whip/")
    assert publisher.etag

    fans = [await play(http, whep(live_node)) for _ in range(2)]
    for fan in fans:
        (track,) = fan.tracks
        frames = await collect(track, 75)
        # Skip the first half second (the decoder settling), listen to the rest.
        assert abs(dominant_hz(frames[25:]) - 440.0) < 8

    hub = live_node.app[LIVE]
    assert hub.viewer_count("jay") == 2
    relay = hub.broadcasts["jay"].audio
    assert relay.frames_in > 50

    # The artist stops: the session resource goes away, fans are told nobody is live.
    assert await publisher.close(http, {"Authorization": f"Bearer {token}"}) == 200
    async with http.post(
        whep(live_node),
        data=await offer_sdp(direction="recvonly"),
        headers={"Content-Type": "application/sdp"},
    ) as resp:
        assert resp.status == 409
        assert int(resp.headers["Retry-After"]) > 0
        assert resp.content_type == "application/problem+json"
    for fan in fans:
        await fan.pc.close()


async def test_whip_refuses_what_rfc_9725_says_to_refuse(live_node, http):
    token = await live_node.user("jay", role="artist")
    other = await live_node.user("kim", role="artist")
    offer = await offer_sdp()
    sdp = {"Content-Type": "application/sdp"}

    async def post(body, headers, handle="jay"):
        async with http.post(whip(live_node, handle), data=body, headers=headers) as resp:
            return resp.status, resp.headers, await resp.text()

    status, headers, _ = await post(offer, sdp)
    assert status == 401 and "Bearer" in headers["WWW-Authenticate"]
    assert (await post(offer, {**sdp, "Authorization": "Bearer nope"}))[0] == 401
    assert (await post(offer, {**sdp, "Authorization": f"Bearer {other}"}))[0] == 403
    auth = {"Authorization": f"Bearer {token}"}
    assert (await post(offer, {"Content-Type": "text/plain", **auth}))[0] == 415
    assert (await post("hello", {**sdp, **auth}))[0] == 400
    no_opus = offer.replace("opus/48000/2", "speex/48000/1")
    status, _, body = await post(no_opus, {**sdp, **auth})
    assert status == 400 and "Opus" in body
    video_only = await offer_sdp(("video",))
    assert (await post(video_only, {**sdp, **auth}))[0] == 400
    assert (await post(offer, {**sdp, **auth}, handle="nobody"))[0] == 404

    async with http.options(whip(live_node)) as resp:
        assert resp.status == 204
        assert "application/sdp" in resp.headers["Accept-Post"]
        assert "POST" in resp.headers["Allow"]

    session = await publish(http, whip(live_node), token, [ToneTrack()])
    try:
        # Already live: 409 until the first session ends.
        with_video = await offer_sdp(("audio", "video"))
        assert (await post(with_video, {**sdp, **auth}))[0] == 409

        frag = {"Content-Type": "application/trickle-ice-sdpfrag", **auth}
        cand = "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
        async with http.patch(
            session.location, data=cand, headers={**auth, "Content-Type": "text/plain"}
        ) as r:
            assert r.status == 415
        async with http.patch(
            session.location, data=cand, headers={**frag, "If-Match": '"stale"'}
        ) as r:
            assert r.status == 412
        async with http.patch(
            session.location, data=cand, headers={**frag, "If-Match": session.etag}
        ) as r:
            assert r.status == 204
        restart = "a=ice-ufrag:zzzz\r\na=ice-pwd:yyyyyyyyyyyyyyyyyyyyyy\r\n" + cand
        async with http.patch(
            session.location, data=restart, headers={**frag, "If-Match": "*"}
        ) as r:
            assert r.status == 422

        async with http.delete(session.location, headers={"Authorization": f"Bearer {other}"}) as r:
            assert r.status == 403
        async with http.delete(session.location) as r:
            assert r.status == 401
    finally:
        assert await session.close(http, auth) == 200
    async with http.delete(session.location, headers=auth) as r:
        assert r.status == 404


async def test_whep_answers_404_for_strangers_and_409_when_nobody_is_live(live_node, http):
    await live_node.user("jay", role="artist")
    offer = await offer_sdp(direction="recvonly")
    for handle, status in (("jay", 409), ("ghost", 404)):
        async with http.post(
            whep(live_node, handle), data=offer, headers={"Content-Type": "application/sdp"}
        ) as resp:
            assert resp.status == status
    async with http.post(whep(live_node), data=offer, headers={"Content-Type": "text/plain"}) as r:
        assert r.status == 415


async def test_ice_servers_from_config_are_sent_as_link_headers(network, http):
    (node,) = await network(
        1, **{"live.ice_servers": ["stun:stun.example.net:3478", "turn:u:p@turn.example.net:3478"]}
    )
    token = await node.user("jay", role="artist")
    async with http.options(whip(node)) as resp:
        links = resp.headers.getall("Link")
    assert '<stun:stun.example.net:3478>; rel="ice-server"' in links
    assert any("turn:turn.example.net:3478" in x and 'username="u"' in x for x in links)
    # A publisher offering an unreachable STUN server in its own config still goes live;
    # our answer names the same servers.
    session = await publish(http, whip(node), token, [ToneTrack()])
    assert len(session.links) == 2
    await session.close(http, {"Authorization": f"Bearer {token}"})


async def test_by_default_no_ice_server_and_no_public_stun(live_node, http):
    from media.live.sdp import rtc_configuration

    hub = live_node.app[LIVE]
    assert hub.ice_servers == []
    # aiortc falls back to a public STUN server when given None; we always pass a list.
    assert rtc_configuration(hub.ice_servers).iceServers == []
    async with http.options(whip(live_node)) as resp:
        assert "Link" not in resp.headers
    token = await live_node.user("jay", role="artist")
    session = await publish(http, whip(live_node), token, [ToneTrack()])
    answer = session.pc.remoteDescription.sdp
    assert "typ host" in answer and "typ srflx" not in answer
    await session.close(http, {"Authorization": f"Bearer {token}"})


async def test_a_fan_cannot_publish(live_node, http):
    fan = await live_node.user("ana")
    try:
        await publish(http, whip(live_node, "ana"), fan, [ToneTrack()])
    except WhipError as err:
        assert err.status == 403
    else:
        raise AssertionError("a fan went live")
    await asyncio.sleep(0)
