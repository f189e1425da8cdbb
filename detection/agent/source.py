"""Audio in for the agent: a file, a stream URL or stdin, as mono float32 chunks
at the fingerprint rate.

Containers and codecs go through PyAV (detection.audio). Raw PCM (`--format
s16le`, the output of `arecord -t raw` or `ffmpeg -f s16le`) is read here so
its rate and channel count come from the command line.
"""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from ..audio import iter_pcm
from ..fingerprint import SAMPLE_RATE

RAW_FORMATS = {"s16le": np.dtype("<i2")}
RAW_CHUNK_SECONDS = 0.5


def input_key(spec: str) -> str:
    """Identity of an input, for resuming: a file by path, size and mtime; a
    stream or stdin is new every run (what was not heard cannot be replayed)."""
    if spec != "-" and "://" not in spec:
        p = Path(spec).resolve()
        st = p.stat()
        return "file:" + hashlib.sha256(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
    return f"live:{spec}:{time.time_ns()}"


def is_seekable(spec: str) -> bool:
    return spec != "-" and "://" not in spec


def chunks(spec: str, fmt: str | None, rate: int, channels: int) -> Iterator[np.ndarray]:
    """Mono float32 chunks at SAMPLE_RATE from `spec` ("-" is stdin)."""
    if fmt in RAW_FORMATS:
        stream: BinaryIO = sys.stdin.buffer if spec == "-" else open(spec, "rb")  # noqa: SIM115
        try:
            yield from _raw(stream, RAW_FORMATS[fmt], rate, channels)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        return
    source = sys.stdin.buffer if spec == "-" else spec
    yield from iter_pcm(source, sample_rate=SAMPLE_RATE, fmt=fmt)


def _raw(stream: BinaryIO, dtype: np.dtype, rate: int, channels: int) -> Iterator[np.ndarray]:
    frame_bytes = dtype.itemsize * channels
    want = max(frame_bytes, int(rate * RAW_CHUNK_SECONDS) * frame_bytes)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    rest = b""
    while True:
        data = stream.read(want)
        if not data:
            break
        data = rest + data
        usable = len(data) - len(data) % frame_bytes
        data, rest = data[:usable], data[usable:]
        if not data:
            continue
        pcm = np.frombuffer(data, dtype).astype(np.float32) / 32768.0
        mono = pcm.reshape(-1, channels).mean(axis=1).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        for out in resampler.resample(frame):
            yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
    for out in resampler.resample(None):
        yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
