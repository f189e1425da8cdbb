"""Small request helpers shared by the API, the web and the console."""

from __future__ import annotations

from aiohttp import web

from .appkeys import CTX


def client_ip(request: web.Request) -> str | None:
    """The client's address; X-Forwarded-For only when the node sits behind a proxy."""
    if request.config_dict[CTX].settings.server.behind_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[0].strip()[:64]
    return request.remote
