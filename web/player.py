"""The web player: a persistent bar that keeps playing while the fan browses.

Pages mark what can be played with `data-play-*` attributes (the
`play_attrs()` template global writes them); web/static/player.js queues
those tracks, streams them from `/tracks/{uuid}/stream`, draws the waveform
from `/tracks/{uuid}/waveform.json`, swaps `<main>` on navigation so the
audio element survives, and reports each finished or abandoned listen that
lasted at least the minimum length to `POST /api/v1/plays` (same origin,
session cookie plus the X-CSRF-Token the layout's meta tag carries).

Without JavaScript the track page's plain `<audio controls>` still plays.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from markupsafe import Markup, escape

from media.storage import STORAGE
from media.streaming import signed_stream_url
from node.appkeys import ACCOUNT, CTX
from node.errors import NotFound

from .render import ENV

MAX_PEAKS = 2000
_UUID = re.compile(r"^[0-9a-fA-F-]{32,36}$")
DEFAULT_MIN_PLAY_MS = 30_000


def setup(app: web.Application) -> None:
    """Install the waveform route and the template helpers the play buttons use."""
    app.router.add_get("/tracks/{uuid}/waveform.json", waveform, name="web.player.waveform")
    app.on_startup.append(_install_globals)


async def _install_globals(app: web.Application) -> None:
    # The environment is built after every page module's setup(); by
    # start-up it exists, and no page has been rendered yet.
    ctx = app[CTX]
    env = app[ENV]
    env.globals.update(
        play_attrs=lambda track, artist=None, release=None: play_attrs(ctx, track, artist, release),
        stream_url=lambda uuid, fmt="mp3_128": signed_stream_url(ctx, str(uuid), fmt),
        player_min_play_ms=min_play_ms(ctx.settings),
    )


def min_play_ms(settings: Any) -> int:
    """Listens shorter than this are not reported (royalties' minimum, when set)."""
    try:
        return int(settings.get("royalties.min_play_ms"))
    except (KeyError, AttributeError, TypeError, ValueError):
        return DEFAULT_MIN_PLAY_MS


def play_attrs(ctx: Any, track: Any, artist: Any = None, release: Any = None) -> Markup:
    """The `data-play-*` attributes of a play button for `track`.

    Works with Track rows and the artist page's lighter TrackRow tuples:
    whatever is missing (the URI of a remote artist's track) the player asks
    the API for when it needs it.
    """
    uuid = str(track.uuid)
    artist = artist if artist is not None else getattr(track, "__dict__", {}).get("artist")
    artist_name = ""
    local = True
    if artist is not None:
        artist_name = getattr(artist, "name", "") or getattr(artist, "handle", "")
        local = bool(getattr(artist, "local", True))
    uri = getattr(track, "uri", None) or (ctx.urls.obj("tracks", uuid) if local else "")
    values = {
        "uuid": uuid,
        "uri": uri,
        "title": track.title,
        "artist": artist_name,
        "release": getattr(release, "title", "") if release is not None else "",
        "href": f"/tracks/{uuid}",
        "src": signed_stream_url(ctx, uuid, "mp3_128"),
        "waveform": f"/tracks/{uuid}/waveform.json",
        "duration": str(track.duration_ms or ""),
    }
    return Markup(" ".join(f'data-play-{k}="{escape(v)}"' for k, v in values.items()))


async def waveform(request: web.Request) -> web.Response:
    """A track's peaks (0..1) for drawing; the pipeline stores them as JSON."""
    from node.services.catalog import get_track

    uuid = request.match_info["uuid"]
    if not _UUID.match(uuid):
        raise NotFound("no such track")
    ctx = request.config_dict[CTX]
    async with ctx.db.read_session() as s:
        track = await get_track(s, uuid, request.get(ACCOUNT))
        public = track.public
    key = (track.media or {}).get("waveform")
    if not track.local or not isinstance(key, str) or not key:
        raise NotFound("this track has no waveform")
    try:
        raw = await request.config_dict[STORAGE].get_bytes(key)
        doc = json.loads(raw)
    except (KeyError, ValueError):
        raise NotFound("this track has no waveform") from None
    peaks = doc.get("peaks") if isinstance(doc, dict) else doc
    if not isinstance(peaks, list):
        raise NotFound("this track has no waveform")
    clean = [
        round(min(1.0, abs(float(p))), 3) for p in peaks[:MAX_PEAKS] if isinstance(p, int | float)
    ]
    duration = doc.get("duration_ms") if isinstance(doc, dict) else None
    return web.json_response(
        {
            "peaks": clean,
            "duration_ms": duration if isinstance(duration, int) else track.duration_ms,
        },
        headers={"Cache-Control": "public, max-age=3600" if public else "private, max-age=60"},
    )
