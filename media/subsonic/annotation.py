"""Stars, ratings, scrobbles and what is playing now.

A scrobble with `submission=true` records a play through the core plays
service (node.services.social.record_play, source `subsonic`), which sends
it on to the artist's node like any other play. Its play id is derived from
(user, song, time), so a client that retries a scrobble, or sends it twice,
still makes one play. `submission=false` only says what is playing now.
"""

from __future__ import annotations

import time as clock
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from node.models import Actor, utcnow
from node.services.social import record_play

from . import catalog, errors
from . import serialize as ser
from .dispatch import Call, method
from .models import Rating, Star

PLAY_NAMESPACE = uuid.UUID("6f1f7c1e-6c55-4c2b-9b7e-4d7c0c1e5b11")
# Without a `time`, a repeated scrobble inside this window is the same play.
UNTIMED_WINDOW_MS = 30_000
NOW_PLAYING_SECONDS = 15 * 60


async def _items(call: Call, session) -> list[tuple[str, int]]:
    """(kind, id) of every `id`, `albumId` and `artistId` given, each checked to exist."""
    wanted: list[tuple[str, int]] = []
    for value in call.params.list("id", max_length=40):
        wanted.append(catalog.parse_id(value, "artist", "album", "song"))
    for value in call.params.list("albumId", max_length=40):
        wanted.append(catalog.parse_id(value, "album"))
    for value in call.params.list("artistId", max_length=40):
        wanted.append(catalog.parse_id(value, "artist"))
    if not wanted:
        raise errors.missing("id")
    getters = {
        "artist": catalog.get_artist,
        "album": catalog.get_album,
        "song": catalog.get_song,
    }
    for kind, row_id in dict.fromkeys(wanted):
        await getters[kind](session, call.viewer, row_id)
    return list(dict.fromkeys(wanted))


@method("star")
async def star(call: Call) -> dict[str, Any]:
    me = call.caller.account.id
    async with call.write() as session:
        for kind, row_id in await _items(call, session):
            exists = await session.scalar(
                select(Star.id).where(
                    Star.account_id == me, Star.kind == kind, Star.item_id == row_id
                )
            )
            if exists is None:
                try:
                    # A double tap may race this one to the same star: one of them wins.
                    async with session.begin_nested():
                        session.add(
                            Star(account_id=me, kind=kind, item_id=row_id, created_at=utcnow())
                        )
                except IntegrityError:
                    pass
    return {}


@method("unstar")
async def unstar(call: Call) -> dict[str, Any]:
    me = call.caller.account.id
    async with call.write() as session:
        wanted: list[tuple[str, int]] = []
        for name, kinds in (
            ("id", ("artist", "album", "song")),
            ("albumId", ("album",)),
            ("artistId", ("artist",)),
        ):
            wanted += [catalog.parse_id(v, *kinds) for v in call.params.list(name, max_length=40)]
        if not wanted:
            raise errors.missing("id")
        for kind, row_id in wanted:
            await session.execute(
                delete(Star).where(Star.account_id == me, Star.kind == kind, Star.item_id == row_id)
            )
    return {}


@method("setRating")
async def set_rating(call: Call) -> dict[str, Any]:
    value = call.params.required("id", max_length=40)
    rating = call.params.required_int("rating", low=0, high=5)
    kind, row_id = catalog.parse_id(value, "artist", "album", "song")
    me = call.caller.account.id
    async with call.write() as session:
        getter = {
            "artist": catalog.get_artist,
            "album": catalog.get_album,
            "song": catalog.get_song,
        }[kind]
        await getter(session, call.viewer, row_id)
        row = await session.scalar(
            select(Rating).where(
                Rating.account_id == me, Rating.kind == kind, Rating.item_id == row_id
            )
        )
        if rating == 0:
            if row is not None:
                await session.delete(row)
        elif row is None:
            session.add(
                Rating(account_id=me, kind=kind, item_id=row_id, rating=rating, updated_at=utcnow())
            )
        else:
            row.rating, row.updated_at = rating, utcnow()
    return {}


def play_id_for(account_id: int, track_id: int, time_ms: int) -> str:
    """The play's id: the same (user, song, time) always names the same play."""
    return str(uuid.uuid5(PLAY_NAMESPACE, f"subsonic:{account_id}:{track_id}:{time_ms}"))


@method("scrobble")
async def scrobble(call: Call) -> dict[str, Any]:
    ids = call.params.list("id", max_length=40)
    if not ids:
        raise errors.missing("id")
    times = call.params.list("time", max_length=20)
    if times and len(times) != len(ids):
        raise errors.bad_value("time", "must be given once for each id")
    submission = call.params.bool("submission", True)
    parsed = [catalog.parse_id(value, "song")[1] for value in ids]
    stamps: list[int | None] = []
    for raw in times or [None] * len(ids):
        if raw is None:
            stamps.append(None)
            continue
        if not raw.isdigit() or len(raw) > 15:
            raise errors.bad_value("time", "must be milliseconds since the epoch")
        stamps.append(int(raw))
    me = call.caller.account
    if not submission:
        async with call.read() as session:
            for track_id in parsed:
                await catalog.get_song(session, call.viewer, track_id)
        client = (call.params.str("c", "", max_length=100) or "")[:100]
        call.state.now_playing[me.id] = (parsed[-1], clock.time(), client)
        return {}
    async with call.write() as session:
        listener = await session.get(Actor, me.actor_id)
        for track_id, stamp in zip(parsed, stamps, strict=True):
            track = await catalog.get_song(session, call.viewer, track_id)
            duration = max(track.duration_ms or 0, 0)
            if stamp is None:
                now_ms = int(clock.time() * 1000)
                stamp_key = now_ms - now_ms % UNTIMED_WINDOW_MS
                started_at = utcnow() - timedelta(milliseconds=duration)
            else:
                stamp_key = stamp
                started_at = datetime.fromtimestamp(stamp / 1000, UTC)
            await record_play(
                call.ctx,
                session,
                listener,
                track,
                started_at=started_at,
                ms_listened=duration,
                source="subsonic",
                play_id=play_id_for(me.id, track.id, stamp_key),
            )
    call.state.now_playing.pop(me.id, None)
    return {}


@method("getNowPlaying")
async def get_now_playing(call: Call) -> dict[str, Any]:
    from node.models import Account

    now = clock.time()
    fresh = {
        account_id: entry
        for account_id, entry in list(call.state.now_playing.items())
        if now - entry[1] < NOW_PLAYING_SECONDS
    }
    call.state.now_playing = fresh
    entries = []
    async with call.read() as session:
        for account_id, (track_id, at, client) in fresh.items():
            try:
                track = await catalog.get_song(session, call.viewer, track_id)
            except errors.SubsonicError:
                continue
            account = await session.get(Account, account_id)
            if account is None:
                continue
            entry = ser.song(track)
            entry.update(
                username=account.username,
                minutesAgo=int((now - at) // 60),
                playerId=0,
                playerName=client or None,
            )
            entries.append(entry)
    return {"nowPlaying": {"entry": entries}}
