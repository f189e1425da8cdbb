"""Encoded-packet relay: one incoming track out to many viewers, no transcoding.

aiortc's stock `MediaRelay` hands every viewer decoded frames, so each
viewer's `RTCRtpSender` runs its own encoder: about 17 Opus listeners
saturate a core. Here nothing is decoded or encoded:

- `tap_receiver` swaps two parts of the publisher's `RTCRtpReceiver` before
  it starts (aiortc 1.16 internals, read in aiortc/rtcrtpreceiver.py): the
  queue feeding its decoder thread, so depayloaded encoded frames come to us
  instead of the decoder (the thread only ever sees the final `None` that
  ends the track), and for audio the jitter buffer, so each Opus packet is
  passed on the moment it arrives (a jitter buffer belongs at the listener;
  one here would only add delay and, after loss, hold frames back).
- `PacketRelay.push` packetizes each frame once (RTP payloads: Opus as is,
  VP8 and H.264 with aiortc's own packetizers) and appends it to every
  viewer's bounded queue. `RTCRtpSender._next_encoded_frame` calls
  `encoder.pack(item)` for anything that is not a decoded frame; each
  viewer's sender gets a `Prepacked` encoder whose `pack` hands the shared
  payloads back, so nothing is encoded, copied or re-timed per viewer.
- Audio goes out directly (`ViewerTrack.send_direct`): once a viewer's DTLS
  is up, `push` writes each Opus packet to every viewer's socket then and
  there: one RTP header packed from a per-viewer template, the viewer's SRTP
  `protect`, one `sendto`. No task wakes per packet per viewer, no
  `RtpPacket` is built, and nothing queues in Python, so latency cannot climb.
  A viewer whose socket buffer holds more than `DIRECT_BACKLOG` bytes skips
  packets until it drains (bounded, counted as dropped). The aiortc sender
  keeps its RTCP task (sender reports read the counters this path updates).
- Video (several packets per frame, NACK/RTX history, keyframes) goes through
  the aiortc sender: a viewer's queue drops its oldest frame when full, so a
  slow or late viewer never builds a backlog; a new viewer starts from the
  next keyframe (asked of the publisher with a PLI when a viewer joins).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCRtpReceiver, clock
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtp import RtpPacket
from aiortc.utils import random32, uint16_gt

log = logging.getLogger("nycmg.live.relay")

_END = object()
_RTP_HEAD = struct.Struct("!BBHII")
# Bytes a viewer's UDP socket may hold unsent (asyncio buffers what the kernel
# refuses) before the direct path skips packets for it: about 0.1 s of Opus.
DIRECT_BACKLOG = 2048


@dataclass(frozen=True, slots=True)
class Encoded:
    """One frame, packetized once for every viewer: RTP payloads and media timestamp."""

    payloads: list[bytes]
    timestamp: int


class Prepacked:
    """Stands in for an `RTCRtpSender`'s encoder: frames arrive already packetized."""

    def pack(self, item: Encoded) -> tuple[list[bytes], int]:
        return item.payloads, item.timestamp

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise TypeError("a relay track carries encoded frames only")


def use_prepacked(sender: Any) -> None:
    """Give a viewer's sender the pass-through encoder (before it sends anything);
    an audio `ViewerTrack` also learns its sender's parameters for `send_direct`."""
    sender._RTCRtpSender__encoder = Prepacked()
    track = sender.track
    if isinstance(track, ViewerTrack) and track.kind == "audio":
        track.attach(sender)


def is_keyframe(codec: str, data: bytes) -> bool:
    """Whether a depayloaded video frame starts a picture a decoder can begin with."""
    if not data:
        return False
    if codec == "vp8":
        # RFC 6386 9.1: bit 0 of the frame tag is 0 for key frames.
        return data[0] & 0x01 == 0
    if codec == "h264":
        # Annex-B NAL units (aiortc's depayloader writes start codes): IDR or SPS.
        i = 0
        while True:
            i = data.find(b"\x00\x00\x01", i)
            if i < 0 or i + 3 >= len(data):
                return False
            if data[i + 3] & 0x1F in (5, 7):
                return True
            i += 3
    return True


class _PassThroughAudioBuffer:
    """Stands in for the receiver's audio jitter buffer: one Opus packet is one
    frame, passed on at once; late or repeated packets are dropped."""

    capacity = 16

    def __init__(self) -> None:
        self._last: int | None = None

    def add(self, packet: Any) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._last is not None and not uint16_gt(seq, self._last):
            return False, None
        self._last = seq
        return False, JitterFrame(data=packet._data, timestamp=packet.timestamp)


class _FrameTap(queue.Queue):
    """Replaces the receiver's decoder queue: frames go to `on_frame` on the event
    loop (where `_handle_rtp_packet` runs); only the final `None` reaches the
    idle decoder thread so it ends the remote track as usual."""

    def __init__(self, on_frame: Callable[[Any, JitterFrame], None]) -> None:
        super().__init__()
        self._on_frame = on_frame

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(None)
            return
        codec, frame = item
        try:
            self._on_frame(codec, frame)
        except Exception:  # noqa: BLE001 - a bad frame must not stop the receiver
            log.exception("relay: frame dropped")


def tap_receiver(receiver: RTCRtpReceiver, relay: PacketRelay) -> None:
    """Route `receiver`'s encoded frames to `relay`; call before the receiver starts
    (from the peer connection's "track" event, which fires in setRemoteDescription)."""
    receiver._RTCRtpReceiver__decoder_queue = _FrameTap(relay.push)  # type: ignore[attr-defined]
    if relay.kind == "audio":
        receiver._RTCRtpReceiver__jitter_buffer = _PassThroughAudioBuffer()  # type: ignore[attr-defined]
    relay.receiver = receiver


@dataclass
class ViewerStats:
    delivered: int = 0
    dropped: int = 0


class ViewerTrack(MediaStreamTrack):
    """What one viewer's `RTCRtpSender` reads: encoded packets from a bounded queue."""

    def __init__(self, relay: PacketRelay, maxlen: int) -> None:
        super().__init__()
        self.kind = relay.kind
        self._relay = relay
        self._queue: deque[Any] = deque(maxlen=max(1, maxlen))
        self._waiter: asyncio.Future[None] | None = None
        self._need_keyframe = relay.kind == "video"
        self._started = False
        self.stats = ViewerStats()
        # Direct path (audio): the sender, its send parameters, and once the
        # viewer's DTLS is up the route: (protect, socket transport, address,
        # first header byte, second header byte, ssrc, header extension bytes).
        self.direct = False
        self._sender: Any = None
        self._params: Any = None
        self._route: tuple[Any, ...] | None = None
        self._seq = random32() % 32768  # lower half: no early wrap (see aiortc)
        self._ts0 = random32()
        self._octets = 0
        self._ended: asyncio.Future[None] | None = None

    def attach(self, sender: Any) -> None:
        """Send this track's packets past `sender`'s RTP loop (its RTCP loop stays)."""
        self.direct = True
        self._sender = sender
        original = sender.send

        async def send(parameters: Any) -> None:
            self._params = parameters
            await original(parameters)

        sender.send = send

    def _resolve(self) -> tuple[Any, ...] | None:
        sender, params = self._sender, self._params
        if sender is None or params is None or not params.codecs:
            return None
        dtls = sender.transport
        if dtls._state != DtlsState.CONNECTED or dtls._tx_srtp is None:
            return None
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None or pair.protocol.transport is None:
            return None
        template = RtpPacket(payload_type=params.codecs[0].payloadType, ssrc=sender._ssrc)
        template.extensions.mid = params.muxId
        head = template.serialize(sender._RTCRtpSender__rtp_header_extensions_map)
        # Marker set on every Opus packet, as aiortc's own sender does.
        return (
            dtls._tx_srtp.protect,
            pair.protocol.transport,
            pair.remote_addr,
            head[0],
            0x80 | params.codecs[0].payloadType,
            sender._ssrc,
            head[12:],
        )

    def send_direct(self, payload: bytes, timestamp: int, ntp: int) -> None:
        """Encrypt and send one Opus packet to this viewer now (see the module doc)."""
        route = self._route
        if route is None:
            route = self._route = self._resolve()
            if route is None:
                return  # not connected yet: nothing to send to
        protect, transport, addr, b0, b1, ssrc, ext = route
        if transport.is_closing():
            self._route = None
            return
        if transport.get_write_buffer_size() > DIRECT_BACKLOG:
            self.stats.dropped += 1
            return
        seq = self._seq
        ts = (self._ts0 + timestamp) & 0xFFFFFFFF
        try:
            transport.sendto(protect(_RTP_HEAD.pack(b0, b1, seq, ts, ssrc) + ext + payload), addr)
        except Exception:  # noqa: BLE001 - a viewer going away must not stop the others
            self._route = None
            self.stats.dropped += 1
            return
        self._seq = (seq + 1) & 0xFFFF
        self._octets += len(payload)
        self.stats.delivered += 1
        # What the sender's RTCP sender reports read.
        sender = self._sender
        sender._RTCRtpSender__packet_count = self.stats.delivered
        sender._RTCRtpSender__octet_count = self._octets
        sender._RTCRtpSender__rtp_timestamp = ts
        sender._RTCRtpSender__ntp_timestamp = ntp

    def offer(self, packet: Encoded, keyframe: bool) -> None:
        if self._need_keyframe:
            if not keyframe:
                self._relay.want_keyframe()
                return
            self._need_keyframe = False
        if len(self._queue) == self._queue.maxlen:
            self.stats.dropped += 1
        self._queue.append(packet)
        self._wake()

    def finish(self) -> None:
        self._queue.append(_END)
        self._wake()
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def recv(self) -> Encoded:
        if self.readyState != "live":
            raise MediaStreamError
        if self.direct:
            # The sender's RTP loop waits here until the track ends; `push`
            # sends past it (`send_direct`).
            if self._ended is None:
                self._ended = asyncio.get_running_loop().create_future()
            await self._ended
            self.stop()
            raise MediaStreamError
        while not self._queue:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None
        if not self._started:
            # The sender starts once DTLS is up: skip what queued meanwhile.
            self._started = True
            if self.kind == "audio":
                while len(self._queue) > 1 and self._queue[0] is not _END:
                    self._queue.popleft()
        item = self._queue.popleft()
        if item is _END:
            self.stop()
            raise MediaStreamError
        self.stats.delivered += 1
        return item

    def stop(self) -> None:
        super().stop()
        self._relay.viewers.discard(self)
        self._route = None
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)


@dataclass
class PacketRelay:
    """One publisher track (audio or video) fanned out to its viewers' tracks."""

    kind: str
    queue_size: int = 8
    codec: Any = None  # RTCRtpCodecParameters of the publisher's stream
    viewers: set[ViewerTrack] = field(default_factory=set)
    receiver: RTCRtpReceiver | None = None
    frames_in: int = 0
    # Other readers of the raw encoded frames (the recorder): called with the frame's bytes.
    consumers: list[Callable[[bytes], None]] = field(default_factory=list)
    _picture_id: int = 0
    _last_pli: float = 0.0
    _ended: bool = False
    _has_first: asyncio.Event = field(default_factory=asyncio.Event)

    def push(self, codec: Any, frame: JitterFrame) -> None:
        """Called for each complete encoded frame from the publisher."""
        if self._ended:
            return
        self.codec = codec
        self.frames_in += 1
        if self.kind == "audio":
            data, timestamp = frame.data, frame.timestamp
            ntp = clock.current_ntp_time()
            item = None
            for viewer in tuple(self.viewers):
                if viewer.direct:
                    viewer.send_direct(data, timestamp, ntp)
                else:
                    if item is None:
                        item = Encoded([data], timestamp)
                    viewer.offer(item, True)
        else:
            name = codec.name.lower()
            keyframe = is_keyframe(name, frame.data)
            item = Encoded(self._packetize(name, frame.data), frame.timestamp)
            for viewer in tuple(self.viewers):
                viewer.offer(item, keyframe)
        for consume in self.consumers:
            consume(frame.data)
        self._has_first.set()

    def _packetize(self, codec: str, data: bytes) -> list[bytes]:
        if codec == "vp8":
            payloads = Vp8Encoder._packetize(data, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
            return payloads
        if codec == "h264":
            return H264Encoder._packetize(H264Encoder._split_bitstream(data))
        return [data]

    def add_viewer(self) -> ViewerTrack:
        track = ViewerTrack(self, self.queue_size)
        self.viewers.add(track)
        if self.kind == "video":
            self.want_keyframe(force=True)
        return track

    def want_keyframe(self, force: bool = False) -> None:
        """Ask the publisher for a keyframe (RTCP PLI), at most once a second."""
        now = time.monotonic()
        if self.receiver is None or (not force and now - self._last_pli < 1.0):
            return
        self._last_pli = now
        sources = self.receiver.getSynchronizationSources()
        for src in sources:
            asyncio.ensure_future(self.receiver._send_rtcp_pli(src.source))

    async def first_frame(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._has_first.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def end(self) -> None:
        self._ended = True
        for viewer in tuple(self.viewers):
            viewer.finish()
        self.viewers.clear()
