"""What a Subsonic user may see, as SQL: the node's published catalog and the
remote artists they follow.

Releases map to albums, artist actors to artists, tracks to songs. A local
track shows once it is `ready` and its release (if any) is published; a
remote track or release shows when its artist is followed (an accepted
follow) by the caller. Ids carry their kind (`ar-`, `al-`, `tr-`, `pl-`) so
one namespace serves `getMusicDirectory`, `getCoverArt` and `star`.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from time import monotonic
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, and_, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from node.models import Actor, ArtistProfile, Follow, Release, Track

from .errors import not_found

PREFIXES = {"ar": "artist", "al": "album", "tr": "song", "pl": "playlist"}
KIND_PREFIX = {kind: prefix for prefix, kind in PREFIXES.items()}
MAX_ID = 2**62


def make_id(kind: str, row_id: int) -> str:
    return f"{KIND_PREFIX[kind]}-{row_id}"


def parse_id(value: str, *kinds: str) -> tuple[str, int]:
    """`al-12` -> ("album", 12). Anything else, or a kind not in `kinds`, is not found (70)."""
    prefix, _, number = value.partition("-")
    kind = PREFIXES.get(prefix)
    if kind is None or (kinds and kind not in kinds) or not number.isdigit():
        raise not_found()
    row_id = int(number)
    if not 0 < row_id < MAX_ID:
        raise not_found()
    return kind, row_id


@dataclass(frozen=True)
class Viewer:
    account_id: int
    actor_id: int


def followed(viewer: Viewer) -> Select:
    return select(Follow.target_id).where(
        Follow.follower_id == viewer.actor_id, Follow.state == "accepted"
    )


def track_visible(viewer: Viewer) -> ColumnElement[bool]:
    published = select(Release.id).where(Release.state == "published")
    local = and_(
        Track.local.is_(True),
        or_(Track.release_id.is_(None), Track.release_id.in_(published)),
    )
    remote = and_(Track.local.is_(False), Track.artist_id.in_(followed(viewer)))
    return and_(Track.state == "ready", or_(local, remote))


def release_visible(viewer: Viewer) -> ColumnElement[bool]:
    return and_(
        Release.state == "published",
        or_(Release.local.is_(True), Release.artist_id.in_(followed(viewer))),
    )


def artist_visible(viewer: Viewer) -> ColumnElement[bool]:
    """A local or followed artist with at least one song to play (no empty folders)."""
    has_songs = select(Track.id).where(Track.artist_id == Actor.id, track_visible(viewer)).exists()
    return and_(
        Actor.is_artist.is_(True),
        or_(Actor.local.is_(True), Actor.id.in_(followed(viewer))),
        has_songs,
    )


def songs(viewer: Viewer) -> Select:
    """Visible tracks with what a song entry shows (release, artist and its genres)."""
    return (
        select(Track)
        .where(track_visible(viewer))
        .options(
            selectinload(Track.release),
            joinedload(Track.artist).selectinload(Actor.profile),
        )
    )


def albums(viewer: Viewer) -> Select:
    return select(Release).where(release_visible(viewer))


def artists(viewer: Viewer) -> Select:
    return select(Actor).where(artist_visible(viewer)).options(selectinload(Actor.profile))


async def get_song(session: AsyncSession, viewer: Viewer, track_id: int) -> Track:
    track = await session.scalar(songs(viewer).where(Track.id == track_id))
    if track is None:
        raise not_found("Song")
    return track


async def get_album(session: AsyncSession, viewer: Viewer, release_id: int) -> Release:
    release = await session.scalar(albums(viewer).where(Release.id == release_id))
    if release is None:
        raise not_found("Album")
    return release


async def get_artist(session: AsyncSession, viewer: Viewer, actor_id: int) -> Actor:
    actor = await session.scalar(artists(viewer).where(Actor.id == actor_id))
    if actor is None:
        raise not_found("Artist")
    return actor


async def songs_of_album(session: AsyncSession, viewer: Viewer, release_id: int) -> list[Track]:
    rows = await session.scalars(
        songs(viewer).where(Track.release_id == release_id).order_by(Track.position, Track.id)
    )
    return list(rows.all())


async def albums_of_artist(session: AsyncSession, viewer: Viewer, actor_id: int) -> list[Release]:
    rows = await session.scalars(
        albums(viewer)
        .where(Release.artist_id == actor_id)
        .order_by(Release.release_date, Release.published_at, Release.id)
    )
    return list(rows.all())


async def loose_songs_of_artist(
    session: AsyncSession, viewer: Viewer, actor_id: int
) -> list[Track]:
    """Tracks standing alone (no release): they appear in the artist's folder."""
    rows = await session.scalars(
        songs(viewer)
        .where(Track.artist_id == actor_id, Track.release_id.is_(None))
        .order_by(Track.created_at, Track.id)
    )
    return list(rows.all())


@dataclass(frozen=True)
class AlbumStats:
    songs: int = 0
    duration_ms: int = 0


async def album_stats(
    session: AsyncSession, viewer: Viewer, release_ids: list[int]
) -> dict[int, AlbumStats]:
    if not release_ids:
        return {}
    rows = await session.execute(
        select(Track.release_id, func.count(), func.coalesce(func.sum(Track.duration_ms), 0))
        .where(Track.release_id.in_(release_ids), track_visible(viewer))
        .group_by(Track.release_id)
    )
    return {rid: AlbumStats(int(n), int(ms)) for rid, n, ms in rows.all()}


async def album_counts(
    session: AsyncSession, viewer: Viewer, actor_ids: list[int]
) -> dict[int, int]:
    if not actor_ids:
        return {}
    rows = await session.execute(
        select(Release.artist_id, func.count())
        .where(Release.artist_id.in_(actor_ids), release_visible(viewer))
        .group_by(Release.artist_id)
    )
    return {aid: int(n) for aid, n in rows.all()}


# ---- genres ------------------------------------------------------------------


def genres_of(track: Track) -> list[str]:
    """A track's genres: its own, else its release's, else its artist's."""
    if track.genres:
        return list(track.genres)
    if track.release is not None and track.release.genres:
        return list(track.release.genres)
    profile = track.artist.profile if track.artist is not None else None
    return list(profile.genres) if profile is not None and profile.genres else []


def genre_filter(genre: str) -> ColumnElement[bool]:
    """Tracks with `genre` among their own, their release's or their artist's genres.

    Genres are short JSON lists; one whole item is matched in their text form,
    which reads the same on SQLite and PostgreSQL (as node.services.catalog does).
    """
    needle = json.dumps(genre.strip().lower())

    def has(column) -> ColumnElement[bool]:
        return func.lower(cast(column, Text)).contains(needle, autoescape=True)

    in_release = select(Release.id).where(has(Release.genres))
    in_artist = select(ArtistProfile.actor_id).where(has(ArtistProfile.genres))
    return or_(has(Track.genres), Track.release_id.in_(in_release), Track.artist_id.in_(in_artist))


GENRE_SCAN_LIMIT = 50_000


async def genre_counts(session: AsyncSession, viewer: Viewer) -> list[tuple[str, int, int]]:
    """(genre, songs, albums), most songs first. Reads only the genre columns."""
    rows = await session.execute(
        select(Track.genres, Track.release_id, Release.genres, ArtistProfile.genres)
        .outerjoin(Release, Release.id == Track.release_id)
        .outerjoin(ArtistProfile, ArtistProfile.actor_id == Track.artist_id)
        .where(track_visible(viewer))
        .limit(GENRE_SCAN_LIMIT)
    )
    song_counts: dict[str, int] = {}
    album_sets: dict[str, set[int]] = {}
    names: dict[str, str] = {}
    for own, release_id, of_release, of_artist in rows.all():
        chosen = own or of_release or of_artist or []
        for name in {str(g).strip() for g in chosen if str(g).strip()}:
            key = name.lower()
            names.setdefault(key, name)
            song_counts[key] = song_counts.get(key, 0) + 1
            if release_id is not None:
                album_sets.setdefault(key, set()).add(release_id)
    return sorted(
        ((names[k], n, len(album_sets.get(k, ()))) for k, n in song_counts.items()),
        key=lambda g: (-g[1], g[0].lower()),
    )


# ---- paging through everything -------------------------------------------------


class PageCursors:
    """Where the last page of a listing ended, so the next one starts there.

    Subsonic pages by offset (`songOffset=5000`), and an OFFSET makes the
    database walk past every skipped row. Clients page forward, one page after
    another: remembering the last id served for (caller, listing, next offset)
    turns the next request into `WHERE id > :last ORDER BY id LIMIT n`, an
    index range scan whatever the depth. An unknown offset still works, by
    OFFSET. Entries are few and expire, so a changed catalog heals itself.
    """

    def __init__(self, size: int = 4096, ttl_seconds: float = 600.0) -> None:
        self.size, self.ttl = size, ttl_seconds
        self._entries: OrderedDict[tuple[Any, ...], tuple[float, int]] = OrderedDict()

    def get(self, key: tuple[Any, ...]) -> int | None:
        found = self._entries.get(key)
        if found is None:
            return None
        at, last_id = found
        if monotonic() - at > self.ttl:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return last_id

    def put(self, key: tuple[Any, ...], last_id: int) -> None:
        self._entries[key] = (monotonic(), last_id)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


async def page_by_id(
    session: AsyncSession,
    stmt: Select,
    id_column: Any,
    *,
    offset: int,
    count: int,
    cursors: PageCursors,
    key: tuple[Any, ...],
) -> list[Any]:
    """One page of `stmt` in id order, keyset from the remembered cursor when known."""
    if count == 0:
        return []
    stmt = stmt.order_by(id_column).limit(count)
    last = cursors.get((*key, offset)) if offset else None
    if last is not None:
        stmt = stmt.where(id_column > last)
    elif offset:
        stmt = stmt.offset(offset)
    rows = list((await session.scalars(stmt)).all())
    if rows:
        cursors.put((*key, offset + len(rows)), rows[-1].id)
    return rows


def text_match(column: Any, query: str) -> ColumnElement[bool]:
    return func.lower(column).contains(query.lower(), autoescape=True)
