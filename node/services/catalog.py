"""Artists, releases and tracks: what an artist publishes.

Drafts are private to their artist (and curators); publishing a release
makes it and its tracks public and emits `release.published`, which
federation and search pick up.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sqlalchemy import Text, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from ..auth import has_role, require_owner_or, require_role
from ..context import NodeContext
from ..errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from ..models import Account, Actor, ArtistProfile, Release, Track, utcnow
from ..pagination import Page, keyset_page

# ---- artists --------------------------------------------------------------


async def get_actor_by_handle(session: AsyncSession, handle: str, domain: str) -> Actor:
    actor = await session.scalar(
        select(Actor)
        .options(selectinload(Actor.profile))
        .where(Actor.handle == handle.lower().lstrip("@"), Actor.domain == domain)
    )
    if actor is None:
        raise NotFound(f"no artist @{handle}")
    return actor


async def get_artist(ctx: NodeContext, session: AsyncSession, handle: str) -> Actor:
    """A local artist by handle (`jay`), or a known remote one (`jay@queens.example`)."""
    handle = handle.lstrip("@")
    name, _, domain = handle.partition("@")
    actor = await get_actor_by_handle(session, name, domain or ctx.domain)
    if not actor.is_artist:
        raise NotFound(f"no artist @{handle}")
    return actor


async def list_artists(
    ctx: NodeContext,
    session: AsyncSession,
    *,
    borough: str | None = None,
    genre: str | None = None,
    cursor: str | None = None,
    limit: int = 20,
    local_only: bool = True,
) -> Page:
    stmt = select(Actor).options(selectinload(Actor.profile)).where(Actor.is_artist.is_(True))
    if local_only:
        stmt = stmt.where(Actor.local.is_(True))
    if borough or genre:
        stmt = stmt.join(ArtistProfile, ArtistProfile.actor_id == Actor.id)
    if borough:
        stmt = stmt.where(ArtistProfile.borough == borough)
    if genre:
        # Genres are a short JSON list per artist; match one whole item in its text
        # form (the same on both databases). The search index serves facets at scale.
        as_text = func.lower(cast(ArtistProfile.genres, Text))
        stmt = stmt.where(as_text.contains(json.dumps(genre.lower())))
    return await keyset_page(session, stmt, Actor.handle, Actor.id, cursor=cursor, limit=limit)


async def update_artist(
    ctx: NodeContext, session: AsyncSession, account: Account, actor: Actor, values: dict[str, Any]
) -> Actor:
    require_owner_or(account, actor.id)
    if not actor.local:
        raise Conflict("remote artists are edited on their own node")
    profile = actor.profile or await session.get(ArtistProfile, actor.id)
    if profile is None:
        profile = ArtistProfile(actor_id=actor.id, genres=[], links=[])
        session.add(profile)
    if "borough" in values and values["borough"] is not None:
        if values["borough"] not in ctx.settings.node.boroughs:
            raise ValidationFailed([{"field": "borough", "message": "unknown borough"}])
    for key in ("name", "summary", "avatar_url", "manually_approves_followers"):
        if key in values:
            setattr(
                actor,
                key,
                values[key]
                if values[key] is not None
                else ("" if key in ("name", "summary") else None),
            )
    if "kind" in values:
        actor.kind = values["kind"]
    for key in ("borough", "genres", "links", "location"):
        if key in values:
            setattr(profile, key, values[key])
    actor.updated_at = utcnow()
    await session.flush()
    await ctx.bus.emit(session, "actor.updated", actor_id=actor.id, uri=actor.uri)
    return actor


# ---- releases -------------------------------------------------------------


def can_see(account: Account | None, owner_id: int) -> bool:
    return account is not None and (account.actor_id == owner_id or has_role(account, "curator"))


async def get_release(session: AsyncSession, uuid: str, account: Account | None = None) -> Release:
    release = await session.scalar(select(Release).where(Release.uuid == uuid))
    if release is None or (
        release.state != "published" and not can_see(account, release.artist_id)
    ):
        raise NotFound("no such release")
    return release


async def _artist_for(
    ctx: NodeContext, session: AsyncSession, account: Account, handle: str | None
) -> Actor:
    """The artist a new object belongs to: the caller, or (for curators) the one named."""
    require_role(account, "artist")
    if handle and handle != account.username:
        require_role(account, "curator")
        return await get_artist(ctx, session, handle)
    actor = await session.get(Actor, account.actor_id)
    if not actor.is_artist:
        raise ValidationFailed([{"field": "artist", "message": "your account is not an artist"}])
    return actor


async def _tracks_of(session: AsyncSession, uuids: list[str], artist: Actor) -> list[Track]:
    if not uuids:
        return []
    rows = (await session.scalars(select(Track).where(Track.uuid.in_(uuids)))).all()
    by_uuid = {t.uuid: t for t in rows}
    problems = []
    for u in uuids:
        t = by_uuid.get(u)
        if t is None:
            problems.append({"field": "tracks", "message": f"no track {u}"})
        elif t.artist_id != artist.id:
            problems.append({"field": "tracks", "message": f"track {u} belongs to another artist"})
    if problems:
        raise ValidationFailed(problems)
    return [by_uuid[u] for u in uuids]


async def create_release(
    ctx: NodeContext, session: AsyncSession, account: Account, values: dict[str, Any]
) -> Release:
    artist = await _artist_for(ctx, session, account, values.get("artist"))
    tracks = await _tracks_of(session, values.get("tracks", []), artist)
    release = Release(
        artist_id=artist.id,
        title=values["title"],
        kind=values.get("kind", "album"),
        description=values.get("description", ""),
        genres=values.get("genres", []),
        release_date=values.get("release_date"),
        cover_url=values.get("cover_url"),
        state="draft",
        local=True,
        uri="",
    )
    release.uri = ctx.urls.obj("releases", release.uuid or "")
    session.add(release)
    await session.flush()
    release.uri = ctx.urls.obj("releases", release.uuid)
    for i, t in enumerate(tracks, 1):
        t.release_id, t.position = release.id, i
    await session.flush()
    await session.refresh(release, ["tracks", "artist"])
    await ctx.bus.emit(session, "release.created", release_id=release.id, uri=release.uri)
    return release


async def update_release(
    ctx: NodeContext,
    session: AsyncSession,
    account: Account,
    release: Release,
    values: dict[str, Any],
) -> Release:
    require_owner_or(account, release.artist_id)
    for key in ("title", "kind", "description", "genres", "release_date", "cover_url"):
        if key in values:
            setattr(release, key, values[key])
    if "tracks" in values:
        tracks = await _tracks_of(session, values["tracks"], release.artist)
        for t in release.tracks:
            if t not in tracks:
                t.release_id, t.position = None, None
        for i, t in enumerate(tracks, 1):
            t.release_id, t.position = release.id, i
    release.updated_at = utcnow()
    await session.flush()
    await session.refresh(release, ["tracks"])
    name = "release.updated"
    await ctx.bus.emit(session, name, release_id=release.id, uri=release.uri, state=release.state)
    return release


async def publish_release(
    ctx: NodeContext, session: AsyncSession, account: Account, release: Release
) -> Release:
    """Publishing is idempotent: a second publish changes nothing and emits nothing."""
    require_owner_or(account, release.artist_id)
    if release.state == "published":
        return release
    if not release.tracks:
        raise ValidationFailed(
            [{"field": "tracks", "message": "a release needs at least one track"}]
        )
    release.state = "published"
    release.published_at = utcnow()
    await session.flush()
    await ctx.bus.emit(session, "release.published", release_id=release.id, uri=release.uri)
    return release


async def delete_release(
    ctx: NodeContext, session: AsyncSession, account: Account, release: Release
) -> None:
    require_owner_or(account, release.artist_id)
    uri, was_public, owner_uri = release.uri, release.state == "published", release.artist.uri
    for t in release.tracks:
        t.release_id, t.position = None, None
    await session.delete(release)
    await session.flush()
    await ctx.bus.emit(
        session, "release.deleted", uri=uri, was_public=was_public, owner_uri=owner_uri
    )


async def list_releases(
    session: AsyncSession,
    *,
    artist: Actor | None = None,
    cursor: str | None = None,
    limit: int = 20,
    include_drafts: bool = False,
) -> Page:
    stmt = select(Release)
    if artist is not None:
        stmt = stmt.where(Release.artist_id == artist.id)
    else:
        # The node's own catalogue; what crossed over from other nodes shows
        # under its artist and in followers' feeds, not in our listings.
        stmt = stmt.where(Release.local.is_(True))
    if not include_drafts:
        stmt = stmt.where(Release.state == "published")
        return await keyset_page(
            session,
            stmt,
            Release.published_at,
            Release.id,
            cursor=cursor,
            limit=limit,
            descending=True,
        )
    return await keyset_page(
        session, stmt, Release.created_at, Release.id, cursor=cursor, limit=limit, descending=True
    )


# ---- tracks ---------------------------------------------------------------


async def get_track(session: AsyncSession, uuid: str, account: Account | None = None) -> Track:
    track = await session.scalar(
        select(Track).where(Track.uuid == uuid).options(selectinload(Track.release))
    )
    if track is None or (not track.public and not can_see(account, track.artist_id)):
        raise NotFound("no such track")
    return track


async def create_track(
    ctx: NodeContext,
    session: AsyncSession,
    account: Account,
    values: dict[str, Any],
    upload: tuple[str, str, bytes | Path] | None = None,
    inspected: dict[str, Any] | None = None,
) -> Track:
    """Create a track's metadata, with its master if one was uploaded.

    The master is kept as sent (under DATA/uploads, until the pipeline has
    put it in storage; a spooled upload is moved there, not copied) and
    `track.uploaded` is emitted; the media pipeline takes it from there.
    `inspected` is what `ctx.upload_inspector` found in the master (decoded
    duration, its real type, tags): the title, ISRC and genres default to
    its tags, and the duration is the decoded one.
    """
    values = _with_tag_defaults(values, inspected, upload)
    artist = await _artist_for(ctx, session, account, values.get("artist"))
    release = None
    if values.get("release"):
        release = await get_release(session, values["release"], account)
        if release.artist_id != artist.id:
            raise ValidationFailed([{"field": "release", "message": "belongs to another artist"}])
    track = Track(
        artist_id=artist.id,
        title=values["title"],
        duration_ms=values.get("duration_ms"),
        isrc=values.get("isrc"),
        genres=values.get("genres", []),
        state="draft",
        local=True,
        uri="",
        media={},
    )
    session.add(track)
    await session.flush()
    track.uri = ctx.urls.obj("tracks", track.uuid)
    if release is not None:
        count = await session.scalar(
            select(func.count()).select_from(Track).where(Track.release_id == release.id)
        )
        track.release_id, track.position = release.id, count + 1
    if upload is not None:
        filename, mime, data = upload
        path, size = await _keep_master(ctx, data, track.uuid)
        track.original_path = str(path.relative_to(ctx.settings.data_dir))
        track.original_mime = ((inspected or {}).get("mime") or mime)[:100]
        track.original_size = size
        track.media = {"original_filename": Path(filename).name[:200]}
        if inspected:
            track.media["source"] = {
                k: inspected[k]
                for k in ("ext", "codec", "sample_rate", "channels", "duration_ms", "sha256")
                if k in inspected
            }
        track.state = "processing"
    await session.flush()
    await session.refresh(track, ["artist", "release"])
    await ctx.bus.emit(session, "track.created", track_id=track.id, uri=track.uri)
    if upload is not None:
        await ctx.bus.emit(session, "track.uploaded", track_id=track.id, uri=track.uri)
    return track


async def _keep_master(ctx: NodeContext, data: bytes | Path, uuid: str) -> tuple[Path, int]:
    """Put an upload under DATA/uploads, one file per track (the pipeline
    removes it once the master is in storage); returns (path, size).

    `data` is bytes, or a file spooled by `read_multipart`, which is moved
    (not copied: same file system), so a large master is never in memory.
    """
    limit = ctx.settings.media.max_upload_bytes

    def keep() -> tuple[Path, int]:
        if isinstance(data, Path):
            size = data.stat().st_size
            if size > limit:
                raise PayloadTooLarge("the file is larger than this node accepts")
            h = hashlib.sha256()
            with open(data, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
        else:
            size = len(data)
            if size > limit:
                raise PayloadTooLarge("the file is larger than this node accepts")
            h = hashlib.sha256(data)
        digest = h.hexdigest()
        path = ctx.settings.data_dir / "uploads" / digest[:2] / f"{digest}-{uuid}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Path):
            os.replace(data, path)
        else:
            tmp = path.with_suffix(".part")
            tmp.write_bytes(data)
            tmp.replace(path)
        return path, size

    return await asyncio.to_thread(keep)


def _with_tag_defaults(
    values: dict[str, Any], inspected: dict[str, Any] | None, upload: tuple | None
) -> dict[str, Any]:
    """Fill what the artist left out from the master's tags (then its file name)."""
    values = dict(values)
    tags = (inspected or {}).get("tags") or {}
    if not values.get("title"):
        # aiohttp's client percent-encodes file names; browsers send them as they are.
        stem = unquote(Path(upload[0]).stem).strip() if upload else ""
        title = tags.get("title") or stem[:200]
        if not title:
            raise ValidationFailed([{"field": "title", "message": "required"}])
        values["title"] = title
    if inspected:
        values["duration_ms"] = inspected.get("duration_ms") or values.get("duration_ms")
        if tags.get("isrc"):
            values.setdefault("isrc", tags["isrc"])
        if tags.get("genres"):
            values.setdefault("genres", tags["genres"])
    return values


async def update_track(
    ctx: NodeContext, session: AsyncSession, account: Account, track: Track, values: dict[str, Any]
) -> Track:
    require_owner_or(account, track.artist_id)
    for key in ("title", "isrc", "genres", "duration_ms"):
        if key in values:
            setattr(track, key, values[key])
    if "state" in values:
        track.state = values["state"]
    track.updated_at = utcnow()
    await session.flush()
    await ctx.bus.emit(session, "track.updated", track_id=track.id, uri=track.uri)
    return track


async def delete_track(
    ctx: NodeContext, session: AsyncSession, account: Account, track: Track
) -> None:
    require_owner_or(account, track.artist_id)
    uri, was_public, owner_uri = track.uri, track.public, track.artist.uri
    await session.delete(track)
    await session.flush()
    await ctx.bus.emit(
        session, "track.deleted", uri=uri, was_public=was_public, owner_uri=owner_uri
    )


async def list_tracks(
    session: AsyncSession,
    *,
    artist: Actor | None = None,
    cursor: str | None = None,
    limit: int = 20,
    include_drafts: bool = False,
) -> Page:
    stmt = select(Track).options(selectinload(Track.release))
    if artist is not None:
        stmt = stmt.where(Track.artist_id == artist.id)
    else:
        stmt = stmt.where(Track.local.is_(True))
    if not include_drafts:
        published = select(Release.id).where(Release.state == "published")
        stmt = stmt.where(
            (Track.release_id.in_(published))
            | ((Track.release_id.is_(None)) & (Track.state == "ready"))
        )
    return await keyset_page(
        session, stmt, Track.created_at, Track.id, cursor=cursor, limit=limit, descending=True
    )
