"""A small WHIP/WHEP client on aiortc: publish a track, or play a session.

Used by the tests and `bench/live.py`, and handy for scripting a stream
from a file (`MediaPlayer`) without a browser. Non-trickle: aiortc gathers
every candidate before the offer is sent, as RFC 9725 4.2 allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from yarl import URL


@dataclass
class Session:
    pc: RTCPeerConnection
    location: str
    etag: str | None
    links: list[str] = field(default_factory=list)
    tracks: list[Any] = field(default_factory=list)

    async def close(
        self, http: aiohttp.ClientSession, headers: dict[str, str] | None = None
    ) -> int:
        async with http.delete(self.location, headers=headers or {}) as resp:
            status = resp.status
        await self.pc.close()
        return status


class WhipError(RuntimeError):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status}: {body[:200]}")
        self.status = status
        self.body = body


async def _exchange(
    http: aiohttp.ClientSession, url: str, pc: RTCPeerConnection, headers: dict[str, str]
) -> Session:
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(
        url,
        data=pc.localDescription.sdp.encode(),
        headers={"Content-Type": "application/sdp", **headers},
    ) as resp:
        body = await resp.text()
        if resp.status != 201:
            await pc.close()
            raise WhipError(resp.status, body)
        location = str(resp.url.join(URL(resp.headers["Location"])))
        session = Session(pc, location, resp.headers.get("ETag"), resp.headers.getall("Link", []))
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return session


async def publish(
    http: aiohttp.ClientSession,
    url: str,
    token: str | None,
    tracks: list[MediaStreamTrack],
) -> Session:
    """WHIP: send `tracks` (audio first) to `url`."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for track in tracks:
        pc.addTransceiver(track, direction="sendonly")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await _exchange(http, url, pc, headers)


async def play(
    http: aiohttp.ClientSession, url: str, *, video: bool = False, on_track: Any = None
) -> Session:
    """WHEP: receive audio (and video) from `url`; `on_track(track, receiver)` is called per track."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="recvonly")
    if video:
        pc.addTransceiver("video", direction="recvonly")
    got: list[Any] = []

    @pc.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        got.append(track)
        if on_track is not None:
            receiver = next(t.receiver for t in pc.getTransceivers() if t.receiver.track is track)
            on_track(track, receiver)

    session = await _exchange(http, url, pc, {})
    session.tracks = got
    return session
