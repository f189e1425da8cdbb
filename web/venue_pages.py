"""Venue pages: a venue with its upcoming shows and the music its devices
recently heard (`/venues/UUID`, the venue's URI), and an artist's venue plays
(`/@HANDLE/venues`): where, and how often, their tracks were played in rooms.

Plays held back by the fraud rules are not shown: they are not counted
until an admin releases them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import exists, func, select

from detection.device_models import PlayHold
from node.appkeys import CTX
from node.errors import NotFound
from node.models import Actor, Event, Play, Track, Venue, utcnow
from node.validation import UUID_RE

from .objects import HANDLE_PATH
from .render import render

VENUE_SOURCES = ("venue", "dj")
RECENT = 30


@dataclass(frozen=True)
class HeardPlay:
    started_at: datetime
    ms_listened: int
    source: str
    title: str
    track_uuid: str | None
    track_local: bool
    artist_name: str
    artist_handle: str | None
    artist_domain: str | None
    artist_local: bool
    venue_name: str | None = None
    venue_uuid: str | None = None


def _counted():
    """Venue plays that count: detected in a room and not held back."""
    held = exists().where(PlayHold.play_id == Play.id, PlayHold.released_at.is_(None))
    return Play.source.in_(VENUE_SOURCES) & ~held


def _heard_query():
    return (
        select(
            Play.started_at,
            Play.ms_listened,
            Play.source,
            Track.title,
            Track.uuid,
            Track.local,
            Actor.name,
            Actor.handle,
            Actor.domain,
            Actor.local,
            Venue.name,
            Venue.uuid,
        )
        .join(Track, Track.id == Play.track_id)
        .join(Actor, Actor.id == Track.artist_id)
        .outerjoin(Venue, Venue.id == Play.venue_id)
        .where(_counted())
        .order_by(Play.started_at.desc(), Play.id.desc())
        .limit(RECENT)
    )


def _heard(rows) -> list[HeardPlay]:
    return [
        HeardPlay(
            started_at=r[0],
            ms_listened=r[1],
            source=r[2],
            title=r[3],
            track_uuid=r[4],
            track_local=r[5],
            artist_name=r[6] or r[7],
            artist_handle=r[7],
            artist_domain=r[8],
            artist_local=r[9],
            venue_name=r[10],
            venue_uuid=r[11],
        )
        for r in rows
    ]


async def venue(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    uuid = request.match_info["uuid"].lower()
    if not UUID_RE.match(uuid):
        raise NotFound("There is nothing at this address.")
    since = utcnow() - timedelta(days=30)
    async with ctx.db.read_session() as s:
        place = await s.scalar(select(Venue).where(Venue.uuid == uuid))
        if place is None:
            raise NotFound("There is no such venue here.")
        shows = (
            await s.scalars(
                select(Event)
                .where(
                    Event.venue_id == place.id,
                    Event.state == "scheduled",
                    Event.starts_at >= utcnow() - timedelta(hours=6),
                )
                .order_by(Event.starts_at)
                .limit(10)
            )
        ).all()
        heard = _heard((await s.execute(_heard_query().where(Play.venue_id == place.id))).all())
        month = (
            await s.execute(
                select(func.count(), func.count(func.distinct(Play.track_id))).where(
                    Play.venue_id == place.id, Play.started_at >= since, _counted()
                )
            )
        ).one()
    return render(
        request,
        "venue.html",
        {
            "venue": place,
            "shows": shows,
            "heard": heard,
            "plays_30d": month[0],
            "tracks_30d": month[1],
        },
    )


async def artist_venues(request: web.Request) -> web.StreamResponse:
    """An artist's plays in venues: by venue, then the latest ones."""
    ctx = request.config_dict[CTX]
    handle, _, domain = request.match_info["handle"].lower().partition("@")
    async with ctx.db.read_session() as s:
        artist = await s.scalar(
            select(Actor).where(Actor.handle == handle, Actor.domain == (domain or ctx.domain))
        )
        if artist is None:
            raise NotFound("There is no such artist here.")
        by_venue = (
            await s.execute(
                select(Venue.name, Venue.uuid, func.count(), func.max(Play.started_at))
                .join(Venue, Venue.id == Play.venue_id)
                .where(Play.artist_uri == artist.uri, _counted())
                .group_by(Venue.id, Venue.name, Venue.uuid)
                .order_by(func.count().desc(), Venue.name)
            )
        ).all()
        heard = _heard((await s.execute(_heard_query().where(Play.artist_uri == artist.uri))).all())
    return render(
        request,
        "artist_venues.html",
        {
            "actor": artist,
            "by_venue": [
                {"name": n, "uuid": u, "plays": c, "last": last} for n, u, c, last in by_venue
            ],
            "heard": heard,
            "total": sum(c for _, _, c, _ in by_venue),
        },
    )


def setup(app: web.Application) -> None:
    """Install these pages' routes."""
    app.router.add_get("/venues/{uuid}", venue, name="web.venue")
    app.router.add_get(
        "/@{handle:" + HANDLE_PATH + "}/venues", artist_venues, name="web.artist_venues"
    )
