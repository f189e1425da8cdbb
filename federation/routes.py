"""ActivityPub documents over HTTP: actors, collections and catalog objects.

The same URL serves HTML to browsers and JSON to servers (DESIGN.md 4): the
web package owns the HTML routes, and `negotiation_middleware` answers
first when the client asks for `application/activity+json` or ld+json.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from node.appkeys import CTX
from node.errors import NotFound
from node.models import Actor, Comment, Event, Follow, Release, Track

from .actors import actor_to_ap
from .models import OutboxItem
from .objects import comment_to_ap, document, event_to_ap, release_to_ap, track_to_ap
from .vocab import ACTIVITY_JSON, AP_CONTENT_TYPES, with_context

PAGE_SIZE = 50


def wants_activity_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return any(t in accept for t in AP_CONTENT_TYPES)


def ap_response(doc: dict[str, Any]) -> web.Response:
    return web.json_response(
        doc, content_type=ACTIVITY_JSON, headers={"Vary": "Accept", "Cache-Control": "max-age=60"}
    )


async def _local_actor(request: web.Request, handle: str) -> Actor:
    ctx = request.config_dict[CTX]
    async with ctx.db.read_session() as s:
        actor = await s.scalar(
            select(Actor)
            .options(selectinload(Actor.profile))
            .where(
                Actor.handle == handle.lower(), Actor.domain == ctx.domain, Actor.local.is_(True)
            )
        )
    if actor is None or actor.uri == ctx.urls.node_actor():
        raise NotFound(f"no actor @{handle}")
    return actor


async def actor_view(request: web.Request) -> web.StreamResponse:
    handle = request.match_info["handle"]
    if not wants_activity_json(request):
        raise web.HTTPFound(f"/@{handle}")
    actor = await _local_actor(request, handle)
    return ap_response(actor_to_ap(request.config_dict[CTX], actor, actor.profile))


async def node_actor_view(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    if not wants_activity_json(request) and "json" not in request.headers.get("Accept", ""):
        raise web.HTTPFound("/")
    async with ctx.db.read_session() as s:
        actor = await s.scalar(select(Actor).where(Actor.uri == ctx.urls.node_actor()))
    if actor is None:
        raise NotFound("the node actor is not set up yet")
    doc = actor_to_ap(ctx, actor)
    doc["preferredUsername"] = ctx.domain
    return ap_response(doc)


def _collection(
    uri: str,
    total: int,
    items: list[Any] | None = None,
    first: str | None = None,
    ordered: bool = True,
) -> dict:
    doc: dict[str, Any] = {
        "id": uri,
        "type": "OrderedCollection" if ordered else "Collection",
        "totalItems": total,
    }
    if items is not None:
        doc["orderedItems" if ordered else "items"] = items
    if first:
        doc["first"] = first
    return with_context(doc)


def _page_number(request: web.Request) -> int | None:
    raw = request.query.get("page")
    if raw is None:
        return None
    return int(raw) if raw.isdigit() and 0 < int(raw) < 10_000 else 1


async def followers_view(request: web.Request) -> web.Response:
    return await _follow_collection(request, followers=True)


async def following_view(request: web.Request) -> web.Response:
    return await _follow_collection(request, followers=False)


async def _follow_collection(request: web.Request, *, followers: bool) -> web.Response:
    ctx = request.config_dict[CTX]
    actor = await _local_actor(request, request.match_info["handle"])
    own, other = (
        (Follow.target_id, Follow.follower_id)
        if followers
        else (Follow.follower_id, Follow.target_id)
    )
    uri = actor.followers_url if followers else actor.following_url
    async with ctx.db.read_session() as s:
        total = await s.scalar(
            select(func.count())
            .select_from(Follow)
            .where(own == actor.id, Follow.state == "accepted")
        )
        page = _page_number(request)
        if page is None:
            return ap_response(_collection(uri, total, first=f"{uri}?page=1"))
        rows = await s.execute(
            select(Actor.uri)
            .join(Follow, other == Actor.id)
            .where(own == actor.id, Follow.state == "accepted")
            .order_by(Follow.id)
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        )
        items = [r[0] for r in rows.all()]
    doc = with_context(
        {
            "id": f"{uri}?page={page}",
            "type": "OrderedCollectionPage",
            "partOf": uri,
            "totalItems": total,
            "orderedItems": items,
        }
    )
    if page * PAGE_SIZE < total:
        doc["next"] = f"{uri}?page={page + 1}"
    return ap_response(doc)


async def outbox_view(request: web.Request) -> web.Response:
    ctx = request.config_dict[CTX]
    actor = await _local_actor(request, request.match_info["handle"])
    async with ctx.db.read_session() as s:
        total = await s.scalar(
            select(func.count())
            .select_from(OutboxItem)
            .where(OutboxItem.actor_id == actor.id, OutboxItem.public.is_(True))
        )
        page = _page_number(request)
        if page is None:
            return ap_response(
                _collection(actor.outbox_url, total, first=f"{actor.outbox_url}?page=1")
            )
        rows = await s.scalars(
            select(OutboxItem)
            .where(OutboxItem.actor_id == actor.id, OutboxItem.public.is_(True))
            .order_by(OutboxItem.id.desc())
            .offset((page - 1) * PAGE_SIZE)
            .limit(PAGE_SIZE)
        )
        items = [{k: v for k, v in i.payload.items() if k != "@context"} for i in rows.all()]
    doc = with_context(
        {
            "id": f"{actor.outbox_url}?page={page}",
            "type": "OrderedCollectionPage",
            "partOf": actor.outbox_url,
            "orderedItems": items,
        }
    )
    if page * PAGE_SIZE < total:
        doc["next"] = f"{actor.outbox_url}?page={page + 1}"
    return ap_response(doc)


async def empty_collection(request: web.Request) -> web.Response:
    ctx = request.config_dict[CTX]
    return ap_response(_collection(f"{ctx.settings.base_url}{request.path}", 0, items=[]))


_OBJECT_PATHS = re.compile(r"^/(tracks|releases|events|comments)/([0-9a-f-]{36})$")
_PROFILE_PATH = re.compile(r"^/@([a-z0-9_]{1,64})$")


async def object_document(request: web.Request, kind: str, uuid: str) -> dict[str, Any]:
    ctx = request.config_dict[CTX]
    async with ctx.db.read_session() as s:
        if kind == "tracks":
            track = await s.scalar(
                select(Track)
                .options(selectinload(Track.release))
                .where(Track.uuid == uuid, Track.local.is_(True))
            )
            if track is None or not track.public:
                raise NotFound("no such track")
            return document(track_to_ap(ctx, track, track.release))
        if kind == "releases":
            release = await s.scalar(
                select(Release).where(
                    Release.uuid == uuid, Release.local.is_(True), Release.state == "published"
                )
            )
            if release is None:
                raise NotFound("no such release")
            return document(release_to_ap(ctx, release))
        if kind == "events":
            event = await s.scalar(select(Event).where(Event.uuid == uuid, Event.local.is_(True)))
            if event is None:
                raise NotFound("no such event")
            return document(event_to_ap(ctx, event))
        comment = await s.scalar(
            select(Comment).where(Comment.uuid == uuid, Comment.local.is_(True))
        )
        if comment is None:
            raise NotFound("no such comment")
        return document(comment_to_ap(ctx, comment))


@web.middleware
async def negotiation_middleware(request: web.Request, handler):
    """Serve the ActivityPub form of pages to servers that ask for it."""
    if request.method in ("GET", "HEAD") and wants_activity_json(request):
        m = _OBJECT_PATHS.match(request.path)
        if m:
            return ap_response(await object_document(request, m.group(1), m.group(2)))
        m = _PROFILE_PATH.match(request.path)
        if m:
            actor = await _local_actor(request, m.group(1))
            return ap_response(actor_to_ap(request.config_dict[CTX], actor, actor.profile))
    return await handler(request)


def ap_routes() -> list[web.RouteDef]:
    return [
        web.get("/actor", node_actor_view, name="ap.node_actor"),
        web.get("/actor/outbox", empty_collection, name="ap.node_outbox"),
        web.get("/actor/followers", empty_collection, name="ap.node_followers"),
        web.get("/actor/following", empty_collection, name="ap.node_following"),
        web.get("/actors/{handle}", actor_view, name="ap.actor"),
        web.get("/actors/{handle}/outbox", outbox_view, name="ap.outbox"),
        web.get("/actors/{handle}/followers", followers_view, name="ap.followers"),
        web.get("/actors/{handle}/following", following_view, name="ap.following"),
    ]
