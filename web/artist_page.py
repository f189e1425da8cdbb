"""The data of an artist's page: the site's hottest read, so it is kept lean.

An artist's page is what gets shared and linked, so it takes the bursts
(and is what `bench.pages` measures). Compared with the ORM reads elsewhere
in `web.queries` it:

- builds its four statements once, at import, with bind parameters, so a
  request pays neither for building a statement nor for its cache key;
- selects only the columns the page shows, as plain rows (no identity map,
  no private keys or raw JSON documents dragged along with each artist);
- runs them on the read session's connection (Core rows, one round trip each).

The views are small frozen dataclasses the template reads like the models.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, Text, bindparam, case, cast, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.context import NodeContext
from node.errors import NotFound
from node.models import Account, Actor, ArtistProfile, Event, Release, Track, Venue, utcnow
from node.services.catalog import can_see

RELEASES_SHOWN = 48
TRACKS_SHOWN = 20
EVENTS_SHOWN = 12
# An event stays "upcoming" until a few hours after it starts (as in node.services.gigs).
STILL_ON = timedelta(hours=6)


@dataclass(frozen=True)
class ArtistView:
    id: int
    handle: str
    domain: str
    name: str
    summary: str
    avatar_url: str | None
    local: bool
    borough: str | None
    genres: list[str]
    links: list[str]
    location: str | None

    @property
    def acct(self) -> str:
        return f"{self.handle}@{self.domain}"


@dataclass(frozen=True)
class ReleaseCard:
    uuid: str
    title: str
    kind: str
    release_date: date | None
    published_at: datetime | None
    state: str
    cover_url: str | None
    artist: ArtistView


@dataclass(frozen=True)
class TrackRow:
    uuid: str
    title: str
    duration_ms: int | None
    release_title: str | None
    public: bool


@dataclass(frozen=True)
class VenueBrief:
    name: str
    borough: str | None


@dataclass(frozen=True)
class EventRow:
    uuid: str
    title: str
    starts_at: datetime
    state: str
    price_amount: int | None
    price_currency: str | None
    lineup: list[Any]
    venue: VenueBrief | None


@dataclass(frozen=True)
class ArtistPage:
    artist: ArtistView
    releases: list[ReleaseCard]
    tracks: list[TrackRow]
    events: list[EventRow]
    is_owner: bool


# ---- the statements, built once --------------------------------------------

_ARTIST = (
    select(
        Actor.id,
        Actor.handle,
        Actor.domain,
        Actor.name,
        Actor.summary,
        Actor.avatar_url,
        Actor.local,
        ArtistProfile.borough,
        ArtistProfile.genres,
        ArtistProfile.links,
        ArtistProfile.location,
    )
    .outerjoin(ArtistProfile, ArtistProfile.actor_id == Actor.id)
    .where(
        Actor.handle == bindparam("handle"),
        Actor.domain == bindparam("domain"),
        Actor.is_artist.is_(True),
    )
)

_RELEASE_COLUMNS = (
    Release.uuid,
    Release.title,
    Release.kind,
    Release.release_date,
    Release.published_at,
    Release.state,
    Release.cover_url,
)
# Visitors: published only, newest first (ix_releases_artist_published).
_PUBLIC_RELEASES = (
    select(*_RELEASE_COLUMNS)
    .where(Release.artist_id == bindparam("artist_id"), Release.state == "published")
    .order_by(Release.published_at.desc(), Release.id.desc())
    .limit(RELEASES_SHOWN)
)
# The artist and curators: drafts too, newest first by publication or creation.
_ALL_RELEASES = (
    select(*_RELEASE_COLUMNS)
    .where(Release.artist_id == bindparam("artist_id"))
    .order_by(func.coalesce(Release.published_at, Release.created_at).desc(), Release.id.desc())
    .limit(RELEASES_SHOWN)
)

_TRACK_PUBLIC = case(
    (Track.release_id.is_(None), Track.state == "ready"), else_=Release.state == "published"
)
_TRACKS = (
    select(
        Track.uuid,
        Track.title,
        Track.duration_ms,
        Release.title.label("release_title"),
        _TRACK_PUBLIC.label("public"),
    )
    .outerjoin(Release, Release.id == Track.release_id)
    .where(Track.artist_id == bindparam("artist_id"))
    .order_by(Track.created_at.desc(), Track.id.desc())
    .limit(TRACKS_SHOWN)
)
_PUBLIC_TRACKS = _TRACKS.where(
    or_(Release.state == "published", (Track.release_id.is_(None)) & (Track.state == "ready"))
)

_EVENTS = (
    select(
        Event.uuid,
        Event.title,
        Event.starts_at,
        Event.state,
        Event.price_amount,
        Event.price_currency,
        Event.lineup,
        Venue.name.label("venue_name"),
        Venue.borough.label("venue_borough"),
    )
    .outerjoin(Venue, Venue.id == Event.venue_id)
    .order_by(Event.starts_at, Event.id)
    .limit(EVENTS_SHOWN)
)


def _events_statement() -> Select:
    """Upcoming events the artist organizes or plays in (named in the lineup)."""
    lineup = func.lower(cast(Event.lineup, Text))
    return _EVENTS.where(
        Event.state == "scheduled",
        Event.starts_at >= bindparam("since"),
        or_(
            Event.organizer_id == bindparam("artist_id"),
            lineup.like(bindparam("as_handle"), escape="/"),
            lineup.like(bindparam("as_mention"), escape="/"),
        ),
    )


_ARTIST_EVENTS = _events_statement()


def _contains(value: str) -> str:
    """A LIKE pattern matching `value` anywhere, with LIKE's wildcards escaped."""
    escaped = value.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def _quoted(value: str) -> str:
    # Lineup entries are JSON strings; a whole entry is the handle in quotes.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---- the read ---------------------------------------------------------------


async def load(
    session: AsyncSession, ctx: NodeContext, handle: str, account: Account | None
) -> ArtistPage:
    """One artist's page: the artist, releases, tracks and upcoming shows.

    Drafts are included only for the artist and curators (`can_see`); the
    template marks them.
    """
    # Core execution on the session's connection: these are plain rows, and the
    # ORM's per-statement machinery would cost more than the queries.
    conn = await session.connection()
    name, _, domain = handle.lstrip("@").lower().partition("@")
    row = (await conn.execute(_ARTIST, {"handle": name, "domain": domain or ctx.domain})).first()
    if row is None:
        raise NotFound(f"There is no artist @{handle} here.")
    artist = ArtistView(
        id=row.id,
        handle=row.handle,
        domain=row.domain,
        name=row.name or row.handle,
        summary=row.summary or "",
        avatar_url=row.avatar_url,
        local=row.local,
        borough=row.borough,
        genres=[g for g in (row.genres or []) if isinstance(g, str)],
        links=[link for link in (row.links or []) if isinstance(link, str)],
        location=row.location,
    )
    mine = can_see(account, artist.id)
    by_artist = {"artist_id": artist.id}
    releases = [
        ReleaseCard(*r, artist=artist)
        for r in await conn.execute(_ALL_RELEASES if mine else _PUBLIC_RELEASES, by_artist)
    ]
    tracks = [
        TrackRow(t.uuid, t.title, t.duration_ms, t.release_title, bool(t.public))
        for t in await conn.execute(_TRACKS if mine else _PUBLIC_TRACKS, by_artist)
    ]
    params = {
        **by_artist,
        "since": utcnow() - STILL_ON,
        "as_handle": _contains(_quoted(artist.handle)),
        "as_mention": _contains(_quoted("@" + artist.handle)),
    }
    events = [
        EventRow(
            e.uuid,
            e.title,
            e.starts_at,
            e.state,
            e.price_amount,
            e.price_currency,
            list(e.lineup or []),
            VenueBrief(e.venue_name, e.venue_borough) if e.venue_name is not None else None,
        )
        for e in await conn.execute(_ARTIST_EVENTS, params)
    ]
    return ArtistPage(artist, releases, tracks, events, mine)
