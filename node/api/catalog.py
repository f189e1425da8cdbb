"""Artists, releases and tracks."""

from __future__ import annotations

from ..models import RELEASE_KINDS
from ..serializers import artist_json, release_json, track_json
from ..services import catalog
from ..validation import F, Schema
from . import API
from .routing import Call

ListQ = Schema("ListQuery", F("cursor", max_len=500), F("limit", "int", min=1, max=100))
ArtistListQ = Schema(
    "ArtistListQuery",
    F("cursor", max_len=500),
    F("limit", "int", min=1, max=100),
    F("borough", max_len=64),
    F("genre", max_len=60),
)
ArtistPatch = Schema(
    "ArtistUpdate",
    F("name", max_len=200),
    F("summary", "text", max_len=5000),
    F("kind", choices=("Person", "Group")),
    F("borough", max_len=64, nullable=True),
    F("genres", "strlist", max_items=10, max_len=40),
    F("links", "strlist", max_items=10, max_len=300),
    F("location", max_len=200, nullable=True),
    F("avatar_url", "url", max_len=500, nullable=True),
    F("manually_approves_followers", "bool"),
)
ReleaseIn = Schema(
    "ReleaseCreate",
    F("title", required=True, max_len=200),
    F("kind", choices=RELEASE_KINDS),
    F("tracks", "uuidlist", max_items=100),
    F("description", "text", max_len=10000),
    F("genres", "strlist", max_items=10, max_len=40),
    F("release_date", "date", nullable=True),
    F("cover_url", "url", max_len=500, nullable=True),
    F("artist", "handle", description="curators only: publish for another artist"),
)
ReleasePatch = Schema(
    "ReleaseUpdate", *[f for f in ReleaseIn.fields.values() if f.name != "artist"]
)
ReleasePatch.fields["title"] = F("title", max_len=200)
TrackIn = Schema(
    "TrackCreate",
    F("title", max_len=200, description="required; with an uploaded file it defaults to its tags"),
    F("release", "uuid", description="add to this release"),
    F("duration_ms", "int", min=1, max=24 * 3600 * 1000),
    F("isrc", "isrc"),
    F("genres", "strlist", max_items=10, max_len=40),
    F("artist", "handle", description="curators only"),
)
TrackPatch = Schema(
    "TrackUpdate",
    F("title", max_len=200),
    F("duration_ms", "int", min=1, max=24 * 3600 * 1000),
    F("isrc", "isrc", nullable=True),
    F("genres", "strlist", max_items=10, max_len=40),
)


def page_json(page, fn):
    return {"items": [fn(x) for x in page.items], "next": page.next_cursor}


@API.route(
    "GET",
    "/api/v1/artists",
    name="api.artists",
    summary="Local artists, by handle; filter by borough or genre",
    tag="artists",
    query=ArtistListQ,
)
async def list_artists(call: Call):
    q = call.query
    async with call.ctx.db.read_session() as s:
        page = await catalog.list_artists(
            call.ctx,
            s,
            borough=q.get("borough"),
            genre=q.get("genre"),
            cursor=q.get("cursor"),
            limit=q.get("limit", 20),
        )
    return page_json(page, artist_json)


@API.route(
    "GET",
    "/api/v1/artists/{handle}",
    name="api.artist",
    summary="One artist, local (`jay`) or known remote (`jay@queens.example`)",
    tag="artists",
)
async def get_artist(call: Call):
    async with call.ctx.db.read_session() as s:
        return artist_json(await catalog.get_artist(call.ctx, s, call.path("handle")))


@API.route(
    "PATCH",
    "/api/v1/artists/{handle}",
    name="api.artist.update",
    summary="Edit an artist profile (the artist, curators, admins)",
    tag="artists",
    body=ArtistPatch,
    role="fan",
)
async def update_artist(call: Call):
    async with call.ctx.db.transaction() as s:
        actor = await catalog.get_artist(call.ctx, s, call.path("handle"))
        actor = await catalog.update_artist(call.ctx, s, call.account, actor, call.body)
        return artist_json(actor)


@API.route(
    "GET",
    "/api/v1/artists/{handle}/releases",
    name="api.artist.releases",
    summary="An artist's published releases, newest first",
    tag="artists",
    query=ListQ,
)
async def artist_releases(call: Call):
    async with call.ctx.db.read_session() as s:
        actor = await catalog.get_artist(call.ctx, s, call.path("handle"))
        mine = catalog.can_see(call.account, actor.id)
        page = await catalog.list_releases(
            s,
            artist=actor,
            cursor=call.query.get("cursor"),
            limit=call.query.get("limit", 20),
            include_drafts=mine,
        )
        return page_json(page, release_json)


@API.route(
    "GET",
    "/api/v1/artists/{handle}/tracks",
    name="api.artist.tracks",
    summary="An artist's public tracks, newest first",
    tag="artists",
    query=ListQ,
)
async def artist_tracks(call: Call):
    async with call.ctx.db.read_session() as s:
        actor = await catalog.get_artist(call.ctx, s, call.path("handle"))
        mine = catalog.can_see(call.account, actor.id)
        page = await catalog.list_tracks(
            s,
            artist=actor,
            cursor=call.query.get("cursor"),
            limit=call.query.get("limit", 20),
            include_drafts=mine,
        )
        return page_json(page, track_json)


@API.route(
    "GET",
    "/api/v1/releases",
    name="api.releases",
    summary="Published releases on this node, newest first",
    tag="releases",
    query=ListQ,
)
async def list_releases(call: Call):
    async with call.ctx.db.read_session() as s:
        page = await catalog.list_releases(
            s, cursor=call.query.get("cursor"), limit=call.query.get("limit", 20)
        )
        return page_json(page, release_json)


@API.route(
    "POST",
    "/api/v1/releases",
    name="api.releases.create",
    summary="Create a draft release from the artist's tracks",
    tag="releases",
    body=ReleaseIn,
    role="artist",
    status=201,
)
async def create_release(call: Call):
    async with call.ctx.db.transaction() as s:
        return release_json(await catalog.create_release(call.ctx, s, call.account, call.body))


@API.route(
    "GET",
    "/api/v1/releases/{uuid}",
    name="api.release",
    summary="One release (drafts only for their artist and curators)",
    tag="releases",
)
async def get_release(call: Call):
    async with call.ctx.db.read_session() as s:
        return release_json(await catalog.get_release(s, call.path("uuid"), call.account))


@API.route(
    "PATCH",
    "/api/v1/releases/{uuid}",
    name="api.release.update",
    summary="Edit a release",
    tag="releases",
    body=ReleasePatch,
    role="artist",
)
async def update_release(call: Call):
    async with call.ctx.db.transaction() as s:
        release = await catalog.get_release(s, call.path("uuid"), call.account)
        return release_json(
            await catalog.update_release(call.ctx, s, call.account, release, call.body)
        )


@API.route(
    "POST",
    "/api/v1/releases/{uuid}/publish",
    name="api.release.publish",
    summary="Publish a release: it and its tracks become public and federate",
    tag="releases",
    role="artist",
)
async def publish_release(call: Call):
    async with call.ctx.db.transaction() as s:
        release = await catalog.get_release(s, call.path("uuid"), call.account)
        return release_json(await catalog.publish_release(call.ctx, s, call.account, release))


@API.route(
    "DELETE",
    "/api/v1/releases/{uuid}",
    name="api.release.delete",
    summary="Delete a release (its tracks stay)",
    tag="releases",
    role="artist",
    status=204,
)
async def delete_release(call: Call):
    async with call.ctx.db.transaction() as s:
        release = await catalog.get_release(s, call.path("uuid"), call.account)
        await catalog.delete_release(call.ctx, s, call.account, release)


@API.route(
    "GET",
    "/api/v1/tracks",
    name="api.tracks",
    summary="Public tracks on this node, newest first",
    tag="tracks",
    query=ListQ,
)
async def list_tracks(call: Call):
    async with call.ctx.db.read_session() as s:
        page = await catalog.list_tracks(
            s, cursor=call.query.get("cursor"), limit=call.query.get("limit", 20)
        )
        return page_json(page, track_json)


@API.route(
    "POST",
    "/api/v1/tracks",
    name="api.tracks.create",
    summary="Create a track: multipart with `file` (the master) and `title`, or JSON metadata",
    tag="tracks",
    body=TrackIn,
    role="artist",
    status=201,
    multipart=True,
)
async def create_track(call: Call):
    upload = call.files.get("file")
    inspected = None
    if upload is not None and call.ctx.upload_inspector is not None:
        # Decoded before the transaction opens: nothing is stored for a bad file,
        # and no write lock is held while it decodes.
        inspected = await call.ctx.upload_inspector(*upload)
    async with call.ctx.db.transaction() as s:
        track = await catalog.create_track(
            call.ctx, s, call.account, call.body, upload, inspected=inspected
        )
        await s.refresh(track, ["release"])
        return track_json(track)


@API.route("GET", "/api/v1/tracks/{uuid}", name="api.track", summary="One track", tag="tracks")
async def get_track(call: Call):
    async with call.ctx.db.read_session() as s:
        track = await catalog.get_track(s, call.path("uuid"), call.account)
        return {**track_json(track), **media_status(track, call.account)}


def media_status(track, account) -> dict:
    """What the media pipeline made of the master: formats when ready; for the
    artist (and curators) also the last error and how many tries it took."""
    media = track.media or {}
    out = {
        "formats": sorted((media.get("files") or {}).keys()),
        "loudness_lufs": media.get("loudness_lufs"),
    }
    if catalog.can_see(account, track.artist_id):
        out["processing"] = {"error": media.get("error"), "attempts": media.get("attempts", 0)}
    return out


@API.route(
    "PATCH",
    "/api/v1/tracks/{uuid}",
    name="api.track.update",
    summary="Edit a track's metadata",
    tag="tracks",
    body=TrackPatch,
    role="artist",
)
async def update_track(call: Call):
    async with call.ctx.db.transaction() as s:
        track = await catalog.get_track(s, call.path("uuid"), call.account)
        return track_json(await catalog.update_track(call.ctx, s, call.account, track, call.body))


@API.route(
    "DELETE",
    "/api/v1/tracks/{uuid}",
    name="api.track.delete",
    summary="Delete a track",
    tag="tracks",
    role="artist",
    status=204,
)
async def delete_track(call: Call):
    async with call.ctx.db.transaction() as s:
        track = await catalog.get_track(s, call.path("uuid"), call.account)
        await catalog.delete_track(call.ctx, s, call.account, track)
