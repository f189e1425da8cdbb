"""Venues and events: where and when the scene plays."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ..auth import has_role, require_owner_or, require_role
from ..context import NodeContext
from ..errors import NotFound, ValidationFailed
from ..models import Account, Actor, Event, Venue, utcnow
from ..pagination import Page, keyset_page
from .catalog import get_artist


def _check_borough(ctx: NodeContext, borough: str | None) -> None:
    if borough is not None and borough not in ctx.settings.node.boroughs:
        raise ValidationFailed([{"field": "borough", "message": "unknown borough"}])


async def get_venue(session: AsyncSession, uuid: str) -> Venue:
    venue = await session.scalar(select(Venue).where(Venue.uuid == uuid))
    if venue is None:
        raise NotFound("no such venue")
    return venue


async def create_venue(
    ctx: NodeContext, session: AsyncSession, account: Account, values: dict[str, Any]
) -> Venue:
    """Artists and curators add venues; the creator manages it."""
    require_role(account, "artist")
    _check_borough(ctx, values.get("borough"))
    venue = Venue(
        uri="",
        name=values["name"],
        address=values.get("address", ""),
        borough=values.get("borough"),
        lat=values.get("lat"),
        lon=values.get("lon"),
        capacity=values.get("capacity"),
        website=values.get("website"),
        manager_id=account.actor_id,
        local=True,
    )
    session.add(venue)
    await session.flush()
    venue.uri = ctx.urls.obj("venues", venue.uuid)
    await session.flush()
    await ctx.bus.emit(session, "venue.created", venue_id=venue.id, uri=venue.uri)
    return venue


async def update_venue(
    ctx: NodeContext, session: AsyncSession, account: Account, venue: Venue, values: dict[str, Any]
) -> Venue:
    require_owner_or(account, venue.manager_id or -1)
    _check_borough(ctx, values.get("borough"))
    for key in ("name", "address", "borough", "lat", "lon", "capacity", "website"):
        if key in values:
            setattr(venue, key, values[key])
    await session.flush()
    await ctx.bus.emit(session, "venue.updated", venue_id=venue.id, uri=venue.uri)
    return venue


async def list_venues(
    session: AsyncSession, *, borough: str | None = None, cursor: str | None = None, limit: int = 20
) -> Page:
    stmt = select(Venue)
    if borough:
        stmt = stmt.where(Venue.borough == borough)
    return await keyset_page(session, stmt, Venue.name, Venue.id, cursor=cursor, limit=limit)


async def get_event(session: AsyncSession, uuid: str) -> Event:
    event = await session.scalar(select(Event).where(Event.uuid == uuid))
    if event is None:
        raise NotFound("no such event")
    return event


def _check_times(values: dict[str, Any], event: Event | None = None) -> None:
    starts = values.get("starts_at", event.starts_at if event else None)
    ends = values.get("ends_at", event.ends_at if event else None)
    if starts is not None and ends is not None and ends <= starts:
        raise ValidationFailed([{"field": "ends_at", "message": "must be after starts_at"}])
    if starts is not None and ends is not None and ends - starts > timedelta(days=14):
        raise ValidationFailed([{"field": "ends_at", "message": "an event lasts at most 14 days"}])


async def create_event(
    ctx: NodeContext, session: AsyncSession, account: Account, values: dict[str, Any]
) -> Event:
    require_role(account, "artist")
    organizer = await session.get(Actor, account.actor_id)
    if values.get("organizer") and values["organizer"] != account.username:
        require_role(account, "curator")
        organizer = await get_artist(ctx, session, values["organizer"])
    _check_times(values)
    venue = await get_venue(session, values["venue"]) if values.get("venue") else None
    if values.get("price_amount") is not None and not values.get("price_currency"):
        values["price_currency"] = ctx.settings.royalties.currency
    event = Event(
        uri="",
        organizer_id=organizer.id,
        venue_id=venue.id if venue else None,
        title=values["title"],
        description=values.get("description", ""),
        starts_at=values["starts_at"],
        ends_at=values.get("ends_at"),
        ticket_url=values.get("ticket_url"),
        price_amount=values.get("price_amount"),
        price_currency=values.get("price_currency"),
        genres=values.get("genres", []),
        lineup=values.get("lineup", []),
        state="scheduled",
        local=True,
    )
    session.add(event)
    await session.flush()
    event.uri = ctx.urls.obj("events", event.uuid)
    await session.flush()
    await session.refresh(event, ["venue", "organizer"])
    await ctx.bus.emit(session, "event.created", event_id=event.id, uri=event.uri)
    return event


async def update_event(
    ctx: NodeContext, session: AsyncSession, account: Account, event: Event, values: dict[str, Any]
) -> Event:
    require_owner_or(account, event.organizer_id)
    _check_times(values, event)
    if "venue" in values:
        event.venue_id = (await get_venue(session, values["venue"])).id if values["venue"] else None
    for key in (
        "title",
        "description",
        "starts_at",
        "ends_at",
        "ticket_url",
        "price_amount",
        "price_currency",
        "genres",
        "lineup",
        "state",
    ):
        if key in values:
            setattr(event, key, values[key])
    event.updated_at = utcnow()
    await session.flush()
    await session.refresh(event, ["venue"])
    await ctx.bus.emit(session, "event.updated", event_id=event.id, uri=event.uri)
    return event


async def delete_event(
    ctx: NodeContext, session: AsyncSession, account: Account, event: Event
) -> None:
    require_owner_or(account, event.organizer_id)
    uri, owner_uri = event.uri, event.organizer.uri
    await session.delete(event)
    await session.flush()
    await ctx.bus.emit(session, "event.deleted", uri=uri, owner_uri=owner_uri, was_public=True)


async def list_events(
    session: AsyncSession,
    *,
    organizer: Actor | None = None,
    venue: Venue | None = None,
    borough: str | None = None,
    upcoming: bool = True,
    cursor: str | None = None,
    limit: int = 20,
) -> Page:
    stmt = select(Event).where(Event.state == "scheduled")
    if organizer is not None:
        stmt = stmt.where(Event.organizer_id == organizer.id)
    elif venue is None:
        stmt = stmt.where(Event.local.is_(True))  # the node's own listings
    if venue is not None:
        stmt = stmt.where(Event.venue_id == venue.id)
    if borough:
        stmt = stmt.join(Venue, Venue.id == Event.venue_id).where(Venue.borough == borough)
    if upcoming:
        # Still on: started less than a few hours ago or later.
        stmt = stmt.where(Event.starts_at >= utcnow() - timedelta(hours=6))
        return await keyset_page(
            session, stmt, Event.starts_at, Event.id, cursor=cursor, limit=limit
        )
    return await keyset_page(
        session, stmt, Event.starts_at, Event.id, cursor=cursor, limit=limit, descending=True
    )


def can_manage(account: Account | None, owner_id: int | None) -> bool:
    return account is not None and (account.actor_id == owner_id or has_role(account, "curator"))
