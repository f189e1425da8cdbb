"""The data of an artist's page: the site's hottest read, so it is kept lean.

An artist's page is what gets shared and linked, so it takes the bursts
(and is what `bench.pages` measures). Compared with the ORM reads elsewhere
in `web.queries` it:

- builds its statements once, at import, with bind parameters, so a request
  pays neither for building a statement nor for its cache key;
- selects only the columns the page shows, as plain rows on the read
  session's connection (no identity map, no private keys or raw documents);
- reads the pages of many artists at once: `ArtistPages` gathers the
  requests that arrive while a read is under way and answers them all with
  the next one (the DataLoader pattern). Under a burst of first visits the
  fixed cost of a read (a transaction and five statements) is shared
  instead of paid per page; a lone visitor waits for nobody.

The views are small frozen dataclasses the template reads like the models.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from aiohttp import web
from sqlalchemy import (
    BindParameter,
    CompoundSelect,
    Select,
    Text,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from node.context import NodeContext
from node.errors import NotFound
from node.models import Account, Actor, ArtistProfile, Event, Release, Track, Venue, utcnow
from node.services.catalog import can_see

RELEASES_SHOWN = 48
TRACKS_SHOWN = 10
EVENTS_SHOWN = 12
# A read takes up to BATCH_SIZES[-1] artists; its statements are built for these sizes.
BATCH_SIZES = (1, 4, 16, 64)
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
    origin_url: str | None = None  # a remote artist's own page, on their node

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

_ARTISTS = (
    select(
        Actor.id,
        Actor.handle,
        Actor.domain,
        Actor.name,
        Actor.summary,
        Actor.avatar_url,
        Actor.local,
        Actor.url,
        Actor.uri,
        ArtistProfile.borough,
        ArtistProfile.genres,
        ArtistProfile.links,
        ArtistProfile.location,
    )
    .outerjoin(ArtistProfile, ArtistProfile.actor_id == Actor.id)
    # (handle, domain) is unique; pairs are matched exactly in Python.
    .where(
        Actor.handle.in_(bindparam("handles", expanding=True)),
        Actor.domain.in_(bindparam("domains", expanding=True)),
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


def _each(member: Callable[[BindParameter], Select], n: int) -> CompoundSelect:
    """`member`'s rows for n artists (bound as a0 .. a<n-1>) in one statement.

    A UNION ALL of one small statement per artist, each an index range scan
    with its own LIMIT: the cost follows what is shown, not how much each
    artist has, and no planner can turn it into a scan of the whole table
    (as SQLite does with `artist_id IN (...)` and a window function).
    """
    subs = [member(bindparam(f"a{i}")).subquery() for i in range(n)]
    return union_all(*[select(*sub.c) for sub in subs])


def _public_releases(artist: BindParameter) -> Select:
    """Visitors see an artist's newest published releases (ix_releases_artist_published)."""
    return (
        select(Release.artist_id.label("owner"), *_RELEASE_COLUMNS)
        .where(Release.artist_id == artist, Release.state == "published")
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

_TRACK_IS_PUBLIC = case(
    (Track.release_id.is_(None), Track.state == "ready"), else_=Release.state == "published"
)
_TRACK_COLUMNS = (
    Track.uuid,
    Track.title,
    Track.duration_ms,
    Release.title.label("release_title"),
    _TRACK_IS_PUBLIC.label("public"),
)
_TRACK_IS_READY_ALONE = (Track.release_id.is_(None)) & (Track.state == "ready")


def _public_tracks(artist: BindParameter) -> Select:
    """Visitors see tracks of published releases and ready standalone ones (ix_tracks_artist_created)."""
    return (
        select(Track.artist_id.label("owner"), *_TRACK_COLUMNS)
        .outerjoin(Release, Release.id == Track.release_id)
        .where(Track.artist_id == artist, or_(Release.state == "published", _TRACK_IS_READY_ALONE))
        .order_by(Track.created_at.desc(), Track.id.desc())
        .limit(TRACKS_SHOWN)
    )


_ALL_TRACKS = (
    select(*_TRACK_COLUMNS)
    .outerjoin(Release, Release.id == Track.release_id)
    .where(Track.artist_id == bindparam("artist_id"))
    .order_by(Track.created_at.desc(), Track.id.desc())
    .limit(TRACKS_SHOWN)
)

_EVENT_COLUMNS = (
    Event.organizer_id,
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
_UPCOMING = (Event.state == "scheduled", Event.starts_at >= bindparam("since"))


def _organized(artist: BindParameter) -> Select:
    """The shows an artist organizes, soonest first (ix_events_organizer_starts)."""
    return (
        select(*_EVENT_COLUMNS)
        .outerjoin(Venue, Venue.id == Event.venue_id)
        .where(
            Event.organizer_id == artist,
            Event.starts_at >= bindparam("since"),
            # `state || ''` keeps SQLite's planner (which has no statistics) from
            # choosing ix_events_state_starts, a walk over every upcoming show,
            # over the artist's own index; nearly every event is scheduled anyway.
            Event.state.concat("") == "scheduled",
        )
        .order_by(Event.starts_at, Event.id)
        .limit(EVENTS_SHOWN)
    )


@lru_cache(maxsize=len(BATCH_SIZES))
def _statements(n: int) -> tuple[CompoundSelect, CompoundSelect, CompoundSelect, Select]:
    """The statements for a read of n artists, built once per n."""
    return (
        _each(_public_releases, n),
        _each(_public_tracks, n),
        _each(_organized, n),
        _named_in_lineup(2 * n),
    )


def _named_in_lineup(n: int) -> Select:
    """Shows whose lineup names one of `n` handles (patterns p0..pn-1), soonest first."""
    lineup = func.lower(cast(Event.lineup, Text))
    return (
        select(*_EVENT_COLUMNS)
        .outerjoin(Venue, Venue.id == Event.venue_id)
        .where(
            *_UPCOMING,
            # Most shows list nobody: skip those before trying n patterns on each.
            cast(Event.lineup, Text) != "[]",
            or_(*[lineup.like(bindparam(f"p{i}"), escape="/") for i in range(n)]),
        )
        .order_by(Event.starts_at, Event.id)
        .limit(EVENTS_SHOWN * n)
    )


def _contains(value: str) -> str:
    """A LIKE pattern matching `value` anywhere, with LIKE's wildcards escaped."""
    escaped = value.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


def _quoted(handle: str) -> str:
    # Lineup entries are JSON strings: a whole entry is the handle in quotes.
    return json.dumps(handle)


# ---- the reads ----------------------------------------------------------------

Key = tuple[str, str]  # (handle, domain)


def key_of(ctx: NodeContext, handle: str) -> Key:
    name, _, domain = handle.lstrip("@").lower().partition("@")
    return name, domain or ctx.domain


def _event_row(e: Any) -> EventRow:
    return EventRow(
        e.uuid,
        e.title,
        e.starts_at,
        e.state,
        e.price_amount,
        e.price_currency,
        list(e.lineup or []),
        VenueBrief(e.venue_name, e.venue_borough) if e.venue_name is not None else None,
    )


def _names(lineup: Any) -> set[str]:
    return {x.lower().lstrip("@") for x in (lineup or []) if isinstance(x, str)}


async def load_many(
    conn: AsyncConnection, ctx: NodeContext, keys: list[Key]
) -> dict[Key, ArtistPage]:
    """The public pages (no drafts) of the artists in `keys`, in five statements
    whatever their number (up to `ArtistPages.MAX_BATCH`).

    Artists that do not exist are left out of the answer.
    """
    rows = await conn.execute(
        _ARTISTS,
        {"handles": sorted({h for h, _ in keys}), "domains": sorted({d for _, d in keys})},
    )
    wanted = set(keys)
    artists: dict[int, ArtistView] = {}
    for row in rows:
        if (row.handle, row.domain) in wanted:
            artists[row.id] = ArtistView(
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
                origin_url=None if row.local else (row.url or row.uri),
            )
    if not artists:
        return {}
    ids = list(artists)
    # Statements come in a few sizes (compiling one is dear); spare places get an
    # id no artist has and a pattern nothing matches.
    size = next(b for b in BATCH_SIZES if b >= len(ids))
    by_artist = {f"a{i}": ids[i] if i < len(ids) else 0 for i in range(size)}
    patterns = {f"p{i}": "" for i in range(2 * size)}
    for i, handle in enumerate(sorted(artists[i].handle for i in ids)):
        patterns[f"p{2 * i}"] = _contains(_quoted(handle))
        patterns[f"p{2 * i + 1}"] = _contains(_quoted("@" + handle))
    since = utcnow() - STILL_ON
    releases_of, tracks_of, organized_by, named_in = _statements(size)

    releases: dict[int, list[ReleaseCard]] = defaultdict(list)
    for r in await conn.execute(releases_of, by_artist):
        releases[r.owner].append(ReleaseCard(*r[1:], artist=artists[r.owner]))
    tracks: dict[int, list[TrackRow]] = defaultdict(list)
    for t in await conn.execute(tracks_of, by_artist):
        tracks[t.owner].append(
            TrackRow(t.uuid, t.title, t.duration_ms, t.release_title, bool(t.public))
        )
    events: dict[int, dict[str, tuple[datetime, str, EventRow]]] = defaultdict(dict)
    for e in await conn.execute(organized_by, {**by_artist, "since": since}):
        events[e.organizer_id][e.uuid] = (e.starts_at, e.uuid, _event_row(e))
    by_handle = {artists[i].handle: i for i in ids}
    for e in await conn.execute(named_in, {**patterns, "since": since}):
        for name in _names(e.lineup) & by_handle.keys():
            events[by_handle[name]].setdefault(e.uuid, (e.starts_at, e.uuid, _event_row(e)))

    pages = {}
    for artist_id, artist in artists.items():
        shows = [row for _, _, row in sorted(events[artist_id].values(), key=lambda x: x[:2])]
        pages[(artist.handle, artist.domain)] = ArtistPage(
            artist, releases[artist_id], tracks[artist_id], shows[:EVENTS_SHOWN], False
        )
    return pages


async def load(
    session: AsyncSession, ctx: NodeContext, handle: str, account: Account | None
) -> ArtistPage:
    """One artist's page as `account` sees it: drafts too for the artist and curators."""
    conn = await session.connection()
    key = key_of(ctx, handle)
    page = (await load_many(conn, ctx, [key])).get(key)
    if page is None:
        raise NotFound(f"There is no artist @{handle} here.")
    return await with_drafts(conn, page, account)


async def with_drafts(
    conn: AsyncConnection, page: ArtistPage, account: Account | None
) -> ArtistPage:
    """`page`, with drafts, when `account` may see them (`can_see`); else `page` itself."""
    if not can_see(account, page.artist.id):
        return page
    own = {"artist_id": page.artist.id}
    releases = [ReleaseCard(*r, artist=page.artist) for r in await conn.execute(_ALL_RELEASES, own)]
    tracks = [
        TrackRow(t.uuid, t.title, t.duration_ms, t.release_title, bool(t.public))
        for t in await conn.execute(_ALL_TRACKS, own)
    ]
    return ArtistPage(page.artist, releases, tracks, page.events, True)


class ArtistPages:
    """Reads public artist pages, many at a time (see the module docstring).

    At most one read is under way; requests that arrive meanwhile wait for
    the next one, which takes up to `MAX_BATCH` artists. Each waiter gets its
    page, or `NotFound`, or the read's error.
    """

    MAX_BATCH = BATCH_SIZES[-1]

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        self._waiting: dict[Key, list[asyncio.Future]] = {}
        self._busy = False
        self._tasks: set[asyncio.Task] = set()
        self.reads = 0  # database reads made, for tests and curiosity

    async def get(self, handle: str) -> ArtistPage:
        key = key_of(self.ctx, handle)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.setdefault(key, []).append(future)
        if not self._busy:
            self._busy = True
            # Next turn of the loop: requests already parsed in this one join the batch.
            loop.call_soon(self._start)
        return await future

    def _start(self) -> None:
        keys = list(self._waiting)[: self.MAX_BATCH]
        batch = {k: self._waiting.pop(k) for k in keys}
        task = asyncio.ensure_future(self._read(batch))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._start)
        else:
            self._busy = False

    async def _read(self, batch: dict[Key, list[asyncio.Future]]) -> None:
        self.reads += 1
        try:
            async with self.ctx.db.read_session() as s:
                pages = await load_many(await s.connection(), self.ctx, list(batch))
        except Exception as e:  # noqa: BLE001 - handed to every waiter, which re-raises it
            for futures in batch.values():
                for f in futures:
                    if not f.done():
                        f.set_exception(e)
            return
        for (handle, domain), futures in batch.items():
            page = pages.get((handle, domain))
            for f in futures:
                if f.done():  # the visitor left
                    continue
                if page is None:
                    shown = handle if domain == self.ctx.domain else f"{handle}@{domain}"
                    f.set_exception(NotFound(f"There is no artist @{shown} here."))
                else:
                    f.set_result(page)


ARTIST_PAGES: web.AppKey[ArtistPages] = web.AppKey("web_artist_pages", ArtistPages)
