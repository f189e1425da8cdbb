"""Lists and searches: album lists, random songs, songs by genre, starred, search2/3."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select

from node.models import Actor, Play, Release, Track

from . import catalog, errors
from . import serialize as ser
from .dispatch import Call, method
from .models import Rating, Star

MAX_LIST = 500
LIST_TYPES = (
    "random",
    "newest",
    "highest",
    "frequent",
    "recent",
    "alphabeticalByName",
    "alphabeticalByArtist",
    "starred",
    "byYear",
    "byGenre",
)


def _year_bounds(call: Call) -> tuple[int, int]:
    low = call.params.required_int("fromYear", low=0, high=9999)
    high = call.params.required_int("toYear", low=0, high=9999)
    return low, high


def _album_list_query(call: Call):
    kind = call.params.required("type", max_length=32)
    if kind not in LIST_TYPES:
        raise errors.bad_value("type", "must be one of " + ", ".join(LIST_TYPES))
    viewer = call.viewer
    me = call.caller.account
    stmt = catalog.albums(viewer)
    if kind == "random":
        return stmt.order_by(func.random())
    if kind == "newest":
        return stmt.order_by(Release.published_at.desc(), Release.id.desc())
    if kind == "alphabeticalByName":
        return stmt.order_by(func.lower(Release.title), Release.id)
    if kind == "alphabeticalByArtist":
        by = Actor.__table__.alias("by_artist")
        name = func.lower(func.coalesce(func.nullif(by.c.name, ""), by.c.handle))
        return stmt.join(by, by.c.id == Release.artist_id).order_by(
            name, func.lower(Release.title), Release.id
        )
    if kind == "byYear":
        low, high = _year_bounds(call)
        first, last = date(max(min(low, high), 1), 1, 1), date(max(low, high, 1), 12, 31)
        stmt = stmt.where(Release.release_date.between(first, last))
        order = Release.release_date.desc() if low > high else Release.release_date
        return stmt.order_by(order, Release.id)
    if kind == "byGenre":
        genre = call.params.required("genre", max_length=100)
        with_genre = select(Track.release_id).where(
            catalog.genre_filter(genre), catalog.track_visible(viewer)
        )
        return stmt.where(Release.id.in_(with_genre)).order_by(func.lower(Release.title))
    if kind == "starred":
        stars = select(Star.item_id).where(Star.account_id == me.id, Star.kind == "album")
        return stmt.where(Release.id.in_(stars)).order_by(func.lower(Release.title))
    if kind == "highest":
        rated = (
            select(Rating.item_id, Rating.rating)
            .where(Rating.account_id == me.id, Rating.kind == "album")
            .subquery()
        )
        return stmt.join(rated, rated.c.item_id == Release.id).order_by(
            rated.c.rating.desc(), Release.id
        )
    plays = select(Track.release_id.label("rid"), func.count(Play.id).label("n"))
    plays = plays.join(Play, Play.track_id == Track.id)
    if kind == "recent":
        plays = select(Track.release_id.label("rid"), func.max(Play.started_at).label("n")).join(
            Play, Play.track_id == Track.id
        )
        plays = plays.where(Play.listener_id == me.actor_id)
    counted = plays.where(Track.release_id.is_not(None)).group_by(Track.release_id).subquery()
    return stmt.join(counted, counted.c.rid == Release.id).order_by(counted.c.n.desc(), Release.id)


async def _album_list(call: Call) -> tuple[list[Release], Any, Any]:
    stmt = _album_list_query(call)
    size = call.params.int("size", 10, low=0, high=MAX_LIST)
    offset = call.params.int("offset", 0)
    async with call.read() as session:
        releases = list((await session.scalars(stmt.limit(size).offset(offset))).all())
        stats = await catalog.album_stats(session, call.viewer, [r.id for r in releases])
        notes = await call.annotations(session, [("album", r.id) for r in releases])
    return releases, stats, notes


@method("getAlbumList2")
async def get_album_list2(call: Call) -> dict[str, Any]:
    releases, stats, notes = await _album_list(call)
    return {"albumList2": {"album": [ser.album(r, stats.get(r.id), notes) for r in releases]}}


@method("getAlbumList")
async def get_album_list(call: Call) -> dict[str, Any]:
    releases, _, notes = await _album_list(call)
    return {"albumList": {"album": [ser.album_folder(r, notes) for r in releases]}}


async def _songs_payload(call: Call, session, tracks: list[Track]) -> list[dict[str, Any]]:
    notes = await call.annotations(session, [("song", t.id) for t in tracks])
    return [ser.song(t, notes) for t in tracks]


@method("getRandomSongs")
async def get_random_songs(call: Call) -> dict[str, Any]:
    size = call.params.int("size", 10, low=0, high=MAX_LIST)
    stmt = catalog.songs(call.viewer)
    genre = call.params.str("genre", max_length=100)
    if genre:
        stmt = stmt.where(catalog.genre_filter(genre))
    low, high = (
        call.params.int("fromYear", low=0, high=9999),
        call.params.int("toYear", low=0, high=9999),
    )
    if low is not None or high is not None:
        first = date(max(low or 1, 1), 1, 1)
        last = date(max(high or 9999, 1), 12, 31)
        dated = select(Release.id).where(Release.release_date.between(first, last))
        stmt = stmt.where(Track.release_id.in_(dated))
    async with call.read() as session:
        tracks = list((await session.scalars(stmt.order_by(func.random()).limit(size))).all())
        songs = await _songs_payload(call, session, tracks)
    return {"randomSongs": {"song": songs}}


@method("getSongsByGenre")
async def get_songs_by_genre(call: Call) -> dict[str, Any]:
    genre = call.params.required("genre", max_length=100)
    count = call.params.int("count", 10, low=0, high=MAX_LIST)
    offset = call.params.int("offset", 0)
    stmt = catalog.songs(call.viewer).where(catalog.genre_filter(genre))
    async with call.read() as session:
        tracks = await catalog.page_by_id(
            session,
            stmt,
            Track.id,
            offset=offset,
            count=count,
            cursors=call.state.cursors,
            key=(call.caller.account.id, "genre", genre.lower()),
        )
        songs = await _songs_payload(call, session, tracks)
    return {"songsByGenre": {"song": songs}}


async def _starred(call: Call):
    viewer, me = call.viewer, call.caller.account.id

    def starred(kind: str):
        return (
            select(Star.item_id)
            .where(Star.account_id == me, Star.kind == kind)
            .order_by(Star.created_at.desc())
        )

    async with call.read() as session:
        actors = list(
            (await session.scalars(catalog.artists(viewer).where(Actor.id.in_(starred("artist")))))
            .unique()
            .all()
        )
        releases = list(
            (await session.scalars(catalog.albums(viewer).where(Release.id.in_(starred("album")))))
            .unique()
            .all()
        )
        tracks = list(
            (await session.scalars(catalog.songs(viewer).where(Track.id.in_(starred("song")))))
            .unique()
            .all()
        )
        counts = await catalog.album_counts(session, viewer, [a.id for a in actors])
        stats = await catalog.album_stats(session, viewer, [r.id for r in releases])
        notes = await call.annotations(
            session,
            [("artist", a.id) for a in actors]
            + [("album", r.id) for r in releases]
            + [("song", t.id) for t in tracks],
        )
    return actors, releases, tracks, counts, stats, notes


@method("getStarred2")
async def get_starred2(call: Call) -> dict[str, Any]:
    actors, releases, tracks, counts, stats, notes = await _starred(call)
    return {
        "starred2": {
            "artist": [ser.artist(a, counts.get(a.id, 0), notes) for a in actors],
            "album": [ser.album(r, stats.get(r.id), notes) for r in releases],
            "song": [ser.song(t, notes) for t in tracks],
        }
    }


@method("getStarred")
async def get_starred(call: Call) -> dict[str, Any]:
    actors, releases, tracks, _, _, notes = await _starred(call)
    return {
        "starred": {
            "artist": [
                notes.apply(
                    {"id": catalog.make_id("artist", a.id), "name": ser.artist_name(a)},
                    "artist",
                    a.id,
                )
                for a in actors
            ],
            "album": [ser.album_folder(r, notes) for r in releases],
            "song": [ser.song(t, notes) for t in tracks],
        }
    }


# ---- search -------------------------------------------------------------------


def _query(call: Call) -> str:
    if not call.params.has("query"):
        raise errors.missing("query")
    query = (call.params.str("query", max_length=200) or "").strip()
    # Clients that want "everything" send "" or a bare pair of quotes (OpenSubsonic).
    if query in ('""', "''", "*"):
        query = ""
    return query.strip('"')


async def _search(call: Call, listing: str):
    query = _query(call)
    viewer, me = call.viewer, call.caller.account.id
    limits = {}
    for kind in ("artist", "album", "song"):
        limits[kind] = (
            call.params.int(f"{kind}Count", 20, low=0, high=MAX_LIST),
            call.params.int(f"{kind}Offset", 0),
        )
    artists_q = catalog.artists(viewer)
    albums_q = catalog.albums(viewer)
    songs_q = catalog.songs(viewer)
    if query:
        artists_q = artists_q.where(
            catalog.text_match(Actor.name, query) | catalog.text_match(Actor.handle, query)
        )
        albums_q = albums_q.where(catalog.text_match(Release.title, query))
        songs_q = songs_q.where(catalog.text_match(Track.title, query))
    pages = {}
    async with call.read() as session:
        for kind, stmt, column in (
            ("artist", artists_q, Actor.id),
            ("album", albums_q, Release.id),
            ("song", songs_q, Track.id),
        ):
            count, offset = limits[kind]
            pages[kind] = await catalog.page_by_id(
                session,
                stmt,
                column,
                offset=offset,
                count=count,
                cursors=call.state.cursors,
                key=(me, listing, kind, query.lower()),
            )
        counts = await catalog.album_counts(session, viewer, [a.id for a in pages["artist"]])
        stats = await catalog.album_stats(session, viewer, [r.id for r in pages["album"]])
        notes = await call.annotations(
            session,
            [("artist", a.id) for a in pages["artist"]]
            + [("album", r.id) for r in pages["album"]]
            + [("song", t.id) for t in pages["song"]],
        )
    return pages, counts, stats, notes


@method("search3")
async def search3(call: Call) -> dict[str, Any]:
    pages, counts, stats, notes = await _search(call, "search3")
    return {
        "searchResult3": {
            "artist": [ser.artist(a, counts.get(a.id, 0), notes) for a in pages["artist"]],
            "album": [ser.album(r, stats.get(r.id), notes) for r in pages["album"]],
            "song": [ser.song(t, notes) for t in pages["song"]],
        }
    }


@method("search2")
async def search2(call: Call) -> dict[str, Any]:
    pages, _, _, notes = await _search(call, "search2")
    return {
        "searchResult2": {
            "artist": [
                notes.apply(
                    {"id": catalog.make_id("artist", a.id), "name": ser.artist_name(a)},
                    "artist",
                    a.id,
                )
                for a in pages["artist"]
            ],
            "album": [ser.album_folder(r, notes) for r in pages["album"]],
            "song": [ser.song(t, notes) for t in pages["song"]],
        }
    }
