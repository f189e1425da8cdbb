"""The transcode ladder: one master in, the renditions players ask for out.

| quality | file       | codec            | bitrate  |
| ------- | ---------- | ---------------- | -------- |
| opus    | opus.ogg   | Opus in Ogg      | 160 kbps |
| mp3_320 | mp3_320.mp3| MP3 (LAME)       | 320 kbps |
| mp3_128 | mp3_128.mp3| MP3 (LAME)       | 128 kbps |
| preview | preview.mp3| MP3, 30 s, fades | 128 kbps |

plus the integrated loudness (EBU R128) and the waveform peaks JSON.

The master is decoded once, in blocks of `BLOCK` samples of planar float32
(numpy). Each block goes to one thread per encoder (bounded queues: a long
master never sits in memory whole) and to the loudness and peak meters in
the decoding thread. PyAV releases the GIL inside the codecs, so the
encoder threads share the cores: the ladder is one task (`PARTS`) that uses
every core it can get, and the work balances itself (a static split into
processes left one core idle while the other finished its half; measured:
LAME ~45x real time per core at quality 7, Opus ~100x, decoding ~400x, the
analysis ~900x). Functions here take and return plain values so that they
run in worker processes; they write files into a local directory and the
pipeline stores them.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .loudness import LoudnessMeter, PeakMeter


@dataclass(frozen=True)
class Rendition:
    quality: str
    filename: str
    container: str
    codec: str
    bitrate: int
    mime: str


RENDITIONS = {
    "opus": Rendition("opus", "opus.ogg", "ogg", "libopus", 160_000, "audio/ogg"),
    "mp3_320": Rendition("mp3_320", "mp3_320.mp3", "mp3", "libmp3lame", 320_000, "audio/mpeg"),
    "mp3_128": Rendition("mp3_128", "mp3_128.mp3", "mp3", "libmp3lame", 128_000, "audio/mpeg"),
    "preview": Rendition("preview", "preview.mp3", "mp3", "libmp3lame", 128_000, "audio/mpeg"),
}
# One task: its encoder threads spread over the cores (see the module docstring).
# "analysis" is loudness + waveform.
PARTS: tuple[tuple[str, ...], ...] = (("opus", "mp3_320", "mp3_128", "preview", "analysis"),)
# Samples per decoded block (~0.74 s at 44.1 kHz): few enough Python calls per
# encoder that the GIL is seldom in the way, small enough to bound memory.
BLOCK = 32768
# Blocks an encoder may lag behind the decoder (~24 s of stereo 44.1 kHz, 8 MB).
QUEUE_BLOCKS = 32
PREVIEW_SECONDS = 30
PREVIEW_FADE_SECONDS = 1.0
WAVEFORM_POINTS = 1000
MP3_RATES = (32000, 44100, 48000)


def preview_window(duration_ms: int, seconds: int = PREVIEW_SECONDS) -> tuple[int, int]:
    """(start_ms, end_ms): the whole track when short, else 30 s from a third of the way in."""
    length = seconds * 1000
    if duration_ms <= length:
        return 0, duration_ms
    start = min(duration_ms // 3, duration_ms - length)
    return start, start + length


def lame_options(r: Rendition) -> dict[str, str]:
    """Encoder options: LAME fast and, at 320 kbps, plain stereo; Opus as it comes.

    LAME's quality 7 ("fast") is about twice as fast as its default 3 and
    indistinguishable at these bitrates. Joint stereo (mid/side) costs LAME
    a fifth more time for its second psychoacoustic pass; it pays at 128
    kbps, where bits are short, but at 320 kbps each channel has 160 kbps
    of its own, so that rendition is coded L/R. Opus keeps its default
    complexity (10; it is not the bottleneck).
    """
    if r.codec != "libmp3lame":
        return {}
    options = {"compression_level": "7"}
    if r.bitrate >= 256_000:
        options["joint_stereo"] = "0"
    return options


class _Encoder:
    """One rendition written by its own thread from the blocks `put` to it.

    The blocks are shared with the other encoders and only read here. An
    error is kept (`error`) and the queue still drained, so the decoder never
    waits on a dead encoder.
    """

    def __init__(self, rendition: Rendition, path: Path, rate: int, layout: str) -> None:
        self.rendition = rendition
        self.path = path
        self.rate = rate
        self.layout = layout
        self.cpu = 0.0
        self.error: BaseException | None = None
        self.queue: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue(QUEUE_BLOCKS)
        self.thread = threading.Thread(
            target=self._run, name=f"encode-{rendition.quality}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def put(self, planar: np.ndarray, pts: int) -> None:
        self.queue.put((planar, pts))

    def finish(self) -> None:
        """No more blocks: flush, close the file and wait for the thread."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()

    def _open(self) -> tuple[Any, Any]:
        import av

        r = self.rendition
        container = av.open(str(self.path), "w", format=r.container)
        if r.codec == "libopus":
            out_rate = 48000
        else:
            rate = self.rate
            out_rate = rate if rate in MP3_RATES else (48000 if rate > 48000 else 44100)
        stream = container.add_stream(r.codec, rate=out_rate, options=lame_options(r))
        stream.layout = self.layout
        stream.bit_rate = r.bitrate
        return container, stream

    def _run(self) -> None:
        import av

        started = time.thread_time()
        container = None
        try:
            container, stream = self._open()
            while (item := self.queue.get()) is not None:
                planar, pts = item
                frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=self.layout)
                frame.sample_rate = self.rate
                frame.pts = pts
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
            container.close()
            container = None
        except BaseException as e:  # noqa: BLE001 - handed to the caller in run_part
            self.error = e
            while self.queue.get() is not None:
                pass
        finally:
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()
            self.cpu = time.thread_time() - started


def describe(path: Path, rendition: Rendition) -> dict[str, Any]:
    """What a reader needs to know of one output, read back from the file itself."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        duration = (
            int(s.duration * s.time_base * 1000)
            if s.duration is not None and c.format.name != "mp3"
            else int((c.duration or 0) // 1000)
        )
        return {
            "mime": rendition.mime,
            "size": path.stat().st_size,
            "codec": s.codec_context.name.replace("mp3float", "mp3"),
            "bitrate": rendition.bitrate,
            "sample_rate": s.codec_context.sample_rate,
            "channels": s.codec_context.channels,
            "duration_ms": duration,
        }


def run_part(source: str, out_dir: str, part: tuple[str, ...], duration_ms: int) -> dict[str, Any]:
    """Decode `source` once and produce `part`'s outputs in `out_dir`.

    Returns {"files": {quality: description}, "cpu": {what: thread CPU
    seconds}, and with "analysis": "loudness_lufs", "waveform" (the JSON
    file's name), "duration_ms"}.
    """
    import av

    started = time.thread_time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"files": {}, "cpu": {}}
    encoders: list[_Encoder] = []
    try:
        with av.open(source, metadata_errors="ignore") as container:
            stream = container.streams.audio[0]
            src_channels = stream.codec_context.channels or 2
            layout = "mono" if src_channels == 1 else "stereo"
            channels = 1 if layout == "mono" else 2
            rate = stream.codec_context.sample_rate or 44100
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate, frame_size=BLOCK)
            encoders = [
                _Encoder(RENDITIONS[q], out / RENDITIONS[q].filename, rate, layout)
                for q in part
                if q in RENDITIONS
            ]
            preview = next((e for e in encoders if e.rendition.quality == "preview"), None)
            full = [e for e in encoders if e is not preview]
            for e in encoders:
                e.start()
            p_start, p_end = preview_window(duration_ms)
            p_start_s, p_end_s = p_start * rate // 1000, p_end * rate // 1000
            fade = int(PREVIEW_FADE_SECONDS * rate)
            loud = LoudnessMeter(rate, channels) if "analysis" in part else None
            peaks = PeakMeter(rate) if "analysis" in part else None
            position = 0

            def feed(frames: list[Any]) -> None:
                nonlocal position
                for frame in frames:
                    planar = frame.to_ndarray()
                    n = planar.shape[1]
                    for e in full:
                        e.put(planar, position)
                    if preview is not None and position + n > p_start_s and position < p_end_s:
                        preview.put(
                            _preview_chunk(planar, position, p_start_s, p_end_s, fade),
                            max(position - p_start_s, 0),
                        )
                    if loud is not None:
                        loud.add(planar)
                        peaks.add(planar)
                    position += n

            for decoded in container.decode(stream):
                feed(resampler.resample(decoded))
            feed(resampler.resample(None))
    finally:
        for e in encoders:
            e.finish()
    for e in encoders:
        if e.error is not None:
            raise e.error
        result["files"][e.rendition.quality] = describe(e.path, e.rendition)
        result["cpu"][e.rendition.quality] = round(e.cpu, 3)
    if loud is not None:
        result["loudness_lufs"] = loud.integrated()
        result["duration_ms"] = position * 1000 // rate
        waveform = {
            "version": 1,
            "duration_ms": position * 1000 // rate,
            "length": 0,
            "peaks": peaks.points(WAVEFORM_POINTS),
        }
        waveform["length"] = len(waveform["peaks"])
        (out / "waveform.json").write_text(json.dumps(waveform, separators=(",", ":")))
        result["waveform"] = "waveform.json"
    result["cpu"]["decode"] = round(time.thread_time() - started, 3)
    return result


def _preview_chunk(
    planar: np.ndarray, position: int, start: int, end: int, fade: int
) -> np.ndarray:
    """The part of a block inside the preview window, faded in and out at its edges."""
    lo, hi = max(start - position, 0), min(end - position, planar.shape[1])
    chunk = np.array(planar[:, lo:hi], dtype=np.float32)  # a copy: the block is shared
    idx = np.arange(position + lo, position + hi)
    gain = np.minimum(np.minimum((idx - start) / fade, (end - idx) / fade), 1.0)
    chunk *= np.clip(gain, 0.0, 1.0).astype(np.float32)
    return chunk


def run_ladder(source: str, out_dir: str, duration_ms: int) -> dict[str, Any]:
    """Every part in this process, one after another (the CLI and tests without a pool)."""
    merged: dict[str, Any] = {"files": {}}
    for part in PARTS:
        r = run_part(source, out_dir, part, duration_ms)
        merged["files"].update(r.pop("files"))
        merged.update(r)
    return merged
