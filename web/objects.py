"""The object pages: an artist, a release, a track, an event.

These URLs are also the objects' ActivityPub ids (DESIGN.md 4): federation's
negotiation middleware answers clients that ask for activity JSON before
these handlers run, so here it is always a page for people.
"""

from __future__ import annotations

from aiohttp import web

from node.appkeys import ACCOUNT, CTX
from node.errors import NotFound
from node.services import catalog, gigs
from node.validation import UUID_RE

from . import artist_page, following, queries
from .cache import cached_for_anonymous
from .remote import LOOKUPS, LookupProblem
from .render import render

HANDLE_PATH = r"[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9.\-]{1,253}(?::\d{1,5})?)?"
# A visit to an unknown remote artist waits this long for their node (web.remote).
DISCOVER_DEADLINE_SECONDS = 5.0


def _uuid(request: web.Request) -> str:
    value = request.match_info["uuid"].lower()
    if not UUID_RE.match(value):
        raise NotFound("There is nothing at this address.")
    return value


@cached_for_anonymous
async def artist(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    account = request.get(ACCOUNT)
    handle = request.match_info["handle"]
    pages = request.config_dict[artist_page.ARTIST_PAGES]
    try:
        page = await pages.get(handle)
    except NotFound:
        # `/@jay@queens.example` not heard of yet: ask queens.example once, briefly.
        if not await _discover(request, handle):
            raise
        page = await pages.get(handle)
    if account is not None and catalog.can_see(account, page.artist.id):
        async with ctx.db.read_session() as s:
            page = await artist_page.with_drafts(await s.connection(), page, account)
    return render(
        request,
        "artist.html",
        {
            "actor": page.artist,
            "releases": page.releases,
            "tracks": page.tracks,
            "events": page.events,
            "is_owner": page.is_owner,
            **await following.artist_context(request, page.artist.id),
        },
    )


async def _discover(request: web.Request, handle: str) -> bool:
    """Look a remote handle up on its node: True once it is stored here, False for
    a local handle (nothing to look up); else a NotFound that says what happened."""
    name, domain = artist_page.key_of(request.config_dict[CTX], handle)
    if domain == request.config_dict[CTX].domain.lower():
        return False
    try:
        await request.config_dict[LOOKUPS].resolve(
            f"@{name}@{domain}", deadline=DISCOVER_DEADLINE_SECONDS
        )
    except LookupProblem as p:
        raise NotFound(
            f"This node has not heard of @{name}@{domain} before, and could not look them up. "
            + p.message
        ) from None
    return True


@cached_for_anonymous
async def release(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    uuid = _uuid(request)
    async with ctx.db.read_session() as s:
        item = await catalog.get_release(s, uuid, request.get(ACCOUNT))
        profile = await queries.profile_of(s, item.artist_id)
        more = await queries.more_releases(s, item.artist_id, item.id)
    known = [t.duration_ms for t in item.tracks if t.duration_ms]
    return render(
        request,
        "release.html",
        {
            "release": item,
            "artist": item.artist,
            "profile": profile,
            "tracks": item.tracks,
            "running_ms": sum(known) if known else None,
            "more": more,
        },
    )


@cached_for_anonymous
async def track(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    uuid = _uuid(request)
    async with ctx.db.read_session() as s:
        item = await catalog.get_track(s, uuid, request.get(ACCOUNT))
        parent = item.release
        siblings = await queries.tracks_of_release(s, parent.id) if parent is not None else []
    return render(
        request,
        "track.html",
        {
            "track": item,
            "artist": item.artist,
            "release": parent,
            "siblings": siblings,
        },
    )


@cached_for_anonymous
async def event(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    uuid = _uuid(request)
    async with ctx.db.read_session() as s:
        item = await gigs.get_event(s, uuid)
        lineup = [x for x in item.lineup if isinstance(x, str)]
        known = await queries.lineup_artists(s, ctx, lineup)
    return render(
        request,
        "event.html",
        {
            "event": item,
            "venue": item.venue,
            "organizer": item.organizer,
            "lineup": [(name.lstrip("@"), known.get(name)) for name in lineup],
            "can_manage": gigs.can_manage(request.get(ACCOUNT), item.organizer_id),
        },
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/@{handle:" + HANDLE_PATH + "}", artist, name="web.artist")
    app.router.add_get("/releases/{uuid}", release, name="web.release")
    app.router.add_get("/tracks/{uuid}", track, name="web.track")
    app.router.add_get("/events/{uuid}", event, name="web.event")
