"""Audio in and out for detection: any container PyAV can open -> mono float32 at
`SAMPLE_RATE`, plus a streaming window reader for the device agent.

Decoding and resampling are FFmpeg's (through PyAV), so a node and a device
turn the same file into the same samples. `encode_pcm` is the reverse, used
by tests and the benchmark to re-encode excerpts as MP3 or Opus.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from .fingerprint import SAMPLE_RATE

MAX_DECODE_SECONDS = 3 * 3600  # a bound, so a hostile file cannot fill memory


class AudioError(ValueError):
    """The source is not audio PyAV can decode."""


def _open(source: Path | str | bytes | BinaryIO, fmt: str | None = None):
    if isinstance(source, bytes | bytearray | memoryview):
        source = io.BytesIO(bytes(source))
    try:
        return av.open(str(source) if isinstance(source, Path) else source, "r", format=fmt)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise AudioError(f"cannot open audio: {exc}") from None


def iter_pcm(
    source: Path | str | bytes | BinaryIO,
    *,
    sample_rate: int = SAMPLE_RATE,
    fmt: str | None = None,
    max_seconds: float = MAX_DECODE_SECONDS,
) -> Iterator[np.ndarray]:
    """Decoded mono float32 chunks at `sample_rate`, as the decoder yields them."""
    container = _open(source, fmt)
    try:
        streams = container.streams.audio
        if not streams:
            raise AudioError("no audio stream")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        limit = int(max_seconds * sample_rate)
        total = 0
        try:
            for frame in container.decode(streams[0]):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    total += chunk.size
                    yield chunk
                if total >= limit:
                    return
            for out in resampler.resample(None):
                yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        except av.error.FFmpegError as exc:
            raise AudioError(f"cannot decode audio: {exc}") from None
    finally:
        container.close()


def read_pcm(
    source: Path | str | bytes | BinaryIO,
    *,
    sample_rate: int = SAMPLE_RATE,
    fmt: str | None = None,
    max_seconds: float = MAX_DECODE_SECONDS,
) -> np.ndarray:
    """The whole of `source` as mono float32 at `sample_rate` (bounded by `max_seconds`)."""
    chunks = list(iter_pcm(source, sample_rate=sample_rate, fmt=fmt, max_seconds=max_seconds))
    if not chunks:
        return np.zeros(0, np.float32)
    pcm = np.concatenate(chunks)
    return pcm[: int(max_seconds * sample_rate)]


def windows(
    chunks: Iterator[np.ndarray],
    window_s: float,
    hop_s: float | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> Iterator[tuple[int, np.ndarray]]:
    """Fixed windows over a chunk stream: yields (start sample, window samples).

    `hop_s` defaults to the window length (no overlap). A last partial window
    is dropped: the agent waits for more audio instead of sending a short one.
    """
    size = int(window_s * sample_rate)
    hop = int((hop_s or window_s) * sample_rate)
    if size <= 0 or hop <= 0:
        raise ValueError("window and hop must be positive")
    buf = np.zeros(0, np.float32)
    start = 0
    for chunk in chunks:
        buf = np.concatenate([buf, chunk]) if buf.size else chunk
        while buf.size >= size:
            yield start, buf[:size]
            buf = buf[hop:]
            start += hop


def encode_pcm(
    samples: np.ndarray,
    codec: str,
    *,
    sample_rate: int = SAMPLE_RATE,
    bitrate: int = 64_000,
    out_rate: int | None = None,
) -> bytes:
    """Mono float32 samples encoded as `codec` ("mp3", "opus", "flac" or "wav") bytes.

    `out_rate` is the encoded file's rate (Opus is always 48 kHz); resampling
    to it is FFmpeg's, as in a real encoder chain.
    """
    fmt, codec_name, rate = {
        "mp3": ("mp3", "libmp3lame", out_rate or 44_100),
        "opus": ("ogg", "libopus", 48_000),
        "flac": ("flac", "flac", out_rate or sample_rate),
        "wav": ("wav", "pcm_s16le", out_rate or sample_rate),
    }[codec]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec_name, rate=rate)
        stream.layout = "mono"
        if codec in ("mp3", "opus"):
            stream.bit_rate = bitrate
        resampler = av.AudioResampler(format=stream.format, layout="mono", rate=rate)
        frame = av.AudioFrame.from_ndarray(
            np.clip(samples, -1, 1).astype(np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = sample_rate
        frame.pts = None
        for f in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(f):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
