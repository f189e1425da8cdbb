"""Venues and events."""

from __future__ import annotations

from ..serializers import event_json, venue_json
from ..services import catalog, gigs
from ..validation import F, Schema
from . import API
from .catalog import page_json
from .routing import Call

VenueIn = Schema(
    "VenueCreate",
    F("name", required=True, max_len=200),
    F("address", max_len=300),
    F("borough", max_len=64),
    F("lat", "float", min=-90, max=90),
    F("lon", "float", min=-180, max=180),
    F("capacity", "int", min=1, max=1_000_000),
    F("website", "url", max_len=500),
)
VenuePatch = Schema(
    "VenueUpdate",
    *[
        F(f.name, f.kind, max_len=f.max_len, min=f.min, max=f.max, nullable=f.name != "name")
        for f in VenueIn.fields.values()
    ],
)
VenueListQ = Schema(
    "VenueListQuery",
    F("cursor", max_len=500),
    F("limit", "int", min=1, max=100),
    F("borough", max_len=64),
)
EventIn = Schema(
    "EventCreate",
    F("title", required=True, max_len=200),
    F("starts_at", "datetime", required=True),
    F("ends_at", "datetime"),
    F("venue", "uuid", description="a venue's uuid"),
    F("description", "text", max_len=10000),
    F("ticket_url", "url", max_len=500),
    F("price_amount", "int", min=0, max=10_000_000, description="minor units"),
    F("price_currency", "currency"),
    F("genres", "strlist", max_items=10, max_len=40),
    F("lineup", "strlist", max_items=30, max_len=100, description="handles or names"),
    F("organizer", "handle", description="curators only"),
)
EventPatch = Schema(
    "EventUpdate",
    F("title", max_len=200),
    F("starts_at", "datetime"),
    F("ends_at", "datetime", nullable=True),
    F("venue", "uuid", nullable=True),
    F("description", "text", max_len=10000),
    F("ticket_url", "url", max_len=500, nullable=True),
    F("price_amount", "int", min=0, max=10_000_000, nullable=True),
    F("price_currency", "currency", nullable=True),
    F("genres", "strlist", max_items=10, max_len=40),
    F("lineup", "strlist", max_items=30, max_len=100),
    F("state", choices=("scheduled", "cancelled")),
)
EventListQ = Schema(
    "EventListQuery",
    F("cursor", max_len=500),
    F("limit", "int", min=1, max=100),
    F("borough", max_len=64),
    F("artist", max_len=300, description="organizer handle"),
    F("venue", "uuid"),
    F("past", "bool", description="past events, newest first"),
)


@API.route(
    "GET",
    "/api/v1/venues",
    name="api.venues",
    summary="Venues by name; filter by borough",
    tag="venues",
    query=VenueListQ,
)
async def list_venues(call: Call):
    async with call.ctx.db.read_session() as s:
        page = await gigs.list_venues(
            s,
            borough=call.query.get("borough"),
            cursor=call.query.get("cursor"),
            limit=call.query.get("limit", 20),
        )
        return page_json(page, venue_json)


@API.route(
    "POST",
    "/api/v1/venues",
    name="api.venues.create",
    summary="Add a venue (artists and curators)",
    tag="venues",
    body=VenueIn,
    role="artist",
    status=201,
)
async def create_venue(call: Call):
    async with call.ctx.db.transaction() as s:
        return venue_json(await gigs.create_venue(call.ctx, s, call.account, call.body))


@API.route("GET", "/api/v1/venues/{uuid}", name="api.venue", summary="One venue", tag="venues")
async def get_venue(call: Call):
    async with call.ctx.db.read_session() as s:
        return venue_json(await gigs.get_venue(s, call.path("uuid")))


@API.route(
    "PATCH",
    "/api/v1/venues/{uuid}",
    name="api.venue.update",
    summary="Edit a venue (its manager, curators)",
    tag="venues",
    body=VenuePatch,
    role="artist",
)
async def update_venue(call: Call):
    async with call.ctx.db.transaction() as s:
        venue = await gigs.get_venue(s, call.path("uuid"))
        return venue_json(await gigs.update_venue(call.ctx, s, call.account, venue, call.body))


@API.route(
    "GET",
    "/api/v1/events",
    name="api.events",
    summary="Upcoming events, soonest first (or past ones)",
    tag="events",
    query=EventListQ,
)
async def list_events(call: Call):
    q = call.query
    async with call.ctx.db.read_session() as s:
        organizer = await catalog.get_artist(call.ctx, s, q["artist"]) if q.get("artist") else None
        venue = await gigs.get_venue(s, q["venue"]) if q.get("venue") else None
        page = await gigs.list_events(
            s,
            organizer=organizer,
            venue=venue,
            borough=q.get("borough"),
            upcoming=not q.get("past", False),
            cursor=q.get("cursor"),
            limit=q.get("limit", 20),
        )
        return page_json(page, event_json)


@API.route(
    "POST",
    "/api/v1/events",
    name="api.events.create",
    summary="Announce an event",
    tag="events",
    body=EventIn,
    role="artist",
    status=201,
)
async def create_event(call: Call):
    async with call.ctx.db.transaction() as s:
        return event_json(await gigs.create_event(call.ctx, s, call.account, call.body))


@API.route("GET", "/api/v1/events/{uuid}", name="api.event", summary="One event", tag="events")
async def get_event(call: Call):
    async with call.ctx.db.read_session() as s:
        return event_json(await gigs.get_event(s, call.path("uuid")))


@API.route(
    "PATCH",
    "/api/v1/events/{uuid}",
    name="api.event.update",
    summary="Edit or cancel an event",
    tag="events",
    body=EventPatch,
    role="artist",
)
async def update_event(call: Call):
    async with call.ctx.db.transaction() as s:
        event = await gigs.get_event(s, call.path("uuid"))
        return event_json(await gigs.update_event(call.ctx, s, call.account, event, call.body))


@API.route(
    "DELETE",
    "/api/v1/events/{uuid}",
    name="api.event.delete",
    summary="Delete an event",
    tag="events",
    role="artist",
    status=204,
)
async def delete_event(call: Call):
    async with call.ctx.db.transaction() as s:
        event = await gigs.get_event(s, call.path("uuid"))
        await gigs.delete_event(call.ctx, s, call.account, event)
