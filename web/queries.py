"""Read queries shaped for pages: few round trips, each on an index, no N+1.

The services in `node.services` answer the API's questions (one kind of
object, cursor pages). A page needs several kinds at once, often without
the relationships the API eagerly loads (a release card needs no
tracklist), so the page-shaped reads live here and stay read-only.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import contains_eager, raiseload

from node.context import NodeContext
from node.models import Actor, ArtistProfile, Event, Release, Track, Venue, utcnow

# An event stays "upcoming" until a few hours after it starts (as in node.services.gigs).
STILL_ON = timedelta(hours=6)


def _split_handle(ctx: NodeContext, handle: str) -> tuple[str, str]:
    name, _, domain = handle.lstrip("@").lower().partition("@")
    return name, domain or ctx.domain


def _release_cards():
    """Releases as cards: the artist (joined), never the tracklist."""
    return select(Release).options(raiseload(Release.tracks))


async def newest_releases(
    session: AsyncSession, *, borough: str | None = None, limit: int = 8
) -> list[Release]:
    """Newest published local releases, optionally of artists in one borough."""
    stmt = _release_cards().where(Release.state == "published", Release.local.is_(True))
    if borough:
        stmt = stmt.join(ArtistProfile, ArtistProfile.actor_id == Release.artist_id).where(
            ArtistProfile.borough == borough
        )
    stmt = stmt.order_by(Release.published_at.desc(), Release.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).unique().all())


async def newest_artists(
    session: AsyncSession, *, borough: str | None = None, limit: int = 8
) -> list[Actor]:
    """The newest local artists (with profiles), optionally in one borough."""
    stmt = (
        select(Actor)
        .outerjoin(ArtistProfile, ArtistProfile.actor_id == Actor.id)
        .options(contains_eager(Actor.profile))
        .where(Actor.local.is_(True), Actor.is_artist.is_(True))
    )
    if borough:
        stmt = stmt.where(ArtistProfile.borough == borough)
    stmt = stmt.order_by(Actor.created_at.desc(), Actor.id.desc()).limit(limit)
    return list((await session.scalars(stmt)).unique().all())


async def borough_stats(session: AsyncSession) -> dict[str, dict[str, int]]:
    """Artists and upcoming events per borough, two grouped counts."""
    stats: dict[str, dict[str, int]] = {}
    artists = await session.execute(
        select(ArtistProfile.borough, func.count())
        .join(Actor, Actor.id == ArtistProfile.actor_id)
        .where(Actor.local.is_(True), Actor.is_artist.is_(True), ArtistProfile.borough.is_not(None))
        .group_by(ArtistProfile.borough)
    )
    for borough, n in artists:
        stats.setdefault(borough, {"artists": 0, "events": 0})["artists"] = n
    events = await session.execute(
        select(Venue.borough, func.count())
        .join(Event, Event.venue_id == Venue.id)
        .where(
            Event.state == "scheduled",
            Event.starts_at >= utcnow() - STILL_ON,
            Venue.borough.is_not(None),
        )
        .group_by(Venue.borough)
    )
    for borough, n in events:
        stats.setdefault(borough, {"artists": 0, "events": 0})["events"] = n
    return stats


async def more_releases(
    session: AsyncSession, artist_id: int, exclude_id: int, limit: int = 4
) -> list[Release]:
    stmt = (
        _release_cards()
        .where(
            Release.artist_id == artist_id, Release.state == "published", Release.id != exclude_id
        )
        .order_by(Release.published_at.desc(), Release.id.desc())
        .limit(limit)
    )
    return list((await session.scalars(stmt)).unique().all())


async def profile_of(session: AsyncSession, actor_id: int) -> ArtistProfile | None:
    return await session.get(ArtistProfile, actor_id)


async def lineup_artists(
    session: AsyncSession, ctx: NodeContext, lineup: list[str]
) -> dict[str, Actor]:
    """Map each lineup entry that names a known artist (`jay`, `@jay`, `jay@host`) to it."""
    wanted: dict[tuple[str, str], str] = {}
    for item in lineup:
        if not isinstance(item, str) or " " in item.strip():
            continue
        wanted[_split_handle(ctx, item.strip())] = item
    if not wanted:
        return {}
    handles = {h for h, _ in wanted}
    rows = (
        await session.scalars(
            select(Actor).where(Actor.handle.in_(handles), Actor.is_artist.is_(True))
        )
    ).all()
    found = {}
    for actor in rows:
        item = wanted.get((actor.handle, actor.domain))
        if item is not None:
            found[item] = actor
    return found


async def tracks_of_release(session: AsyncSession, release_id: int) -> list[Track]:
    """A release's tracklist, in order (the artist is joined by the model)."""
    stmt = (
        select(Track)
        .options(raiseload(Track.release))
        .where(Track.release_id == release_id)
        .order_by(Track.position, Track.id)
    )
    return list((await session.scalars(stmt)).unique().all())
