"""stream, download and getCoverArt: bytes, sent by media.streaming.

The caller's visibility is checked here; `serve_track` does the rest (Range,
If-Range, ETag, X-Accel-Redirect, presigned S3 URLs, remote origins).
"""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web
from sqlalchemy import select

from node.models import Release, Track

from .. import streaming
from ..storage import STORAGE
from . import catalog, errors
from .dispatch import Call, method

COVER_SIZES = (64, 300, 600, 1200)
COVER_CACHE = "public, max-age=86400"


def choose_format(track: Track, fmt: str | None, max_bitrate: int | None) -> str:
    """The rendition for `format`/`maxBitRate`, falling back to one the track has.

    `raw` is the original (Subsonic's "no transcoding"); `opus`/`ogg` the Opus
    file; `mp3` or nothing: MP3 320, or 128 when the client caps the bitrate
    below 320 kbps.
    """
    fmt = (fmt or "").lower()
    if fmt == "raw":
        wanted = "original"
    elif fmt in ("opus", "ogg"):
        wanted = "opus"
    elif max_bitrate and max_bitrate < 320:
        # MP3 everywhere: iOS players cannot decode Opus, so a cap never picks it.
        wanted = "mp3_128"
    else:
        wanted = "mp3_320"
    files = (track.media or {}).get("files") or {}
    if not track.local or not files or wanted in files:
        return wanted
    for alternative in ("mp3_320", "mp3_128", "opus", "original"):
        if alternative in files:
            return alternative
    return wanted


async def _song(call: Call) -> Track:
    _, row_id = catalog.parse_id(call.params.required("id", max_length=40), "song")
    async with call.read() as session:
        return await catalog.get_song(session, call.viewer, row_id)


@method("stream")
async def stream(call: Call) -> web.StreamResponse:
    track = await _song(call)
    max_bitrate = call.params.int("maxBitRate", 0, high=100_000)
    fmt = choose_format(track, call.params.str("format", max_length=16), max_bitrate)
    return await streaming.serve_track(call.request, track, fmt)


@method("download")
async def download(call: Call) -> web.StreamResponse:
    track = await _song(call)
    return await streaming.serve_track(call.request, track, "original", download=True)


def nearest_cover(covers: dict[str, Any], size: int | None) -> str | None:
    """The stored cover key closest to `size` (the smallest at least as large)."""
    available = sorted(int(k) for k in covers if str(k).isdigit() and covers[k])
    if not available:
        return None
    if size is None:
        chosen = available[-1]
    else:
        larger = [s for s in available if s >= size]
        chosen = larger[0] if larger else available[-1]
    return str(covers[str(chosen)])


async def _cover_of(call: Call, value: str) -> tuple[dict[str, Any], str | None]:
    """(stored covers by size, remote image URL) for a song, album or artist id."""
    kind, row_id = catalog.parse_id(value, "song", "album", "artist", "playlist")
    viewer = call.viewer
    async with call.read() as session:
        if kind == "song":
            track = await catalog.get_song(session, viewer, row_id)
            covers = (track.media or {}).get("cover") or {}
            remote = track.release.cover_url if track.release is not None else None
            return covers, remote
        if kind == "playlist":
            raise errors.not_found("Cover art")
        if kind == "album":
            release = await catalog.get_album(session, viewer, row_id)
            where = Track.release_id == row_id
            remote = release.cover_url
        else:
            actor = await catalog.get_artist(session, viewer, row_id)
            where = Track.artist_id == row_id
            remote = actor.avatar_url
        rows = await session.execute(
            select(Track.media)
            .where(where, catalog.track_visible(viewer))
            .order_by(Track.position, Track.id)
            .limit(50)
        )
        for (media,) in rows.all():
            covers = (media or {}).get("cover") or {}
            if covers:
                return covers, remote
        if kind == "artist" and remote is None:
            release_cover = await session.scalar(
                select(Release.cover_url)
                .where(Release.artist_id == row_id, catalog.release_visible(viewer))
                .where(Release.cover_url.is_not(None))
                .limit(1)
            )
            remote = release_cover
    return {}, remote


@method("getCoverArt")
async def get_cover_art(call: Call) -> web.StreamResponse:
    value = call.params.required("id", max_length=40)
    size = call.params.int("size", low=1, high=5000)
    covers, remote = await _cover_of(call, value)
    key = nearest_cover(covers, size)
    if key is not None:
        storage = call.request.config_dict[STORAGE]
        return await streaming.serve_key(
            call.request, storage, key, "image/jpeg", {hdrs.CACHE_CONTROL: COVER_CACHE}
        )
    if remote and remote.startswith(("https://", "http://")):
        # A remote artist's image stays on its node; the client fetches it there.
        return web.Response(
            status=302, headers={hdrs.LOCATION: remote, hdrs.CACHE_CONTROL: COVER_CACHE}
        )
    raise errors.not_found("Cover art")
