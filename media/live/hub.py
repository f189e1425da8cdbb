"""The sessions on the air in this process: publishers, relays and viewers.

A `Broadcast` is one artist on the air here: either a local publisher (WHIP)
or, for a remote artist, one upstream WHEP subscription to the origin node.
Either way its incoming tracks are tapped into `PacketRelay`s, and every
viewer (WHEP) gets `ViewerTrack`s fed from them. Live sessions are pinned to
one process (DESIGN.md 2), so this state lives in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription

from .relay import PacketRelay, ViewerTrack, tap_receiver, use_prepacked
from .sdp import IceServer, rtc_configuration, strip_mdns

log = logging.getLogger("nycmg.live")


def new_id() -> str:
    return secrets.token_urlsafe(16)


def etag() -> str:
    return f'"{secrets.token_hex(8)}"'


class CodecMismatch(ValueError):
    """The viewer cannot receive the codec the publisher sends (we never transcode)."""


def _note_codecs(pc: RTCPeerConnection, relays: dict[str, PacketRelay]) -> None:
    # The codec the publisher will send is the first one negotiated (aiortc keeps
    # it in the transceiver's private `_codecs`); viewers must get the same.
    for t in pc.getTransceivers():
        relay = relays.get(t.kind)
        codecs = [c for c in getattr(t, "_codecs", []) if not c.mimeType.lower().endswith("/rtx")]
        if relay is not None and relay.codec is None and codecs:
            relay.codec = codecs[0]


def _only_codec(transceiver: Any, codec: Any) -> None:
    """Keep only `codec` (and its RTX) among what a viewer's answer may use."""
    keep = [c for c in transceiver._codecs if c.mimeType.lower() == codec.mimeType.lower()]
    if not keep:
        raise CodecMismatch(f"this stream is {codec.mimeType}, which the offer does not accept")
    pts = {c.payloadType for c in keep}
    rtx = [
        c
        for c in transceiver._codecs
        if c.mimeType.lower().endswith("/rtx") and c.parameters.get("apt") in pts
    ]
    transceiver._codecs = keep[:1] + [
        c for c in rtx if c.parameters.get("apt") == keep[0].payloadType
    ]


@dataclass
class Viewer:
    id: str
    pc: RTCPeerConnection
    tracks: list[ViewerTrack]
    etag: str
    joined: float = field(default_factory=time.monotonic)


@dataclass
class Broadcast:
    """One artist on the air on this node (local publisher or relayed remote session)."""

    key: str  # the handle in URLs: "jay" (local) or "jay@queens.example" (relayed)
    actor_id: int
    session_id: int
    session_uuid: str
    local: bool
    pc: RTCPeerConnection
    relays: dict[str, PacketRelay]
    resource_id: str
    etag: str
    account_id: int | None = None
    upstream_location: str | None = None
    started: float = field(default_factory=time.monotonic)
    viewers: dict[str, Viewer] = field(default_factory=dict)
    peak: int = 0
    total: int = 0
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    on_end: list[Callable[[Broadcast, str], Awaitable[None]]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def audio(self) -> PacketRelay:
        return self.relays["audio"]

    @property
    def has_video(self) -> bool:
        return "video" in self.relays


@dataclass
class LiveHub:
    ice_servers: list[IceServer]
    queue_size: int = 8
    max_viewers: int = 500
    broadcasts: dict[str, Broadcast] = field(default_factory=dict)
    by_resource: dict[str, Broadcast] = field(default_factory=dict)
    viewer_of: dict[str, Broadcast] = field(default_factory=dict)
    starting: set[str] = field(default_factory=set)
    _ending: set[str] = field(default_factory=set)

    def new_pc(self) -> RTCPeerConnection:
        return RTCPeerConnection(rtc_configuration(self.ice_servers))

    # ---- publishing ------------------------------------------------------------

    async def accept_publisher(
        self, offer_sdp: str, *, want_video: bool
    ) -> tuple[RTCPeerConnection, dict[str, PacketRelay], str]:
        """Answer a WHIP offer; the answer SDP carries all our candidates (no trickle needed)."""
        pc = self.new_pc()
        relays: dict[str, PacketRelay] = {}

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind in relays or (track.kind == "video" and not want_video):
                return
            relay = PacketRelay(track.kind, self.queue_size)
            for t in pc.getTransceivers():
                if t.receiver.track is track:
                    tap_receiver(t.receiver, relay)
            relays[track.kind] = relay

        try:
            await pc.setRemoteDescription(RTCSessionDescription(strip_mdns(offer_sdp), "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await pc.close()
            raise
        _note_codecs(pc, relays)
        return pc, relays, pc.localDescription.sdp

    async def subscribe_upstream(
        self, post_offer: Callable[[str], Awaitable[tuple[str, str]]], *, video: bool
    ) -> tuple[RTCPeerConnection, dict[str, PacketRelay], str]:
        """Be a WHEP client of another node: `post_offer(sdp)` returns (answer, location)."""
        pc = self.new_pc()
        relays: dict[str, PacketRelay] = {}
        kinds = ["audio", "video"] if video else ["audio"]
        for kind in kinds:
            pc.addTransceiver(kind, direction="recvonly")

        @pc.on("track")
        def on_track(track: Any) -> None:
            if track.kind in relays:
                return
            relay = PacketRelay(track.kind, self.queue_size)
            for t in pc.getTransceivers():
                if t.receiver.track is track:
                    tap_receiver(t.receiver, relay)
            relays[track.kind] = relay

        try:
            await pc.setLocalDescription(await pc.createOffer())
            answer, location = await post_offer(pc.localDescription.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(strip_mdns(answer), "answer"))
        except Exception:
            await pc.close()
            raise
        _note_codecs(pc, relays)
        return pc, relays, location

    def register(self, b: Broadcast) -> None:
        self.broadcasts[b.key] = b
        self.by_resource[b.resource_id] = b

        @b.pc.on("connectionstatechange")
        async def on_state() -> None:
            if b.pc.connectionState in ("failed", "closed"):
                log.warning("live: @%s lost its upstream (%s)", b.key, b.pc.connectionState)
                await self.end(b, "disconnected")

    async def end(self, b: Broadcast, reason: str) -> None:
        """Stop a broadcast: its viewers, its relays, its peer connection; run its hooks once."""
        if b.resource_id in self._ending:
            return
        self._ending.add(b.resource_id)
        log.info("live: @%s ends (%s) with %d viewers", b.key, reason, len(b.viewers))
        try:
            if self.broadcasts.get(b.key) is b:
                del self.broadcasts[b.key]
            self.by_resource.pop(b.resource_id, None)
            for relay in b.relays.values():
                relay.end()
            for v in list(b.viewers.values()):
                await self.drop_viewer(b, v)
            with contextlib.suppress(Exception):
                await b.pc.close()
            for hook in b.on_end:
                try:
                    await hook(b, reason)
                except Exception:  # noqa: BLE001 - one hook must not stop the others
                    log.exception("live: end hook failed")
            b.ended.set()
        finally:
            self._ending.discard(b.resource_id)

    # ---- viewing -----------------------------------------------------------------

    async def add_viewer(self, b: Broadcast, offer_sdp: str) -> tuple[Viewer, str]:
        """Answer a WHEP offer with tracks fed by `b`'s relays."""
        pc = self.new_pc()
        tracks: list[ViewerTrack] = []
        try:
            await pc.setRemoteDescription(RTCSessionDescription(strip_mdns(offer_sdp), "offer"))
            for t in pc.getTransceivers():
                relay = b.relays.get(t.kind)
                if relay is None or t.receiver is None:
                    continue
                if relay.codec is not None:
                    _only_codec(t, relay.codec)
                track = relay.add_viewer()
                tracks.append(track)
                use_prepacked(pc.addTrack(track))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            for track in tracks:
                track.stop()
            await pc.close()
            raise
        viewer = Viewer(id=new_id(), pc=pc, tracks=tracks, etag=etag())
        b.viewers[viewer.id] = viewer
        self.viewer_of[viewer.id] = b
        b.total += 1
        b.peak = max(b.peak, len(b.viewers))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.drop_viewer(b, viewer)

        return viewer, pc.localDescription.sdp

    async def drop_viewer(self, b: Broadcast, v: Viewer) -> None:
        if b.viewers.pop(v.id, None) is None:
            return
        self.viewer_of.pop(v.id, None)
        for track in v.tracks:
            track.stop()
        with contextlib.suppress(Exception):
            await v.pc.close()

    def viewer_count(self, key: str) -> int:
        b = self.broadcasts.get(key)
        return len(b.viewers) if b else 0

    async def close(self) -> None:
        for b in list(self.broadcasts.values()):
            await self.end(b, "shutdown")
