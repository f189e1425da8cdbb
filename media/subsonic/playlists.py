"""Playlists: a user's own lists of songs, private unless made public.

Only the owner changes a playlist (code 50 for anyone else); songs the
caller can no longer see (unpublished, an unfollowed remote artist) stay in
the list but are left out when it is shown.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.models import Account, Track, utcnow

from . import catalog, errors
from . import serialize as ser
from .dispatch import Call, method
from .models import Playlist, PlaylistEntry

MAX_ENTRIES = 5000
MAX_PLAYLISTS = 1000


async def _owner_names(session: AsyncSession, playlists: list[Playlist]) -> dict[int, str]:
    ids = {p.owner_id for p in playlists}
    if not ids:
        return {}
    rows = await session.execute(select(Account.id, Account.username).where(Account.id.in_(ids)))
    return dict(rows.all())


async def _visible_tracks(call: Call, session: AsyncSession, ids: list[int]) -> dict[int, Track]:
    if not ids:
        return {}
    rows = await session.scalars(catalog.songs(call.viewer).where(Track.id.in_(set(ids))))
    return {t.id: t for t in rows.unique().all()}


def _summary(playlist: Playlist, owner: str, tracks: list[Track]) -> dict[str, Any]:
    return {
        "id": catalog.make_id("playlist", playlist.id),
        "name": playlist.name,
        "comment": playlist.comment or None,
        "owner": owner,
        "public": playlist.public,
        "songCount": len(tracks),
        "duration": sum(t.duration_ms or 0 for t in tracks) // 1000,
        "created": playlist.created_at,
        "changed": playlist.updated_at,
        "coverArt": catalog.make_id("song", tracks[0].id) if tracks else None,
    }


async def _load(call: Call, session: AsyncSession, value: str, *, mine: bool) -> Playlist:
    _, row_id = catalog.parse_id(value, "playlist")
    playlist = await session.get(Playlist, row_id)
    me = call.caller.account
    if playlist is None or (playlist.owner_id != me.id and not playlist.public):
        raise errors.not_found("Playlist")
    if mine and playlist.owner_id != me.id:
        raise errors.forbidden("Only the owner may change this playlist")
    return playlist


async def _full(call: Call, session: AsyncSession, playlist: Playlist) -> dict[str, Any]:
    tracks_by_id = await _visible_tracks(call, session, [e.track_id for e in playlist.entries])
    tracks = [tracks_by_id[e.track_id] for e in playlist.entries if e.track_id in tracks_by_id]
    owners = await _owner_names(session, [playlist])
    notes = await call.annotations(session, [("song", t.id) for t in tracks])
    entry = _summary(playlist, owners.get(playlist.owner_id, ""), tracks)
    entry["entry"] = [ser.song(t, notes) for t in tracks]
    return entry


async def _song_ids(call: Call, session: AsyncSession, name: str) -> list[int]:
    ids = [catalog.parse_id(v, "song")[1] for v in call.params.list(name, max_length=40)]
    found = await _visible_tracks(call, session, ids)
    missing = [i for i in ids if i not in found]
    if missing:
        raise errors.not_found(f"Song {catalog.make_id('song', missing[0])}")
    return ids


@method("getPlaylists")
async def get_playlists(call: Call) -> dict[str, Any]:
    me = call.caller.account
    username = (call.params.str("username", max_length=64) or "").lower()
    async with call.read() as session:
        owner_id = me.id
        if username and username != me.username:
            if not call.caller.is_admin:
                raise errors.forbidden("Only admins may list other users' playlists")
            owner_id = await session.scalar(select(Account.id).where(Account.username == username))
            if owner_id is None:
                raise errors.not_found("User")
            stmt = select(Playlist).where(Playlist.owner_id == owner_id)
        else:
            stmt = select(Playlist).where(
                or_(Playlist.owner_id == owner_id, Playlist.public.is_(True))
            )
        playlists = list(
            (await session.scalars(stmt.order_by(Playlist.id).limit(MAX_PLAYLISTS))).all()
        )
        owners = await _owner_names(session, playlists)
        ids = [e.track_id for p in playlists for e in p.entries]
        visible = await _visible_tracks(call, session, ids)
    out = []
    for p in playlists:
        tracks = [visible[e.track_id] for e in p.entries if e.track_id in visible]
        out.append(_summary(p, owners.get(p.owner_id, ""), tracks))
    return {"playlists": {"playlist": out}}


@method("getPlaylist")
async def get_playlist(call: Call) -> dict[str, Any]:
    value = call.params.required("id", max_length=40)
    async with call.read() as session:
        playlist = await _load(call, session, value, mine=False)
        return {"playlist": await _full(call, session, playlist)}


def _set_entries(playlist: Playlist, track_ids: list[int]) -> None:
    if len(track_ids) > MAX_ENTRIES:
        raise errors.bad_value("songId", f"a playlist holds at most {MAX_ENTRIES} songs")
    playlist.entries = [
        PlaylistEntry(position=i, track_id=track_id) for i, track_id in enumerate(track_ids)
    ]


@method("createPlaylist")
async def create_playlist(call: Call) -> dict[str, Any]:
    """Create (with `name`) or replace the songs of (with `playlistId`) a playlist."""
    existing = call.params.str("playlistId", max_length=40)
    name = call.params.str("name", max_length=200)
    if not existing and not name:
        raise errors.missing("name")
    me = call.caller.account
    async with call.write() as session:
        track_ids = await _song_ids(call, session, "songId")
        if existing:
            playlist = await _load(call, session, existing, mine=True)
            if name:
                playlist.name = name
        else:
            count = await session.scalar(
                select(Playlist.id).where(Playlist.owner_id == me.id).offset(MAX_PLAYLISTS - 1)
            )
            if count is not None:
                raise errors.bad_value("name", f"a user has at most {MAX_PLAYLISTS} playlists")
            playlist = Playlist(owner_id=me.id, name=name, comment="", public=False, entries=[])
            session.add(playlist)
        _set_entries(playlist, track_ids)
        playlist.updated_at = utcnow()
        await session.flush()
        return {"playlist": await _full(call, session, playlist)}


@method("updatePlaylist")
async def update_playlist(call: Call) -> dict[str, Any]:
    value = call.params.required("playlistId", max_length=40)
    async with call.write() as session:
        playlist = await _load(call, session, value, mine=True)
        name = call.params.str("name", max_length=200)
        if name:
            playlist.name = name
        comment = call.params.str("comment", max_length=2000)
        if comment is not None:
            playlist.comment = comment
        public = call.params.bool("public")
        if public is not None:
            playlist.public = public
        current = [e.track_id for e in playlist.entries]
        remove = set()
        for raw in call.params.list("songIndexToRemove", max_length=10):
            if not raw.isdigit() or int(raw) >= len(current):
                raise errors.bad_value("songIndexToRemove", "is not a position in the playlist")
            remove.add(int(raw))
        kept = [t for i, t in enumerate(current) if i not in remove]
        added = await _song_ids(call, session, "songIdToAdd")
        if remove or added:
            _set_entries(playlist, kept + added)
        playlist.updated_at = utcnow()
    return {}


@method("deletePlaylist")
async def delete_playlist(call: Call) -> dict[str, Any]:
    value = call.params.required("id", max_length=40)
    async with call.write() as session:
        playlist = await _load(call, session, value, mine=True)
        await session.delete(playlist)
    return {}
