"""A listener whose connection backs up skips packets instead of falling behind:
the relay never queues audio for a viewer past a small bound, so once the
connection drains the listener hears the live sound again, not old sound."""

from __future__ import annotations

import struct
from types import SimpleNamespace

from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcdtlstransport import State
from aiortc.rtp import HeaderExtensionsMap

from media.live.relay import DIRECT_BACKLOG, PacketRelay, use_prepacked


class Socket:
    """Stands in for a viewer's UDP transport: records datagrams, a settable backlog."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.backlog = 0

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.backlog

    def sendto(self, data: bytes, addr) -> None:
        self.sent.append(data)


def viewer_on(relay: PacketRelay, sock: Socket):
    track = relay.add_viewer()
    pair = SimpleNamespace(protocol=SimpleNamespace(transport=sock), remote_addr=("127.0.0.1", 9))
    ice = SimpleNamespace(_connection=SimpleNamespace(_nominated={1: pair}))
    dtls = SimpleNamespace(
        _state=State.CONNECTED, _tx_srtp=SimpleNamespace(protect=lambda b: b), transport=ice
    )

    class Sender:
        _ssrc = 0x1234

        def __init__(self) -> None:
            self.track = track
            self.transport = dtls
            self._RTCRtpSender__rtp_header_extensions_map = HeaderExtensionsMap()

        async def send(self, parameters) -> None:
            pass

    sender = Sender()
    use_prepacked(sender)
    return track, sender


async def test_a_backed_up_listener_skips_packets_and_resumes_live():
    relay = PacketRelay("audio")
    sock = Socket()
    track, sender = viewer_on(relay, sock)
    codec = SimpleNamespace(name="opus", payloadType=111)
    await sender.send(SimpleNamespace(codecs=[codec], muxId="0"))

    def frame(i: int) -> JitterFrame:
        return JitterFrame(data=bytes([i]) * 10, timestamp=i * 960)

    for i in range(3):
        relay.push(codec, frame(i))
    assert [p[-10:] for p in sock.sent] == [bytes([i]) * 10 for i in range(3)]
    seqs = [struct.unpack("!H", p[2:4])[0] for p in sock.sent]
    assert seqs == [seqs[0], seqs[0] + 1, seqs[0] + 2]
    assert {struct.unpack("!I", p[8:12])[0] for p in sock.sent} == {0x1234}
    assert {p[1] & 0x7F for p in sock.sent} == {111}

    # The connection backs up: nothing more is queued for this listener.
    sock.backlog = DIRECT_BACKLOG + 1
    for i in range(3, 53):
        relay.push(codec, frame(i))
    assert len(sock.sent) == 3
    assert track.stats.dropped == 50

    # It drains: the next packet is the live one, numbered right after the last sent.
    sock.backlog = 0
    relay.push(codec, frame(53))
    assert sock.sent[-1][-10:] == bytes([53]) * 10
    assert struct.unpack("!H", sock.sent[-1][2:4])[0] == seqs[0] + 3
