"""Tags and embedded cover art of an audio file, read with mutagen.

Only what the catalog uses: title, artist, album, album artist, track and
disc numbers, year, genre, ISRC, and the first embedded picture (ID3 APIC,
FLAC/Vorbis picture blocks, MP4 `covr`). Tags are untrusted text: every
value is trimmed and bounded here; a file whose tags cannot be parsed simply
has none.
"""

from __future__ import annotations

import base64
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_TEXT = 200
MAX_PICTURE_BYTES = 20 * 1024 * 1024
_ISRC = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}\d{7}$")


@dataclass
class Tags:
    title: str = ""
    artist: str = ""
    album: str = ""
    album_artist: str = ""
    track_number: int | None = None
    disc_number: int | None = None
    year: int | None = None
    genres: list[str] = field(default_factory=list)
    isrc: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: Any) -> str:
    if isinstance(value, list):
        value = value[0] if value else ""
    text = str(value).replace("\x00", " ").strip()
    return " ".join(text.split())[:MAX_TEXT]


def _number(value: Any) -> int | None:
    """'3', '3/12' and ID3's (3, 12) all mean 3."""
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, tuple):
        value = value[0]
    m = re.match(r"\s*(\d{1,4})", str(value or ""))
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


def read_tags(path: str | Path) -> Tags:
    """The file's tags; empty when it has none or they cannot be parsed."""
    import mutagen

    try:
        easy = mutagen.File(str(path), easy=True)
    except Exception:  # noqa: BLE001 - a malformed tag block is not a reason to refuse the audio
        return Tags()
    if easy is None or easy.tags is None:
        return Tags()
    t = easy.tags
    if not hasattr(t, "valid_keys") and _is_id3(t):
        t = _easy_view(t)  # WAV and AIFF carry plain ID3, which easy=True leaves alone

    def get(*keys: str) -> Any:
        for k in keys:
            try:
                if k in t and t[k]:
                    return t[k]
            except (KeyError, ValueError, TypeError):
                continue
        return None

    year = _number(get("date", "year", "originaldate"))
    isrc = _text(get("isrc") or "").upper().replace("-", "")
    genres = [g for g in (_text(x)[:40] for x in (get("genre") or [])) if g][:10]
    return Tags(
        title=_text(get("title") or ""),
        artist=_text(get("artist") or ""),
        album=_text(get("album") or ""),
        album_artist=_text(get("albumartist", "album artist") or ""),
        track_number=_number(get("tracknumber")),
        disc_number=_number(get("discnumber")),
        year=year if year and 1000 <= year <= 2999 else None,
        genres=genres,
        isrc=isrc if _ISRC.match(isrc) else None,
    )


_ID3_EASY = {
    "TIT2": "title",
    "TPE1": "artist",
    "TALB": "album",
    "TPE2": "albumartist",
    "TRCK": "tracknumber",
    "TPOS": "discnumber",
    "TDRC": "date",
    "TCON": "genre",
    "TSRC": "isrc",
}


def _is_id3(tags: Any) -> bool:
    from mutagen.id3 import ID3

    return isinstance(tags, ID3)


def _easy_view(tags: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for frame_id, key in _ID3_EASY.items():
        frame = tags.get(frame_id)
        if frame is not None and getattr(frame, "text", None):
            out[key] = [str(v) for v in frame.text]
    return out


def read_picture(path: str | Path) -> bytes | None:
    """The first embedded cover picture's bytes (front cover preferred), if any."""
    import mutagen

    try:
        f = mutagen.File(str(path))
    except Exception:  # noqa: BLE001 - see read_tags
        return None
    if f is None:
        return None
    pictures: list[tuple[int, bytes]] = []
    for pic in getattr(f, "pictures", None) or []:  # FLAC
        pictures.append((pic.type, pic.data))
    tags = f.tags
    if tags is not None:
        try:
            for key in list(tags.keys()):
                value = tags[key]
                if str(key).startswith("APIC"):  # ID3 (MP3, AIFF, WAV)
                    pictures.append((value.type, value.data))
                elif key == "covr":  # MP4
                    pictures.extend((3, bytes(v)) for v in value)
                elif str(key).lower() == "metadata_block_picture":  # Ogg
                    from mutagen.flac import Picture

                    for raw in value:
                        try:
                            pic = Picture(base64.b64decode(raw))
                        except Exception:  # noqa: BLE001 - skip a broken block
                            continue
                        pictures.append((pic.type, pic.data))
        except (TypeError, AttributeError, ValueError):
            pass
    pictures = [(kind, data) for kind, data in pictures if 0 < len(data) <= MAX_PICTURE_BYTES]
    if not pictures:
        return None
    pictures.sort(key=lambda p: p[0] != 3)  # 3 = front cover
    return pictures[0][1]
