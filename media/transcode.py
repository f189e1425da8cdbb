"""The transcode ladder: one master in, the renditions players ask for out.

| quality | file       | codec            | bitrate  |
| ------- | ---------- | ---------------- | -------- |
| opus    | opus.ogg   | Opus in Ogg      | 160 kbps |
| mp3_320 | mp3_320.mp3| MP3 (LAME)       | 320 kbps |
| mp3_128 | mp3_128.mp3| MP3 (LAME)       | 128 kbps |
| preview | preview.mp3| MP3, 30 s, fades | 128 kbps |

plus the integrated loudness (EBU R128) and the waveform peaks JSON.

The master is decoded once per task and every frame is fed to each encoder
(PyAV re-chunks and resamples per encoder). The work is split into two
tasks, `PARTS`, that a process pool runs side by side. The two LAME encodes
cost about the same (measured: ~30x real time each per core, Opus ~70x, the
analysis ~400x), so each task gets one and the rest is split to even them
out. Functions here take
and return plain values so that they run in worker processes; they write
files into a local directory and the pipeline stores them.
"""

from __future__ import annotations

import json
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
# Two tasks of about equal CPU cost; "analysis" is loudness + waveform.
PARTS: tuple[tuple[str, ...], ...] = (("mp3_320", "preview", "analysis"), ("opus", "mp3_128"))
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


class _Output:
    def __init__(self, rendition: Rendition, path: Path, rate: int, layout: str) -> None:
        import av

        self.rendition = rendition
        self.path = path
        self.container = av.open(str(path), "w", format=rendition.container)
        if rendition.codec == "libopus":
            out_rate = 48000
        else:
            out_rate = rate if rate in MP3_RATES else (48000 if rate > 48000 else 44100)
        # LAME's quality 7 ("fast") is about twice as fast as its default 3 and
        # indistinguishable at these bitrates; Opus keeps its default complexity.
        options = {"compression_level": "7"} if rendition.codec == "libmp3lame" else {}
        self.stream = self.container.add_stream(rendition.codec, rate=out_rate, options=options)
        self.stream.layout = layout
        self.stream.bit_rate = rendition.bitrate

    def write(self, frame: Any) -> None:
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()


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

    Returns {"files": {quality: description}, and with "analysis":
    "loudness_lufs", "waveform" (the JSON file's name), "duration_ms"}.
    """
    import av

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"files": {}}
    with av.open(source, metadata_errors="ignore") as container:
        stream = container.streams.audio[0]
        src_channels = stream.codec_context.channels or 2
        layout = "mono" if src_channels == 1 else "stereo"
        channels = 1 if layout == "mono" else 2
        rate = stream.codec_context.sample_rate or 44100
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        outputs = [
            _Output(RENDITIONS[q], out / RENDITIONS[q].filename, rate, layout)
            for q in part
            if q in RENDITIONS and q != "preview"
        ]
        preview = (
            _Output(RENDITIONS["preview"], out / RENDITIONS["preview"].filename, rate, layout)
            if "preview" in part
            else None
        )
        p_start, p_end = preview_window(duration_ms)
        p_start_s, p_end_s = p_start * rate // 1000, p_end * rate // 1000
        fade = int(PREVIEW_FADE_SECONDS * rate)
        loud = LoudnessMeter(rate, channels) if "analysis" in part else None
        peaks = PeakMeter(rate) if "analysis" in part else None
        position = 0
        for decoded in container.decode(stream):
            for frame in resampler.resample(decoded):
                n = frame.samples
                for o in outputs:
                    o.write(frame)
                if loud is not None or (
                    preview and position + n > p_start_s and position < p_end_s
                ):
                    planar = frame.to_ndarray()
                    if loud is not None:
                        loud.add(planar)
                        peaks.add(planar)
                    if preview and position + n > p_start_s and position < p_end_s:
                        preview.write(
                            _preview_frame(planar, position, p_start_s, p_end_s, fade, rate, layout)
                        )
                position += n
        for frame in resampler.resample(None):
            for o in outputs:
                o.write(frame)
    for o in outputs + ([preview] if preview else []):
        o.close()
        result["files"][o.rendition.quality] = describe(o.path, o.rendition)
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
    return result


def _preview_frame(
    planar: np.ndarray, position: int, start: int, end: int, fade: int, rate: int, layout: str
) -> Any:
    """The part of a frame inside the preview window, faded in and out at its edges."""
    import av

    lo, hi = max(start - position, 0), min(end - position, planar.shape[1])
    chunk = np.ascontiguousarray(planar[:, lo:hi], dtype=np.float32)
    idx = np.arange(position + lo, position + hi)
    gain = np.minimum(np.minimum((idx - start) / fade, (end - idx) / fade), 1.0)
    chunk *= np.clip(gain, 0.0, 1.0).astype(np.float32)
    frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
    frame.sample_rate = rate
    frame.pts = position + lo - start
    return frame


def run_ladder(source: str, out_dir: str, duration_ms: int) -> dict[str, Any]:
    """Every part in this process, one after another (the CLI and tests without a pool)."""
    merged: dict[str, Any] = {"files": {}}
    for part in PARTS:
        r = run_part(source, out_dir, part, duration_ms)
        merged["files"].update(r.pop("files"))
        merged.update(r)
    return merged
