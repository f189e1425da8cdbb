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


async def read_at_most(request: web.BaseRequest, limit: int) -> bytes:
    """The whole body if it is at most `limit` bytes, else its first `limit + 1`
    bytes (callers refuse those as too large). `StreamReader.read(n)` alone returns
    only what is buffered (one chunk of a large, chunked or slow body), so a caller
    that trusted it would check a signature or parse JSON over half a body."""
    body = bytearray()
    while len(body) <= limit and (chunk := await request.content.read(limit + 1 - len(body))):
        body += chunk
    return bytes(body)
