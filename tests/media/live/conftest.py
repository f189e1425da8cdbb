"""Helpers for the live stories: a tone source, a tone detector, WHIP/WHEP calls."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import AsyncIterator

import aiohttp
import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack

RATE = 48000
FRAME = 960  # 20 ms


class ToneTrack(MediaStreamTrack):
    """A sine tone, paced in real time like a microphone."""

    kind = "audio"

    def __init__(self, freq: float = 440.0, amplitude: float = 0.5) -> None:
        super().__init__()
        self.freq = freq
        self.amplitude = amplitude
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._pts / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        t = (np.arange(FRAME) + self._pts) / RATE
        samples = (self.amplitude * 32767 * np.sin(2 * np.pi * self.freq * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, RATE)
        self._pts += FRAME
        return frame


def dominant_hz(frames: list[av.AudioFrame]) -> float:
    """The loudest frequency across decoded frames (FFT peak), first channel."""
    chunks = []
    for f in frames:
        a = f.to_ndarray()
        if a.ndim == 2 and f.format.is_packed:
            a = a.reshape(-1, len(f.layout.channels))[:, 0]
        elif a.ndim == 2:
            a = a[0]
        chunks.append(a.astype(np.float64))
    signal = np.concatenate(chunks)
    rate = frames[0].sample_rate
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return float(np.fft.rfftfreq(len(signal), 1 / rate)[int(np.argmax(spectrum))])


async def collect(
    track: MediaStreamTrack, count: int, timeout: float = 20.0
) -> list[av.AudioFrame]:
    frames = []

    async def run() -> None:
        while len(frames) < count:
            frames.append(await track.recv())

    await asyncio.wait_for(run(), timeout)
    return frames


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def offer_sdp(kinds: tuple[str, ...] = ("audio",), direction: str = "sendonly") -> str:
    """A real offer from aiortc, for conformance tests that only need the text."""

    async def make() -> str:
        from aiortc import RTCConfiguration, RTCPeerConnection

        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        for kind in kinds:
            pc.addTransceiver(kind, direction=direction)
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return make()
