"""Streaming tracks that live on another node.

A federated track carries the origin's stream links in
`track.media["remote_audio"]` (written by federation/objects.py). By default
the listener is redirected there. With `media.proxy_remote` the node fetches
the file once, under federation's SSRF rules (http(s) only, public addresses
checked at connect time, capped size, deadline), stores it under
`remote/...` and serves it like its own audio, Range and all.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import hdrs, web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from federation.safefetch import UnsafeURL, check_url_async, is_public_address
from node.appkeys import CTX
from node.errors import NodeError, NotFound

from .storage import STORAGE

if TYPE_CHECKING:
    from node.models import Track

REMOTE_CACHE = "public, max-age=86400"
REDIRECT_CACHE = "public, max-age=300"
FETCH_SECONDS = 120.0
MAX_REDIRECTS = 3
_EXT = {"audio/ogg": "ogg", "audio/mpeg": "mp3", "audio/flac": "flac", "audio/mp4": "m4a"}
_FORMAT_MIME = {"opus": "audio/ogg", "mp3_320": "audio/mpeg", "mp3_128": "audio/mpeg"}
# One fetch per remote file at a time, however many listeners ask at once.
_LOCKS: dict[str, asyncio.Lock] = {}


class RemoteFetchFailed(NodeError):
    status = 502
    type_slug = "remote-audio"
    title = "The track's home node did not send its audio"


def pick_link(track: Track, fmt: str) -> tuple[str, str] | None:
    """(href, mime) of the origin's link best matching `fmt`, http(s) only."""
    links = [
        link
        for link in (track.media or {}).get("remote_audio") or []
        if isinstance(link, dict)
        and isinstance(link.get("href"), str)
        and URL(link["href"]).scheme in ("http", "https")
    ]
    if not links:
        return None
    for link in links:  # the origin's own name for this format
        if URL(link["href"]).query.get("format") == fmt:
            return link["href"], str(link.get("mediaType") or "audio/mpeg")
    want = _FORMAT_MIME.get(fmt)
    for link in links:
        if want and link.get("mediaType") == want:
            return link["href"], want
    return links[0]["href"], str(links[0].get("mediaType") or "audio/mpeg")


async def serve_remote(
    request: web.Request, track: Track, fmt: str, *, download: bool = False
) -> web.StreamResponse:
    from .streaming import serve_key

    found = pick_link(track, fmt)
    if found is None:
        raise NotFound("the track's home node offers no audio for it")
    href, mime = found
    ctx = request.config_dict[CTX]
    if not ctx.settings.media.proxy_remote:
        return web.Response(
            status=302, headers={hdrs.LOCATION: href, hdrs.CACHE_CONTROL: REDIRECT_CACHE}
        )
    storage = request.config_dict[STORAGE]
    mime = mime if mime in _EXT else "audio/mpeg"
    key = f"remote/{hashlib.sha256(href.encode()).hexdigest()[:40]}.{_EXT[mime]}"
    if await storage.stat(key) is None:
        lock = _LOCKS.setdefault(key, asyncio.Lock())
        async with lock:
            if await storage.stat(key) is None:
                await _fetch_into(request.app, href, key, mime)
        _LOCKS.pop(key, None)
    return await serve_key(request, storage, key, mime, {hdrs.CACHE_CONTROL: REMOTE_CACHE})


async def _fetch_into(app: web.Application, href: str, key: str, mime: str) -> None:
    ctx = app[CTX]
    settings = ctx.settings
    allow_private = bool(settings.federation.allow_private_addresses)
    limit = int(settings.media.remote_max_bytes)
    tmp_dir = settings.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"remote-{secrets.token_hex(8)}"
    try:
        await fetch_to_file(href, tmp, max_bytes=limit, allow_private=allow_private)
        await app[STORAGE].put_file(key, tmp, mime)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class _PublicOnly(AbstractResolver):
    """Refuses names with any non-public address, at connection time, so a
    DNS answer cannot change between our check and the connect."""

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not results or any(not is_public_address(r["host"]) for r in results):
            raise UnsafeURL(f"{host} resolves to a non-public address")
        return results

    async def close(self) -> None:
        await self._inner.close()


async def fetch_to_file(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    allow_private: bool = False,
    timeout: float = FETCH_SECONDS,
) -> int:
    """GET `url` into `dest` (at most `max_bytes`); returns the size.

    Raises UnsafeURL for a refused address and RemoteFetchFailed otherwise.
    """
    connector = aiohttp.TCPConnector(
        resolver=None if allow_private else _PublicOnly(), limit=4, force_close=True
    )
    size = 0
    try:
        async with (
            asyncio.timeout(timeout),
            aiohttp.ClientSession(
                connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
            ) as session,
        ):
            target = URL(url)
            for _hop in range(MAX_REDIRECTS + 1):
                await check_url_async(str(target), allow_private=allow_private)
                async with session.get(
                    target,
                    allow_redirects=False,
                    headers={"Accept": "audio/*", "User-Agent": "nycmg"},
                ) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        location = resp.headers.get(hdrs.LOCATION)
                        if not location:
                            raise RemoteFetchFailed("redirect without Location")
                        target = target.join(URL(location))
                        continue
                    if resp.status != 200:
                        raise RemoteFetchFailed(f"the origin answered {resp.status}")
                    if resp.content_length is not None and resp.content_length > max_bytes:
                        raise RemoteFetchFailed(f"the file is over {max_bytes} bytes")
                    f = await asyncio.to_thread(open, dest, "wb")
                    with f:
                        async for chunk in resp.content.iter_chunked(256 * 1024):
                            size += len(chunk)
                            if size > max_bytes:
                                raise RemoteFetchFailed(f"the file is over {max_bytes} bytes")
                            await asyncio.to_thread(f.write, chunk)
                    if size == 0:
                        raise RemoteFetchFailed("the origin sent an empty file")
                    return size
            raise RemoteFetchFailed("too many redirects")
    except (UnsafeURL, RemoteFetchFailed):
        raise
    except TimeoutError:
        raise RemoteFetchFailed("the origin was too slow") from None
    except aiohttp.ClientError as e:
        raise RemoteFetchFailed(f"could not reach the origin: {type(e).__name__}") from None
