"""Synthesized music for tests, benchmarks and the demo: no binary fixtures anywhere.

`master(seconds)` is a few bars of chords with a beat and a little noise (so
encoders work as hard as on real music, not on a pure tone); `encode()` writes
it in any accepted format with optional tags and an embedded cover.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

# format -> (PyAV muxer, codec, file extension)
FORMATS: dict[str, tuple[str, str, str]] = {
    "wav": ("wav", "pcm_s16le", "wav"),
    "flac": ("flac", "flac", "flac"),
    "aiff": ("aiff", "pcm_s16be", "aiff"),
    "mp3": ("mp3", "libmp3lame", "mp3"),
    "opus": ("ogg", "libopus", "ogg"),
    "m4a": ("ipod", "aac", "m4a"),
}
CHORDS = ((220.0, 277.18, 329.63), (196.0, 246.94, 293.66), (174.61, 220.0, 261.63))


def master(
    seconds: float, rate: int = 44100, channels: int = 2, seed: int = 1, key: float = 1.0
) -> np.ndarray:
    """Planar float32 (channels x samples): chords changing every 2 s over a kick each 0.5 s."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    t = np.arange(n, dtype=np.float64) / rate
    out = np.zeros(n)
    for i, chord in enumerate(CHORDS * (int(seconds // 6) + 1)):
        lo, hi = int(i * 2 * rate), min(int((i + 1) * 2 * rate), n)
        if lo >= n:
            break
        seg = t[lo:hi]
        out[lo:hi] = sum(np.sin(2 * np.pi * f * key * seg) for f in chord) / 6
    beat = np.exp(-((t % 0.5) * 30)) * np.sin(2 * np.pi * 55 * t) * 0.3
    out = out + beat + rng.standard_normal(n) * 0.01
    out *= 0.8 / max(1e-9, np.abs(out).max())
    if channels == 1:
        return out[None, :].astype(np.float32)
    right = np.roll(out, rate // 100)
    return np.stack([out, right][:channels]).astype(np.float32)


def encode(
    samples: np.ndarray,
    fmt: str,
    rate: int = 44100,
    *,
    tags: dict[str, str] | None = None,
    cover: bytes | None = None,
) -> bytes:
    """The samples as a file of `fmt` (see FORMATS), tagged, with a cover if given."""
    import av

    muxer, codec, ext = FORMATS[fmt]
    channels = samples.shape[0]
    layout = "mono" if channels == 1 else "stereo"
    fd, name = tempfile.mkstemp(suffix="." + ext)
    os.close(fd)
    path = Path(name)
    try:
        with av.open(name, "w", format=muxer) as c:
            stream = c.add_stream(codec, rate=48000 if codec == "libopus" else rate)
            stream.layout = layout
            if codec in ("libmp3lame", "aac"):
                stream.bit_rate = 192_000
            for i in range(0, samples.shape[1], 4096):
                chunk = np.ascontiguousarray(samples[:, i : i + 4096])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
                frame.sample_rate = rate
                frame.pts = i
                for packet in stream.encode(frame):
                    c.mux(packet)
            for packet in stream.encode(None):
                c.mux(packet)
        if tags or cover:
            _tag(path, fmt, tags or {}, cover)
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def _tag(path: Path, fmt: str, tags: dict[str, str], cover: bytes | None) -> None:
    import mutagen
    from mutagen.flac import Picture

    if fmt in ("mp3", "wav", "aiff"):
        from mutagen import id3

        f = mutagen.File(str(path))
        if f.tags is None:
            f.add_tags()
        frames = {
            "title": id3.TIT2,
            "artist": id3.TPE1,
            "album": id3.TALB,
            "albumartist": id3.TPE2,
            "tracknumber": id3.TRCK,
            "date": id3.TDRC,
            "genre": id3.TCON,
            "isrc": id3.TSRC,
        }
        for k, v in tags.items():
            f.tags.add(frames[k](encoding=3, text=[v]))
        if cover:
            f.tags.add(id3.APIC(encoding=3, mime="image/png", type=3, desc="cover", data=cover))
        f.save()
        return
    f = mutagen.File(str(path))
    if fmt == "m4a":
        names = {
            "title": "\xa9nam",
            "artist": "\xa9ART",
            "album": "\xa9alb",
            "albumartist": "aART",
            "date": "\xa9day",
            "genre": "\xa9gen",
        }
        if f.tags is None:
            f.add_tags()
        for k, v in tags.items():
            if k == "tracknumber":
                f.tags["trkn"] = [(int(v), 0)]
            elif k in names:
                f.tags[names[k]] = [v]
        if cover:
            from mutagen.mp4 import MP4Cover

            f.tags["covr"] = [MP4Cover(cover, imageformat=MP4Cover.FORMAT_PNG)]
        f.save()
        return
    for k, v in tags.items():  # FLAC and Ogg: Vorbis comments
        f[k] = [v]
    if cover:
        pic = Picture()
        pic.type, pic.mime, pic.data = 3, "image/png", cover
        if fmt == "flac":
            f.add_picture(pic)
        else:
            import base64

            f["metadata_block_picture"] = [base64.b64encode(pic.write()).decode("ascii")]
    f.save()


def cover_png(size: int = 800, hue: int = 0) -> bytes:
    """A square gradient picture, PNG."""
    from PIL import Image

    x = np.linspace(0, 255, size, dtype=np.uint8)
    rgb = np.stack(
        [
            np.tile(x, (size, 1)),
            np.tile(x[:, None], (1, size)),
            np.full((size, size), hue, np.uint8),
        ],
        axis=-1,
    )
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "PNG")
    return buf.getvalue()
