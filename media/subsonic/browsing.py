"""System and browsing methods: ping, license, extensions, user, folders,
indexes and directories (folder view), artists, albums and songs (ID3 view),
genres."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from node.models import Account, Release

from . import catalog, errors
from . import serialize as ser
from .dispatch import Call, method

MUSIC_FOLDER_ID = 1

# OpenSubsonic extensions this server implements (getOpenSubsonicExtensions).
EXTENSIONS = {"apiKeyAuthentication": [1], "formPost": [1]}


@method("ping")
async def ping(call: Call) -> dict[str, Any]:
    return {}


@method("getLicense")
async def get_license(call: Call) -> dict[str, Any]:
    # Free software: always licensed. Clients (DSub) refuse to play without `valid`.
    return {"license": {"valid": True}}


@method("getOpenSubsonicExtensions", auth=False)
async def get_extensions(call: Call) -> dict[str, Any]:
    return {
        "openSubsonicExtensions": [
            {"name": name, "versions": versions} for name, versions in EXTENSIONS.items()
        ]
    }


@method("tokenInfo")
async def token_info(call: Call) -> dict[str, Any]:
    """OpenSubsonic: which user an API key belongs to."""
    return {"tokenInfo": {"username": call.caller.account.username}}


def _user(account: Account) -> dict[str, Any]:
    admin = account.role == "admin"
    return {
        "username": account.username,
        "email": account.email,
        "scrobblingEnabled": True,
        "adminRole": admin,
        "settingsRole": True,
        "downloadRole": True,
        "uploadRole": False,
        "playlistRole": True,
        "coverArtRole": False,
        "commentRole": False,
        "podcastRole": False,
        "streamRole": True,
        "jukeboxRole": False,
        "shareRole": False,
        "videoConversionRole": False,
        "folder": [MUSIC_FOLDER_ID],
    }


@method("getUser")
async def get_user(call: Call) -> dict[str, Any]:
    username = call.params.required("username", max_length=64).lower()
    me = call.caller.account
    if username == me.username:
        return {"user": _user(me)}
    if not call.caller.is_admin:
        raise errors.forbidden("Only admins may see other users")
    async with call.read() as session:
        other = await session.scalar(select(Account).where(Account.username == username))
    if other is None:
        raise errors.not_found("User")
    return {"user": _user(other)}


@method("getMusicFolders")
async def get_music_folders(call: Call) -> dict[str, Any]:
    return {
        "musicFolders": {
            "musicFolder": [{"id": MUSIC_FOLDER_ID, "name": call.ctx.settings.node.name}]
        }
    }


def _check_folder(call: Call) -> None:
    folder = call.params.int("musicFolderId")
    if folder is not None and folder != MUSIC_FOLDER_ID:
        raise errors.not_found("Music folder")


async def _artists_with_counts(call: Call, session) -> tuple[list, dict[int, int]]:
    viewer = call.viewer
    actors = list((await session.scalars(catalog.artists(viewer).limit(20_000))).all())
    counts = await catalog.album_counts(session, viewer, [a.id for a in actors])
    return actors, counts


async def _last_modified(session) -> int:
    newest = await session.scalar(select(func.max(Release.updated_at)))
    return int(newest.timestamp() * 1000) if newest else 0


@method("getIndexes")
async def get_indexes(call: Call) -> dict[str, Any]:
    _check_folder(call)
    async with call.read() as session:
        actors, _ = await _artists_with_counts(call, session)
        notes = await call.annotations(session, [("artist", a.id) for a in actors])
        modified = await _last_modified(session)
    entries = [
        (
            ser.artist_name(a),
            notes.apply(
                {"id": catalog.make_id("artist", a.id), "name": ser.artist_name(a)}, "artist", a.id
            ),
        )
        for a in actors
    ]
    return {
        "indexes": {
            "lastModified": modified,
            "ignoredArticles": ser.IGNORED_ARTICLES,
            "index": ser.indexed(entries),
        }
    }


@method("getArtists")
async def get_artists(call: Call) -> dict[str, Any]:
    _check_folder(call)
    async with call.read() as session:
        actors, counts = await _artists_with_counts(call, session)
        notes = await call.annotations(session, [("artist", a.id) for a in actors])
    entries = [(ser.artist_name(a), ser.artist(a, counts.get(a.id, 0), notes)) for a in actors]
    return {"artists": {"ignoredArticles": ser.IGNORED_ARTICLES, "index": ser.indexed(entries)}}


@method("getMusicDirectory")
async def get_music_directory(call: Call) -> dict[str, Any]:
    kind, row_id = catalog.parse_id(call.params.required("id", max_length=40), "artist", "album")
    viewer = call.viewer
    async with call.read() as session:
        if kind == "artist":
            actor = await catalog.get_artist(session, viewer, row_id)
            releases = await catalog.albums_of_artist(session, viewer, row_id)
            loose = await catalog.loose_songs_of_artist(session, viewer, row_id)
            notes = await call.annotations(
                session,
                [("artist", row_id)]
                + [("album", r.id) for r in releases]
                + [("song", t.id) for t in loose],
            )
            directory = {
                "id": catalog.make_id("artist", row_id),
                "name": ser.artist_name(actor),
                "child": [ser.album_folder(r, notes) for r in releases]
                + [ser.song(t, notes) for t in loose],
            }
            return {"directory": notes.apply(directory, "artist", row_id)}
        release = await catalog.get_album(session, viewer, row_id)
        tracks = await catalog.songs_of_album(session, viewer, row_id)
        notes = await call.annotations(
            session, [("album", row_id)] + [("song", t.id) for t in tracks]
        )
    directory = {
        "id": catalog.make_id("album", row_id),
        "parent": catalog.make_id("artist", release.artist_id),
        "name": release.title,
        "child": [ser.song(t, notes) for t in tracks],
    }
    return {"directory": notes.apply(directory, "album", row_id)}


@method("getArtist")
async def get_artist(call: Call) -> dict[str, Any]:
    _, row_id = catalog.parse_id(call.params.required("id", max_length=40), "artist")
    viewer = call.viewer
    async with call.read() as session:
        actor = await catalog.get_artist(session, viewer, row_id)
        releases = await catalog.albums_of_artist(session, viewer, row_id)
        stats = await catalog.album_stats(session, viewer, [r.id for r in releases])
        notes = await call.annotations(
            session, [("artist", row_id)] + [("album", r.id) for r in releases]
        )
    entry = ser.artist(actor, len(releases), notes)
    entry["album"] = [ser.album(r, stats.get(r.id), notes) for r in releases]
    return {"artist": entry}


@method("getAlbum")
async def get_album(call: Call) -> dict[str, Any]:
    _, row_id = catalog.parse_id(call.params.required("id", max_length=40), "album")
    viewer = call.viewer
    async with call.read() as session:
        release = await catalog.get_album(session, viewer, row_id)
        tracks = await catalog.songs_of_album(session, viewer, row_id)
        notes = await call.annotations(
            session, [("album", row_id)] + [("song", t.id) for t in tracks]
        )
    stats = catalog.AlbumStats(len(tracks), sum(t.duration_ms or 0 for t in tracks))
    entry = ser.album(release, stats, notes)
    entry["song"] = [ser.song(t, notes) for t in tracks]
    return {"album": entry}


@method("getSong")
async def get_song(call: Call) -> dict[str, Any]:
    _, row_id = catalog.parse_id(call.params.required("id", max_length=40), "song")
    async with call.read() as session:
        track = await catalog.get_song(session, call.viewer, row_id)
        notes = await call.annotations(session, [("song", row_id)])
    return {"song": ser.song(track, notes)}


@method("getGenres")
async def get_genres(call: Call) -> dict[str, Any]:
    async with call.read() as session:
        counts = await catalog.genre_counts(session, call.viewer)
    return {
        "genres": {
            "genre": [
                {"songCount": songs, "albumCount": albums, "value": name}
                for name, songs, albums in counts
            ]
        }
    }
