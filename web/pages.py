"""The browsing pages: home, boroughs, the artist directory and the events listing.

Thin handlers: read the query, run a few read queries, render. Lists use the
core's cursor pagination, so page 50 costs what page 1 does.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby
from typing import Any

from aiohttp import web

from node.appkeys import CTX
from node.errors import NotFound
from node.services import catalog, gigs

from . import formatting, queries
from .cache import cached_for_anonymous
from .render import ENV, render

PAGE_SIZE = 24


def borough_by_slug(request: web.Request, slug: str | None) -> str | None:
    """The configured borough whose slug (or name) this is, else None."""
    if not slug:
        return None
    wanted = slug.strip().lower()
    for name in request.config_dict[CTX].settings.node.boroughs:
        if formatting.slugify(name) == wanted or name.lower() == wanted:
            return name
    return None


def _text_param(request: web.Request, name: str, limit: int) -> str | None:
    value = request.query.get(name, "").strip()
    return value[:limit] or None


def _by_day(events: Iterable[Any], day) -> list[tuple[str, list[Any]]]:
    return [
        (label, list(group)) for label, group in groupby(events, key=lambda e: day(e.starts_at))
    ]


@cached_for_anonymous
async def home(request: web.Request) -> web.Response:
    ctx = request.config_dict[CTX]
    async with ctx.db.read_session() as s:
        stats = await queries.borough_stats(s)
        releases = await queries.newest_releases(s, limit=8)
        events = (await gigs.list_events(s, limit=6)).items
        artists = await queries.newest_artists(s, limit=12)
    tiles = [
        {"name": b, "slug": formatting.slugify(b), **stats.get(b, {"artists": 0, "events": 0})}
        for b in ctx.settings.node.boroughs
    ]
    return render(
        request,
        "home.html",
        {"tiles": tiles, "releases": releases, "events": events, "artists": artists},
    )


@cached_for_anonymous
async def borough(request: web.Request) -> web.Response:
    ctx = request.config_dict[CTX]
    name = borough_by_slug(request, request.match_info["slug"])
    if name is None:
        raise NotFound("This node has no borough by that name.")
    async with ctx.db.read_session() as s:
        artists = await queries.newest_artists(s, borough=name, limit=PAGE_SIZE)
        releases = await queries.newest_releases(s, borough=name, limit=8)
        events = (await gigs.list_events(s, borough=name, limit=10)).items
    return render(
        request,
        "borough.html",
        {
            "borough": name,
            "slug": formatting.slugify(name),
            "artists": artists,
            "releases": releases,
            "events": events,
        },
    )


async def artists(request: web.Request) -> web.Response:
    """The directory: every local artist by handle, filtered by borough and genre."""
    ctx = request.config_dict[CTX]
    raw_borough = _text_param(request, "borough", 64)
    borough = borough_by_slug(request, raw_borough)
    genre = _text_param(request, "genre", 60)
    cursor = _text_param(request, "cursor", 500)
    unknown_borough = raw_borough is not None and borough is None
    items: list[Any] = []
    next_cursor = None
    if not unknown_borough:
        async with ctx.db.read_session() as s:
            page = await catalog.list_artists(
                ctx, s, borough=borough, genre=genre, cursor=cursor, limit=PAGE_SIZE
            )
        items, next_cursor = page.items, page.next_cursor
    return render(
        request,
        "artists.html",
        {
            "artists": items,
            "borough": borough,
            "borough_slug": formatting.slugify(borough) if borough else None,
            "genre": genre,
            "next_cursor": next_cursor,
            "is_first_page": cursor is None,
            "unknown_borough": raw_borough if unknown_borough else None,
        },
    )


async def events(request: web.Request) -> web.Response:
    """Upcoming events, soonest first, grouped by day; filter by borough."""
    ctx = request.config_dict[CTX]
    raw_borough = _text_param(request, "borough", 64)
    borough = borough_by_slug(request, raw_borough)
    cursor = _text_param(request, "cursor", 500)
    items: list[Any] = []
    next_cursor = None
    if raw_borough is None or borough is not None:
        async with ctx.db.read_session() as s:
            page = await gigs.list_events(s, borough=borough, cursor=cursor, limit=PAGE_SIZE)
        items, next_cursor = page.items, page.next_cursor
    day = request.config_dict[ENV].filters["day"]
    return render(
        request,
        "events.html",
        {
            "days": _by_day(items, day),
            "borough": borough,
            "borough_slug": formatting.slugify(borough) if borough else None,
            "next_cursor": next_cursor,
            "is_first_page": cursor is None,
            "unknown_borough": raw_borough if raw_borough and borough is None else None,
        },
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/", home, name="web.home")
    app.router.add_get("/boroughs/{slug}", borough, name="web.borough")
    app.router.add_get("/artists", artists, name="web.artists")
    app.router.add_get("/events", events, name="web.events")
