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
- A viewer's queue drops its oldest frame when full, so a slow or late
  viewer never builds a backlog and latency does not climb after loss; a
  new viewer starts from the newest frame (audio) or the next keyframe
  (video, which is asked of the publisher with a PLI when a viewer joins).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCRtpReceiver
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.utils import uint16_gt

log = logging.getLogger("nycmg.live.relay")

_END = object()


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
    """Give a viewer's sender the pass-through encoder (before it sends anything)."""
    sender._RTCRtpSender__encoder = Prepacked()


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

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def recv(self) -> Encoded:
        if self.readyState != "live":
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
        name = codec.name.lower()
        keyframe = self.kind == "audio" or is_keyframe(name, frame.data)
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
