"""Is this upload really audio we accept? Decided by decoding it, not by its name.

`probe(path)` opens the file with PyAV (FFmpeg), checks that the container
and codec are ones we accept (WAV, FLAC, AIFF, MP3, Ogg/Opus or Vorbis,
M4A/AAC or ALAC), bounds the declared duration before any decoding, then
decodes every frame: a corrupt stream raises, a truncated one decodes to
less than its header declares, a disguised one (a PNG called .mp3) has no
audio stream at all. It runs in a worker process (CPU-bound), so it takes
plain arguments and returns a plain, picklable dataclass.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Container name (as FFmpeg's demuxer reports it) -> (extension, MIME type).
CONTAINERS: dict[str, tuple[str, str]] = {
    "wav": ("wav", "audio/wav"),
    "flac": ("flac", "audio/flac"),
    "aiff": ("aiff", "audio/aiff"),
    "mp3": ("mp3", "audio/mpeg"),
    "ogg": ("ogg", "audio/ogg"),
    "mov,mp4,m4a,3gp,3g2,mj2": ("m4a", "audio/mp4"),
}
# Decoders we accept inside those containers (FFmpeg names).
CODECS = {
    "flac",
    "mp3",
    "mp3float",
    "opus",
    "libopus",
    "vorbis",
    "aac",
    "alac",
}
ACCEPTED_NAMES = "WAV, FLAC, AIFF, MP3, Ogg (Opus or Vorbis) or M4A (AAC or ALAC)"
# A decoded stream shorter than this share of what its header declares was cut off.
TRUNCATION_SHARE = 0.97
MIN_DURATION_MS = 500


class ProbeError(Exception):
    """The upload is not audio we accept. `kind` is "unsupported" (415) or "invalid" (422)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail

    def __reduce__(self):  # keep both arguments across the process boundary
        return (ProbeError, (self.kind, self.detail))


@dataclass(frozen=True)
class Probe:
    container: str
    codec: str
    ext: str
    mime: str
    sample_rate: int
    channels: int
    bitrate: int
    duration_ms: int
    declared_ms: int | None
    size: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def probe(path: str | Path, max_duration_seconds: float) -> Probe:
    """Decode `path` completely and describe it, or raise ProbeError saying why not."""
    import av

    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise ProbeError("invalid", "the file is empty")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        raise ProbeError(
            "unsupported", f"this is not an audio file we can read; send {ACCEPTED_NAMES}"
        ) from None
    with container:
        fmt = container.format.name
        streams = [s for s in container.streams.audio]
        if fmt not in CONTAINERS or not streams:
            what = "no audio in it" if not streams else f"a {fmt} file"
            raise ProbeError("unsupported", f"this is {what}; send {ACCEPTED_NAMES}")
        stream = streams[0]
        codec = stream.codec_context.name
        if codec not in CODECS and not codec.startswith("pcm_"):
            raise ProbeError("unsupported", f"audio coded as {codec} is not accepted")
        declared = _declared_ms(container, stream)
        limit_ms = int(max_duration_seconds * 1000)
        if declared is not None and declared > limit_ms:
            raise ProbeError("invalid", _too_long(declared, limit_ms))
        rate = stream.codec_context.sample_rate or 0
        channels = stream.codec_context.channels or 0
        bitrate = int(container.bit_rate or stream.bit_rate or 0)
        samples = 0
        try:
            for frame in container.decode(stream):
                samples += frame.samples
                rate = frame.sample_rate or rate
                if rate and samples * 1000 // rate > limit_ms:
                    raise ProbeError("invalid", _too_long(samples * 1000 // rate, limit_ms))
        except av.error.FFmpegError as e:
            raise ProbeError(
                "invalid", f"the audio is corrupt and cannot be decoded ({e})"
            ) from None
    if not rate or not channels:
        raise ProbeError("invalid", "the audio stream has no sample rate or channels")
    decoded = samples * 1000 // rate
    if decoded < MIN_DURATION_MS:
        raise ProbeError("invalid", "the file holds no audio (or less than half a second)")
    missing = _missing_pcm_bytes(path, fmt, size)
    if missing > 0:
        raise ProbeError(
            "invalid",
            f"the file is truncated: its header promises {missing} more bytes of audio than it holds",
        )
    if declared is not None and decoded < declared * TRUNCATION_SHARE - 100:
        raise ProbeError(
            "invalid",
            f"the file is truncated: its header says {declared / 1000:.1f} s "
            f"but only {decoded / 1000:.1f} s could be decoded",
        )
    ext, mime = CONTAINERS[fmt]
    return Probe(
        container=fmt,
        codec=codec,
        ext=ext,
        mime=mime,
        sample_rate=int(rate),
        channels=int(channels),
        bitrate=bitrate,
        duration_ms=int(decoded),
        declared_ms=declared,
        size=size,
        sha256=sha256_of(path),
    )


def _declared_ms(container: Any, stream: Any) -> int | None:
    """What the header says; MP3 without a Xing header only has an estimate, so it is skipped."""
    if container.format.name == "mp3":
        return None
    if stream.duration is not None and stream.time_base is not None:
        return int(stream.duration * stream.time_base * 1000)
    if container.duration is not None:
        return int(container.duration // 1000)
    return None


def _missing_pcm_bytes(path: Path, fmt: str, size: int) -> int:
    """How many bytes a WAV's `data` or an AIFF's `SSND` chunk claims beyond the file's end.

    FFmpeg quietly decodes what is there, so a cut-off WAV looks whole to it;
    the chunk header still tells. Streaming writers put 0 or 0xFFFFFFFF there
    ("unknown"), which is not counted as truncation.
    """
    if fmt not in ("wav", "aiff"):
        return 0
    big = fmt == "aiff"
    want = b"SSND" if big else b"data"
    with open(path, "rb") as f:
        f.read(12)  # RIFF|FORM, size, WAVE|AIFF
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            if len(chunk) < 8:
                return 0
            length = int.from_bytes(chunk[4:], "big" if big else "little")
            if chunk[:4] == want:
                if length in (0, 0xFFFFFFFF):
                    return 0
                return max(0, pos + 8 + length - size)
            pos += 8 + length + (length & 1)
    return 0


def _clock(ms: int) -> str:
    s = ms // 1000
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def _too_long(ms: int, limit_ms: int) -> str:
    return (
        f"the audio is too long ({_clock(ms)} or more; this node accepts up to {_clock(limit_ms)})"
    )
