"""Typed application keys, in one module (aiohttp's `web.AppKey`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .api.routing import Api
    from .context import NodeContext
    from .jobs import Worker
    from .models import Account
    from .search import SearchIndex

ACCOUNT: web.RequestKey[Account | None] = web.RequestKey("account")
SESSION_SECRET: web.RequestKey[str | None] = web.RequestKey("session_secret")
CTX: web.AppKey[NodeContext] = web.AppKey("ctx")
API: web.AppKey[Api] = web.AppKey("api")
WORKER: web.AppKey[Worker | None] = web.AppKey("worker")
SEARCH: web.AppKey[SearchIndex] = web.AppKey("search")
# Set by the web package: renders an HTML error page for browsers.
HTML_ERROR: web.AppKey[Callable[[web.Request, int, str, str], Awaitable[web.StreamResponse]]] = (
    web.AppKey("html_error")
)
