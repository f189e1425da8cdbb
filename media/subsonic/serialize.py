"""Catalog rows as Subsonic entries: `Child` (song or folder), `AlbumID3`, `ArtistID3`.

Field names and meanings follow the Subsonic 1.16.1 XSD; OpenSubsonic
additions (`mediaType`, `genres`, `played`) are added where we have them.
`suffix`/`contentType`/`size` describe the original file; `stream` without
a `format` sends the MP3 320 rendition, which `transcodedSuffix` says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from node.models import Actor, Release, Track

from .catalog import AlbumStats, genres_of, make_id

MIME_SUFFIX = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/ogg": "ogg",
    "audio/opus": "opus",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/aiff": "aiff",
    "audio/x-aiff": "aiff",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/aac": "aac",
}


@dataclass
class Annotations:
    """The caller's stars and ratings, by kind and row id, for the rows being shown."""

    starred: dict[tuple[str, int], datetime] = field(default_factory=dict)
    ratings: dict[tuple[str, int], int] = field(default_factory=dict)

    def apply(self, entry: dict[str, Any], kind: str, row_id: int) -> dict[str, Any]:
        if (kind, row_id) in self.starred:
            entry["starred"] = self.starred[(kind, row_id)]
        if (kind, row_id) in self.ratings:
            entry["userRating"] = self.ratings[(kind, row_id)]
        return entry


def artist_name(actor: Actor) -> str:
    return actor.name or actor.handle


def _year(release: Release | None) -> int | None:
    if release is None:
        return None
    if release.release_date is not None:
        return release.release_date.year
    return release.published_at.year if release.published_at else None


def _original(track: Track) -> tuple[str | None, str | None, int | None, int | None]:
    """(suffix, content type, size, bitrate kbps) of the original file, local or remote."""
    files = (track.media or {}).get("files") or {}
    original = files.get("original") or {}
    mime = original.get("mime") or track.original_mime
    size = original.get("size") or track.original_size
    bitrate = original.get("bitrate")
    if not mime and not track.local:
        remote = (track.media or {}).get("remote_audio") or []
        mime = remote[0].get("mediaType") if remote and isinstance(remote[0], dict) else None
    suffix = MIME_SUFFIX.get((mime or "").split(";")[0].strip().lower())
    name = (track.media or {}).get("original_filename") or ""
    if suffix is None and "." in name:
        suffix = name.rsplit(".", 1)[1].lower()[:8]
    kbps = int(bitrate) // 1000 if isinstance(bitrate, int | float) and bitrate > 1000 else None
    return suffix, mime, size if isinstance(size, int) else None, kbps


def song(track: Track, notes: Annotations | None = None, *, play_count: int | None = None):
    release = track.release
    artist = track.artist
    suffix, mime, size, kbps = _original(track)
    genres = genres_of(track)
    entry: dict[str, Any] = {
        "id": make_id("song", track.id),
        "parent": make_id("album", release.id) if release else make_id("artist", artist.id),
        "isDir": False,
        "title": track.title,
        "album": release.title if release else None,
        "artist": artist_name(artist),
        "track": track.position,
        "year": _year(release),
        "genre": genres[0] if genres else None,
        "coverArt": make_id("song", track.id),
        "size": size,
        "contentType": mime,
        "suffix": suffix,
        "transcodedContentType": "audio/mpeg",
        "transcodedSuffix": "mp3",
        "duration": (track.duration_ms or 0) // 1000,
        "bitRate": kbps,
        "path": f"{artist_name(artist)}/{release.title if release else 'Singles'}/"
        f"{track.title}.{suffix or 'mp3'}",
        "playCount": play_count,
        "isVideo": False,
        "created": track.created_at,
        "albumId": make_id("album", release.id) if release else None,
        "artistId": make_id("artist", artist.id),
        "type": "music",
        "mediaType": "song",
        "genres": [{"name": g} for g in genres],
    }
    return (notes or Annotations()).apply(entry, "song", track.id)


def album(
    release: Release, stats: AlbumStats | None = None, notes: Annotations | None = None
) -> dict[str, Any]:
    """AlbumID3 (getAlbum, getAlbumList2, search3, getStarred2)."""
    stats = stats or AlbumStats()
    genres = list(release.genres or [])
    entry: dict[str, Any] = {
        "id": make_id("album", release.id),
        "name": release.title,
        "artist": artist_name(release.artist),
        "artistId": make_id("artist", release.artist_id),
        "coverArt": make_id("album", release.id),
        "songCount": stats.songs,
        "duration": stats.duration_ms // 1000,
        "created": release.published_at or release.created_at,
        "year": _year(release),
        "genre": genres[0] if genres else None,
        "genres": [{"name": g} for g in genres],
        "mediaType": "album",
    }
    return (notes or Annotations()).apply(entry, "album", release.id)


def album_folder(release: Release, notes: Annotations | None = None) -> dict[str, Any]:
    """An album as a `Child` directory (getMusicDirectory, getAlbumList, search2)."""
    entry = {
        "id": make_id("album", release.id),
        "parent": make_id("artist", release.artist_id),
        "isDir": True,
        "title": release.title,
        "album": release.title,
        "artist": artist_name(release.artist),
        "year": _year(release),
        "coverArt": make_id("album", release.id),
        "created": release.published_at or release.created_at,
    }
    return (notes or Annotations()).apply(entry, "album", release.id)


def artist(actor: Actor, album_count: int = 0, notes: Annotations | None = None):
    """ArtistID3 (getArtists, getArtist, search3); `albumCount` as the XSD requires."""
    entry = {
        "id": make_id("artist", actor.id),
        "name": artist_name(actor),
        "coverArt": make_id("artist", actor.id),
        "albumCount": album_count,
        "artistImageUrl": actor.avatar_url or None,
    }
    return (notes or Annotations()).apply(entry, "artist", actor.id)


IGNORED_ARTICLES = "The El La Los Las Le Les"


def index_key(name: str) -> str:
    """The letter an artist is filed under, leading articles ignored ("The Roots" -> R)."""
    words = name.strip().split(" ", 1)
    if len(words) == 2 and words[0] in IGNORED_ARTICLES.split():
        name = words[1]
    first = name.strip()[:1].upper()
    return first if first.isalpha() else "#"


def indexed(entries: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """[(name, entry)] grouped into `index` elements by letter, in order."""
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name, entry in entries:
        groups.setdefault(index_key(name), []).append((name, entry))
    out = []
    for letter in sorted(groups, key=lambda k: (k == "#", k)):
        rows = sorted(groups[letter], key=lambda r: r[0].lower())
        out.append({"name": letter, "artist": [e for _, e in rows]})
    return out
