"""Search over artists, releases, tracks and events (the whoosh index)."""

from __future__ import annotations

from ..appkeys import SEARCH
from ..search import DOC_TYPES
from ..validation import F, Schema
from . import API
from .routing import Call

SearchQ = Schema(
    "SearchQuery",
    F("q", max_len=200, description="words; fuzzy, the last word is a prefix"),
    F(
        "type",
        "strlist",
        choices=DOC_TYPES,
        description="comma-separated: artist, release, track, event",
    ),
    F("borough", max_len=64),
    F("genre", max_len=60),
    F("limit", "int", min=1, max=100),
    F("page", "int", min=1, max=500),
)
SuggestQ = Schema(
    "SuggestQuery", F("q", required=True, max_len=100), F("limit", "int", min=1, max=20)
)


@API.route(
    "GET",
    "/api/v1/search",
    name="api.search",
    summary="Fuzzy search with borough and genre facets",
    tag="search",
    query=SearchQ,
)
async def search(call: Call):
    q = call.query
    index = call.request.config_dict[SEARCH]
    return await index.search(
        q.get("q", ""),
        types=q.get("type") or None,
        borough=q.get("borough"),
        genre=q.get("genre"),
        limit=q.get("limit", 20),
        page=q.get("page", 1),
    )


@API.route(
    "GET",
    "/api/v1/search/suggest",
    name="api.search.suggest",
    summary="Autocomplete: names and titles starting with the prefix",
    tag="search",
    query=SuggestQ,
)
async def suggest(call: Call):
    index = call.request.config_dict[SEARCH]
    return await index.suggest(call.query["q"], limit=call.query.get("limit", 8))
