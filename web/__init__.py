"""The public site: server-rendered pages for fans and artists (DESIGN.md 10).

`setup(app)` is called by the composition root. It adds the jinja2
environment, the routes (pages, object pages, search, accounts, follows and
the feed), the static files with cache headers, and the HTML error pages.
"""

from __future__ import annotations

from aiohttp import web

from node.appkeys import CTX, HTML_ERROR

from . import (
    accounts,
    artist_page,
    cache,
    earnings_pages,
    live_pages,
    objects,
    pages,
    player,
    search,
    social,
    studio,
    subsonic_page,
    venue_pages,
)
from .errors import html_error
from .render import ENV, STATIC, build_environment

# Versioned URLs (?v=hash, see render.static) can be cached for good.
LONG_CACHE = "public, max-age=31536000, immutable"
SHORT_CACHE = "public, max-age=3600"


async def _static_cache_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/static/") and response.status in (200, 304):
        response.headers["Cache-Control"] = LONG_CACHE if "v" in request.query else SHORT_CACHE
        response.headers.setdefault("X-Content-Type-Options", "nosniff")


def setup(app: web.Application) -> None:
    """Install the public site on the node's app."""
    pages.setup_routes(app)
    objects.setup_routes(app)
    search.setup_routes(app)
    accounts.setup_routes(app)
    social.setup(app)
    # Subsystem pages: the artist's studio (uploads), the player, royalties
    # (fans' and artists' money pages, transparency), venues, live.
    studio.setup(app)
    player.setup(app)
    earnings_pages.setup(app)
    venue_pages.setup(app)
    live_pages.setup(app)
    subsonic_page.setup(app)  # /me/subsonic: Subsonic password and API keys
    app.router.add_static("/static", STATIC, name="web.static", follow_symlinks=False)
    app.on_response_prepare.append(_static_cache_headers)
    app[ENV] = build_environment(app)
    app[HTML_ERROR] = html_error
    cache.install(app)
    app[artist_page.ARTIST_PAGES] = artist_page.ArtistPages(app[CTX])
