"""The artist's studio at /studio: upload masters, watch them process, make releases.

Uploads work two ways. With JavaScript (web/static/studio.js) a dropped or
chosen file goes to `POST /api/v1/tracks` by XHR, so the page can show the
upload's progress, then follows the track's state through
`/studio/tracks.json` until it is ready or failed. Without JavaScript the
same form posts to `/studio/upload` and the page reloads. Both end in the
same core service, behind the same decoding check (`ctx.upload_inspector`).
A failed track shows its error and a Retry button.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from node.api.routing import discard_uploads, read_multipart
from node.appkeys import ACCOUNT, CTX
from node.errors import Forbidden, NodeError
from node.models import RELEASE_KINDS, Account, Release, Track
from node.services import catalog

from . import csrf, flash
from .accounts import read_form
from .render import redirect, render, route_url

SHOWN = 200
ACCEPT = ".wav,.flac,.aif,.aiff,.mp3,.ogg,.opus,.m4a,audio/*"


def setup(app: web.Application) -> None:
    """Install these pages' routes."""
    app.router.add_get("/studio", studio, name="web.studio")
    app.router.add_get("/studio/tracks.json", tracks_json, name="web.studio.tracks")
    app.router.add_post("/studio/upload", upload, name="web.studio.upload")
    app.router.add_post("/studio/releases", create_release, name="web.studio.releases")
    app.router.add_post(
        "/studio/releases/{uuid}/publish", publish_release, name="web.studio.publish"
    )
    app.router.add_post("/studio/tracks/{uuid}/retry", retry, name="web.studio.retry")


def _artist(request: web.Request) -> Account | None:
    """The signed-in artist, or None for anonymous visitors (sent to sign in)."""
    account = request.get(ACCOUNT)
    if account is None:
        return None
    if not account.actor.is_artist:
        raise Forbidden("The studio is for artists; ask the node's admin for an artist account.")
    return account


def _to_login(request: web.Request) -> web.Response:
    return redirect(request, route_url(request, "web.login", query={"next": "/studio"}), status=302)


def track_row(track: Track) -> dict[str, Any]:
    media = track.media or {}
    return {
        "uuid": track.uuid,
        "title": track.title,
        "state": track.state,
        "error": media.get("error") if track.state != "ready" else None,
        "attempts": media.get("attempts", 0),
        "duration_ms": track.duration_ms,
        "loudness_lufs": media.get("loudness_lufs"),
        "release": track.release.title if track.release else None,
        "public": track.public,
    }


async def _rows(request: web.Request, account: Account) -> tuple[list[Track], list[Release]]:
    async with request.config_dict[CTX].db.read_session() as s:
        tracks = (
            await s.scalars(
                select(Track)
                .options(selectinload(Track.release))
                .where(Track.artist_id == account.actor_id)
                .order_by(Track.created_at.desc(), Track.id.desc())
                .limit(SHOWN)
            )
        ).all()
        releases = (
            await s.scalars(
                select(Release)
                .where(Release.artist_id == account.actor_id)
                .order_by(Release.created_at.desc(), Release.id.desc())
                .limit(SHOWN)
            )
        ).all()
        return list(tracks), list(releases)


async def studio(request: web.Request) -> web.Response:
    account = _artist(request)
    if account is None:
        return _to_login(request)
    tracks, releases = await _rows(request, account)
    return render(
        request,
        "studio/index.html",
        {
            "tracks": [track_row(t) for t in tracks],
            "releases": releases,
            "kinds": RELEASE_KINDS,
            "accept": ACCEPT,
            "max_upload_mb": request.config_dict[CTX].settings.media.max_upload_bytes // 1_000_000,
            "loose": [t for t in tracks if t.release_id is None],
        },
    )


async def tracks_json(request: web.Request) -> web.Response:
    account = request.get(ACCOUNT)
    if account is None or not account.actor.is_artist:
        raise Forbidden("artists only")
    tracks, _ = await _rows(request, account)
    return web.json_response(
        {"items": [track_row(t) for t in tracks]}, headers={"Cache-Control": "no-store"}
    )


async def upload(request: web.Request) -> web.Response:
    """The form's no-JavaScript path: the same service the API uses."""
    account = _artist(request)
    if account is None:
        return _to_login(request)
    ctx = request.config_dict[CTX]
    if request.content_type != "multipart/form-data":
        return _back(request, "error", "Choose an audio file to upload.")
    fields, files = await read_multipart(
        request, ctx.settings.media.max_upload_bytes, ctx.settings.node.max_request_bytes
    )
    try:
        csrf.require(request, fields)
        file = files.get("file")
        if file is None or not file[2].stat().st_size:
            return _back(request, "error", "Choose an audio file to upload.")
        values = {"title": str(fields.get("title") or "").strip()[:200]}
        try:
            inspected = await ctx.upload_inspector(*file) if ctx.upload_inspector else None
            async with ctx.db.transaction() as s:
                track = await catalog.create_track(
                    ctx, s, account, values, file, inspected=inspected
                )
        except NodeError as e:
            return _back(request, "error", f"{file[0]}: {e.detail}")
    finally:
        discard_uploads(files)  # the master, if taken, was moved away
    return _back(request, "ok", f"Uploaded “{track.title}”; it is being processed.")


async def create_release(request: web.Request) -> web.Response:
    account = _artist(request)
    if account is None:
        return _to_login(request)
    ctx = request.config_dict[CTX]
    form = await _read_multi_form(request)
    csrf.require(request, {"csrf_token": form.get("csrf_token", [""])[0]})
    title = (form.get("title", [""])[0] or "").strip()[:200]
    kind = form.get("kind", ["album"])[0]
    uuids = form.get("tracks", [])[:100]
    if not title or kind not in RELEASE_KINDS or not uuids:
        return _back(request, "error", "A release needs a title, a kind and at least one track.")
    try:
        async with ctx.db.transaction() as s:
            release = await catalog.create_release(
                ctx, s, account, {"title": title, "kind": kind, "tracks": uuids}
            )
            if form.get("publish"):
                await catalog.publish_release(ctx, s, account, release)
    except NodeError as e:
        return _back(request, "error", e.detail)
    state = "published" if form.get("publish") else "saved as a draft"
    return _back(request, "ok", f"“{release.title}” {state}.")


async def publish_release(request: web.Request) -> web.Response:
    account = _artist(request)
    if account is None:
        return _to_login(request)
    ctx = request.config_dict[CTX]
    csrf.require(request, await read_form(request))
    try:
        async with ctx.db.transaction() as s:
            release = await catalog.get_release(s, request.match_info["uuid"], account)
            await catalog.publish_release(ctx, s, account, release)
    except NodeError as e:
        return _back(request, "error", e.detail)
    return _back(request, "ok", f"“{release.title}” is published.")


async def retry(request: web.Request) -> web.Response:
    from media.pipeline import retry_track

    account = _artist(request)
    if account is None:
        return _to_login(request)
    ctx = request.config_dict[CTX]
    csrf.require(request, await read_form(request))
    try:
        async with ctx.db.transaction() as s:
            track = await catalog.get_track(s, request.match_info["uuid"], account)
            if track.artist_id != account.actor_id:
                raise Forbidden("not your track")
            await retry_track(ctx, s, track.uuid)
    except NodeError as e:
        return _back(request, "error", e.detail)
    return _back(request, "ok", f"Processing “{track.title}” again.")


async def _read_multi_form(request: web.Request) -> dict[str, list[str]]:
    """A url-encoded form whose `tracks` field repeats (one per ticked box)."""
    from urllib.parse import parse_qs

    from .accounts import FORM_LIMIT

    if request.content_type != "application/x-www-form-urlencoded":
        return {}
    raw = await request.content.read(FORM_LIMIT + 1)
    if len(raw) > FORM_LIMIT:
        return {}
    try:
        return parse_qs(raw.decode("utf-8"), max_num_fields=200)
    except (UnicodeDecodeError, ValueError):
        return {}


def _back(request: web.Request, kind: str, text: str) -> web.Response:
    response = redirect(request, route_url(request, "web.studio"))
    flash.set_flash(request, response, kind, text)
    return response
