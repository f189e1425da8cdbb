"""The search page: results grouped by kind, with borough, genre and type filters.

A plain GET form and links, so it works without JavaScript; the header's
autocomplete (static/js/autocomplete.js) is only a shortcut to the same
places. Results come from the node's SearchIndex (node/search).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node.appkeys import CTX, SEARCH
from node.search import DOC_TYPES

from .render import render

PER_PAGE = 20
TYPE_LABELS = {"artist": "Artists", "release": "Releases", "track": "Tracks", "event": "Events"}


def _types(request: web.Request) -> list[str]:
    wanted: list[str] = []
    for raw in request.query.getall("type", []):
        for t in raw.split(","):
            t = t.strip().lower()
            if t in DOC_TYPES and t not in wanted:
                wanted.append(t)
    return wanted


def _page(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    return min(max(int(raw), 1), 500) if raw.isdigit() and len(raw) < 5 else 1


def _facet(facets: dict[str, Any], name: str) -> list[tuple[str, int]]:
    """A facet as (value, count) pairs, biggest first, whatever shape the index gives."""
    raw = facets.get(name) or {}
    pairs = (
        raw.items()
        if isinstance(raw, dict)
        else (tuple(x)[:2] for x in raw if isinstance(x, list | tuple))
    )
    clean = [(str(k), int(v)) for k, v in pairs if k and isinstance(v, int) and v > 0]
    return sorted(clean, key=lambda kv: (-kv[1], kv[0].lower()))[:12]


async def search_page(request: web.Request) -> web.Response:
    q = " ".join(request.query.get("q", "").split())[:200]
    borough = request.query.get("borough", "").strip()[:64] or None
    genre = request.query.get("genre", "").strip()[:60] or None
    types = _types(request)
    page = _page(request)
    result: dict[str, Any] = {"total": 0, "results": [], "facets": {}}
    searched = bool(q or borough or genre)
    if searched:
        index = request.config_dict[SEARCH]
        result = await index.search(
            q, types=types or None, borough=borough, genre=genre, limit=PER_PAGE, page=page
        )
    groups: dict[str, list[dict[str, Any]]] = {}
    base = request.config_dict[CTX].settings.base_url
    for hit in result.get("results", []):
        url = hit.get("url") or ""
        if url.startswith(base + "/"):  # our own pages: a path works behind any host name
            hit = {**hit, "url": url[len(base) :]}
        groups.setdefault(hit.get("type", "artist"), []).append(hit)
    ordered = [(t, TYPE_LABELS[t], groups[t]) for t in DOC_TYPES if t in groups]
    facets = result.get("facets") or {}
    total = int(result.get("total") or 0)
    state = {"q": q, "type": ",".join(types) or None, "borough": borough, "genre": genre}
    return render(
        request,
        "search.html",
        {
            "q": q,
            "searched": searched,
            "state": state,
            "types": types,
            "borough": borough,
            "genre": genre,
            "total": total,
            "groups": ordered,
            "type_labels": TYPE_LABELS,
            "type_facet": dict(_facet(facets, "type")),
            "borough_facet": _facet(facets, "borough"),
            "genre_facet": _facet(facets, "genre"),
            "page": page,
            "has_next": page * PER_PAGE < total,
        },
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/search", search_page, name="web.search")
