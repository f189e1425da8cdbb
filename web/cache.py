"""A short-lived cache of public pages as anonymous visitors see them.

Why: an artist's page is what gets linked and shared, so it takes the
bursts; rendering it costs a handful of queries and a template, serving it
from memory costs a dictionary lookup. Only anonymous GETs without a query
string are cached (signed-in visitors see their own menu, drafts, tokens),
and never a response that sets a cookie.

Freshness: every catalog change emits a domain event (node.events); the web
subscribes and empties the cache when the change's transaction commits, so
a single process never serves a stale page. With several `serve` processes
the others catch up within `TTL_SECONDS` (the usual "microcache" trade).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from functools import wraps

from aiohttp import web
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from node.appkeys import ACCOUNT, CTX
from node.events import DomainEvent

TTL_SECONDS = 30.0
MAX_ENTRIES = 4096
# Changes that can alter a public page (plays, likes and follows do not).
INVALIDATING = (
    "actor.created",
    "actor.updated",
    "actor.deleted",
    "release.created",
    "release.updated",
    "release.published",
    "release.deleted",
    "track.created",
    "track.uploaded",
    "track.updated",
    "track.deleted",
    "event.created",
    "event.updated",
    "event.deleted",
    "venue.created",
    "venue.updated",
)
_KEEP_HEADERS = (
    "Content-Type",
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "X-Frame-Options",
    "Cache-Control",
    "Vary",
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PageCache:
    """Bodies by path, each for `ttl` seconds, the least recently used dropped first."""

    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes, tuple[tuple[str, str], ...]]] = (
            OrderedDict()
        )
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> web.Response | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        _, body, headers = entry
        return web.Response(body=body, headers=dict(headers))

    def put(self, key: str, response: web.Response) -> None:
        body = response.body
        if not isinstance(body, bytes):
            return
        headers = tuple((k, response.headers[k]) for k in _KEEP_HEADERS if k in response.headers)
        self._entries[key] = (time.monotonic() + self.ttl, body, headers)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


PAGE_CACHE: web.AppKey[PageCache] = web.AppKey("web_page_cache", PageCache)
_INCOMPLETE: web.RequestKey[bool] = web.RequestKey("web_cache_incomplete", bool)


def do_not_cache(request: web.Request) -> None:
    """This page is missing something that will be ready soon (say, figures still being
    counted): serve it, but do not keep it for the next visitors."""
    request[_INCOMPLETE] = True


def cached_for_anonymous(handler: Handler) -> Handler:
    """Serve `handler`'s page from the cache to visitors who are not signed in."""

    @wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        cacheable = (
            request.method == "GET"
            and request.get(ACCOUNT) is None
            and not request.query_string
            and PAGE_CACHE in request.config_dict
        )
        if not cacheable:
            return await handler(request)
        cache = request.config_dict[PAGE_CACHE]
        hit = cache.get(request.path)
        if hit is not None:
            return hit
        response = await handler(request)
        if (
            isinstance(response, web.Response)
            and response.status == 200
            and "Set-Cookie" not in response.headers
            and not request.get(_INCOMPLETE)
        ):
            cache.put(request.path, response)
        return response

    return wrapper


def install(app: web.Application) -> PageCache:
    """Create the app's cache and empty it whenever a change to the catalog commits."""
    cache = PageCache()
    app[PAGE_CACHE] = cache

    def _after_commit(_session: object) -> None:
        cache.clear()

    async def _invalidate(session: AsyncSession, _evt: DomainEvent) -> None:
        # Now (the change is under way) and again once it is committed, so a
        # page rendered from the old rows in between is not kept.
        cache.clear()
        sync = session.sync_session
        if not sa_event.contains(sync, "after_commit", _after_commit):
            sa_event.listen(sync, "after_commit", _after_commit)

    bus = app[CTX].bus
    for name in INVALIDATING:
        bus.subscribe(name, _invalidate)
    return cache
