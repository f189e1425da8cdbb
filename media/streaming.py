"""Sending a track's audio to listeners: `GET|HEAD /tracks/{uuid}/stream?format=...`.

`serve_track()` is the one place that knows how bytes leave the node, used by
this route and by Subsonic's stream/download:

- local storage: `web.FileResponse` (sendfile, Range, If-Range, 304), or an
  empty answer with `X-Accel-Redirect` so nginx sends the file
  (`media.x_accel_prefix`);
- S3: a redirect to a presigned URL (`media.s3_presign`), else the node
  proxies the object with its own Range handling;
- remote tracks (federated from another node): a redirect to the origin, or
  with `media.proxy_remote` a bounded, address-checked fetch cached in
  storage and then served like a local file.

Published tracks are `public, immutable`; drafts, visible only to their
artist, are `private`. With `media.signed_urls` every stream URL must carry
an unexpired HMAC signature (`signed_stream_url()` makes them).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import re
import stat
import time
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import hdrs, web
from sqlalchemy import event as sa_event

from node.appkeys import ACCOUNT, CTX
from node.errors import Conflict, Forbidden, NotFound

from .storage import (
    CHUNK,
    STORAGE,
    Storage,
    StoredObject,
    close_storage,
    local_object,
    storage_of,
)

if TYPE_CHECKING:
    from node.context import NodeContext
    from node.models import Track

FORMATS = ("opus", "mp3_320", "mp3_128", "preview", "original")
PUBLIC_CACHE = "public, max-age=31536000, immutable"
PRIVATE_CACHE = "private, max-age=300"
_UUID = re.compile(r"^[0-9a-fA-F-]{32,36}$")
# Public tracks change rarely; looking them up on every Range request of
# every listener is the main cost of a stream, so they are kept in memory.
# Catalog changes in this process empty the cache when they commit; other
# processes (several `serve` workers on PostgreSQL) catch up within the TTL.
# An entry past its TTL is still served while one background lookup renews
# it (for at most another TTL), so listeners never wait for the database
# when entries expire together.
TRACK_CACHE_SECONDS = 30.0
TRACK_CACHE_MAX = 4096
_MIME_BY_FORMAT = {
    "opus": "audio/ogg",
    "mp3_320": "audio/mpeg",
    "mp3_128": "audio/mpeg",
    "preview": "audio/mpeg",
}
_TRACK_CACHE: web.AppKey[TrackCache] = web.AppKey("media.track_cache")
log = logging.getLogger("nycmg.media")


class TrackCache:
    """Public tracks by uuid for a short while, with one database lookup per
    uuid at a time: when an entry expires under 200 listeners, one of them
    reads the row and the others wait for it instead of queueing 200 reads;
    an entry just past its TTL is renewed in the background instead."""

    def __init__(self, ttl: float = TRACK_CACHE_SECONDS, max_entries: int = TRACK_CACHE_MAX):
        self.ttl = ttl
        self.max_entries = max_entries
        self.entries: dict[str, tuple[float, Any]] = {}
        self.loading: dict[str, asyncio.Future[Any]] = {}
        self.renewing: dict[str, asyncio.Task[None]] = {}
        # Bumped by clear(): a lookup that began before a change does not store its row.
        self.generation = 0

    def get(self, uuid: str) -> Any | None:
        hit = self.entries.get(uuid)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        return None

    def stale(self, uuid: str) -> Any | None:
        """The entry if it expired less than a TTL ago (to serve while renewing)."""
        hit = self.entries.get(uuid)
        if hit is not None and hit[0] + self.ttl > time.monotonic():
            return hit[1]
        return None

    def put(self, uuid: str, track: Any, generation: int | None = None) -> None:
        if generation is not None and generation != self.generation:
            return
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[uuid] = (time.monotonic() + self.ttl, track)

    def clear(self) -> None:
        self.generation += 1
        self.entries.clear()


_INVALIDATING = (
    "track.updated",
    "track.deleted",
    "track.ready",
    "release.updated",
    "release.published",
    "release.deleted",
)


def setup(app: web.Application) -> None:
    """Open the node's storage, install the stream route, keep the track cache fresh."""
    ctx = app[CTX]
    app[STORAGE] = storage_of(ctx)
    cache = app[_TRACK_CACHE] = TrackCache()
    # add_get also answers HEAD.
    app.router.add_get("/tracks/{uuid}/stream", stream, name="media.stream")

    def after_commit(_session: object) -> None:
        cache.clear()

    async def forget(session: Any, event: Any) -> None:
        # Now, and again when the change commits, so a row read in between
        # (still the old one) is not kept.
        cache.clear()
        sync = session.sync_session
        if not sa_event.contains(sync, "after_commit", after_commit):
            sa_event.listen(sync, "after_commit", after_commit)

    for name in _INVALIDATING:
        ctx.bus.subscribe(name, forget)

    async def storage_ctx(app: web.Application):
        yield
        for task in list(cache.renewing.values()):
            task.cancel()
        await close_storage(ctx)

    app.cleanup_ctx.append(storage_ctx)


# -- the route ------------------------------------------------------------------


async def stream(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CTX]
    uuid = request.match_info["uuid"]
    fmt = request.query.get("format", "mp3_128")
    if fmt not in FORMATS:
        raise NotFound(f"unknown format {fmt[:40]!r}; one of {', '.join(FORMATS)}")
    if not _UUID.match(uuid):
        raise NotFound("no such track")
    if ctx.settings.media.signed_urls:
        check_signature(ctx, uuid, fmt, request.query.get("exp", ""), request.query.get("sig", ""))
    track = await _find_track(request, uuid)
    return await serve_track(request, track, fmt, download=request.query.get("download") == "1")


async def _find_track(request: web.Request, uuid: str) -> Track:
    cache = request.config_dict[_TRACK_CACHE]
    track = cache.get(uuid)
    if track is not None:
        return track
    track = cache.stale(uuid)
    if track is not None:
        if uuid not in cache.renewing and uuid not in cache.loading:
            cache.renewing[uuid] = asyncio.get_running_loop().create_task(
                _renew(request.config_dict[CTX], cache, uuid)
            )
        return track
    account = request.get(ACCOUNT)
    pending = cache.loading.get(uuid)
    if pending is not None:
        await asyncio.wait([pending])  # our own cancellation still propagates
        if not pending.cancelled() and pending.exception() is None:
            return pending.result()
        # The first asker could not see it (a draft) or failed: ask ourselves.
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    cache.loading[uuid] = future
    generation = cache.generation
    try:
        track = await _load_track(request.config_dict[CTX], uuid, account)
    except asyncio.CancelledError:
        future.cancel()
        raise
    except BaseException as e:
        future.set_exception(e)
        future.exception()  # retrieved: no "never retrieved" warning
        raise
    finally:
        cache.loading.pop(uuid, None)
    if track.public:
        cache.put(uuid, track, generation)
        future.set_result(track)
    else:
        # A draft is for its artist only: others asking at once look it up themselves.
        future.set_exception(NotFound("no such track"))
        future.exception()
    return track


async def _renew(ctx: NodeContext, cache: TrackCache, uuid: str) -> None:
    """Look a cached public track up again; drop it if it is no longer public."""
    generation = cache.generation
    try:
        track = await _load_track(ctx, uuid, None)
    except NotFound:
        track = None
    except Exception:  # noqa: BLE001 - the next request past the grace period asks itself
        log.warning("renewing a cached track failed", exc_info=True, extra={"track": uuid})
        return
    finally:
        cache.renewing.pop(uuid, None)
    if track is not None and track.public:
        cache.put(uuid, track, generation)
    elif generation == cache.generation:
        cache.entries.pop(uuid, None)


async def _load_track(ctx: NodeContext, uuid: str, account: Any) -> Track:
    from node.services.catalog import get_track

    async with ctx.db.read_session() as s:
        track = await get_track(s, uuid, account)
        # Everything serve_track reads, loaded while the session is open.
        _ = (track.artist.handle, track.release and track.release.state)
    return track


# -- signed URLs ----------------------------------------------------------------


def _sign(secret: str, uuid: str, fmt: str, exp: int) -> str:
    mac = hmac.new(secret.encode(), f"stream:{uuid}:{fmt}:{exp}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()[:18]).decode()


def signed_stream_url(
    ctx: NodeContext,
    uuid: str,
    fmt: str,
    *,
    expires_in: int | None = None,
    now: float | None = None,
) -> str:
    """`/tracks/{uuid}/stream?format=...` with `exp` and `sig` when signed URLs are on.

    The expiry is rounded up to the hour so a page's URLs stay the same for a
    while (browser and proxy caches keep working).
    """
    path = f"/tracks/{uuid}/stream?format={fmt}"
    if not ctx.settings.media.signed_urls:
        return path
    life = expires_in if expires_in is not None else ctx.settings.media.signed_url_seconds
    exp = int(((now if now is not None else time.time()) + life) // 3600 + 1) * 3600
    return f"{path}&exp={exp}&sig={_sign(ctx.settings.node.secret_key, uuid, fmt, exp)}"


def check_signature(ctx: NodeContext, uuid: str, fmt: str, exp: str, sig: str) -> None:
    """Raise Forbidden unless `sig` signs (uuid, fmt, exp) and `exp` is in the future."""
    if not exp.isdigit() or len(exp) > 12 or not sig or len(sig) > 64:
        raise Forbidden("this stream needs a signed link (exp and sig)")
    expected = _sign(ctx.settings.node.secret_key, uuid, fmt, int(exp))
    if not hmac.compare_digest(expected, sig):
        raise Forbidden("the stream link's signature is wrong")
    if int(exp) < time.time():
        raise Forbidden("the stream link has expired")


# -- serving --------------------------------------------------------------------


async def serve_track(
    request: web.Request, track: Track, fmt: str, *, download: bool = False
) -> web.StreamResponse:
    """Answer `request` with `track`'s audio in `fmt` (see the module docstring).

    The caller has already checked that the requester may see the track.
    NotFound for an unknown format or a format this track lacks, Conflict
    (409) while the track's audio is still being processed.
    """
    if fmt not in FORMATS:
        raise NotFound(f"unknown format {fmt[:40]!r}")
    if not track.local:
        from .remote import serve_remote

        return await serve_remote(request, track, fmt, download=download)
    media = track.media or {}
    entry = (media.get("files") or {}).get(fmt)
    if not isinstance(entry, dict) or not entry.get("key"):
        if track.state == "processing" or (track.state == "ready" and not media.get("files")):
            raise Conflict("this track's audio is still being processed; try again shortly")
        if track.state == "failed":
            raise NotFound("this track's audio could not be processed")
        raise NotFound(f"this track has no {fmt} audio")
    headers = {hdrs.CACHE_CONTROL: PUBLIC_CACHE if track.public else PRIVATE_CACHE}
    if download:
        headers[hdrs.CONTENT_DISPOSITION] = _attachment(track, str(entry["key"]))
    return await serve_key(
        request,
        request.config_dict[STORAGE],
        str(entry["key"]),
        str(entry.get("mime") or _MIME_BY_FORMAT.get(fmt, "application/octet-stream")),
        headers,
    )


async def serve_key(
    request: web.Request,
    storage: Storage,
    key: str,
    mime: str,
    headers: dict[str, str],
) -> web.StreamResponse:
    """Send one stored object with `headers`, by the cheapest means the backend allows."""
    settings = request.config_dict[CTX].settings
    headers = {**headers, hdrs.CONTENT_TYPE: mime, "X-Content-Type-Options": "nosniff"}
    path = storage.local_path(key)
    if path is not None:
        prefix = settings.media.x_accel_prefix
        if prefix:
            # nginx serves the file (Range, sendfile); we only said yes.
            if not path.is_file():
                raise NotFound("the audio file is missing from storage")
            headers["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(key)
            return web.Response(headers=headers)
        return await send_local_file(request, path, key, headers)
    if settings.media.s3_presign:
        expires = max(60, int(settings.media.signed_url_seconds))
        url = await storage.presigned_url(key, expires)
        if url:
            # The redirect itself must not outlive the presigned URL.
            redirect = {
                hdrs.LOCATION: url,
                hdrs.CACHE_CONTROL: f"private, max-age={min(expires // 2, 3600)}",
            }
            if hdrs.CONTENT_DISPOSITION in headers:
                redirect[hdrs.CONTENT_DISPOSITION] = headers[hdrs.CONTENT_DISPOSITION]
            return web.Response(status=302, headers=redirect)
    obj = await storage.stat(key)
    if obj is None:
        raise NotFound("the audio file is missing from storage")
    return await send_ranged(request, obj, storage, headers)


# -- Range and conditional requests for objects we proxy ------------------------


_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


def parse_range(value: str, size: int) -> tuple[int, int] | None | bool:
    """(start, end) inclusive for one satisfiable range; None to ignore the
    header (absent, malformed or several ranges: send it all); False when
    unsatisfiable (416)."""
    m = _RANGE.fullmatch(value or "")
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if len(first) > 18 or len(last) > 18:
        return None
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            return False
        return max(0, size - n), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # "bytes=9-5" is malformed, not unsatisfiable
    if start >= size:
        return False
    return start, min(int(last) if last else size - 1, size - 1)


def _etag_list(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def _http_date(value: str) -> datetime | None:
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _not_modified(request: web.Request, etag: str, modified: datetime) -> bool:
    inm = request.headers.get(hdrs.IF_NONE_MATCH)
    if inm is not None:
        tags = _etag_list(inm)
        # Weak comparison, as RFC 9110 asks for If-None-Match.
        return "*" in tags or any(t.removeprefix("W/") == etag for t in tags)
    ims = request.headers.get(hdrs.IF_MODIFIED_SINCE)
    if ims:
        since = _http_date(ims)
        return since is not None and modified.replace(microsecond=0) <= since
    return False


def _if_range_allows(request: web.Request, etag: str, modified: datetime) -> bool:
    value = request.headers.get(hdrs.IF_RANGE)
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag  # strong comparison only
    since = _http_date(value)
    return since is not None and modified.replace(microsecond=0) == since


def _plan(
    request: web.Request, obj: StoredObject, headers: dict[str, str], ranges: bool = True
) -> web.Response | tuple[int, dict[str, str], int, int]:
    """The answer to a conditional or ranged GET of `obj`: a finished 304 or
    416, or (status, headers, first byte, byte count) for the body."""
    etag = f'"{obj.etag}"'
    base = {
        **headers,
        hdrs.ETAG: etag,
        hdrs.LAST_MODIFIED: format_datetime(obj.modified.astimezone(UTC), usegmt=True),
        hdrs.ACCEPT_RANGES: "bytes",
    }
    if _not_modified(request, etag, obj.modified):
        base.pop(hdrs.CONTENT_TYPE, None)
        return web.Response(status=304, headers=base)
    span: tuple[int, int] | None | bool = None
    if ranges and hdrs.RANGE in request.headers and _if_range_allows(request, etag, obj.modified):
        span = parse_range(request.headers[hdrs.RANGE], obj.size)
    if span is False:
        base[hdrs.CONTENT_RANGE] = f"bytes */{obj.size}"
        base.pop(hdrs.CONTENT_TYPE, None)
        return web.Response(status=416, headers=base)
    if span:
        start, end = span
        base[hdrs.CONTENT_RANGE] = f"bytes {start}-{end}/{obj.size}"
        return 206, base, start, end - start + 1
    return 200, base, 0, obj.size


async def send_ranged(
    request: web.Request,
    obj: StoredObject,
    storage: Storage,
    headers: dict[str, str],
    *,
    ranges: bool = True,
) -> web.StreamResponse:
    """Stream `obj` from `storage` honouring Range, If-Range, If-None-Match and
    If-Modified-Since (for backends without a local file); `ranges=False`
    sends the whole object whatever the Range header says."""
    planned = _plan(request, obj, headers, ranges)
    if isinstance(planned, web.Response):
        return planned
    status, base, start, count = planned
    resp = web.StreamResponse(status=status, headers=base)
    resp.content_length = count
    await resp.prepare(request)
    if request.method != "HEAD" and count:
        async for block in storage.iter_range(obj.key, start, start + count - 1):
            await resp.write(block)
    await resp.write_eof()
    return resp


class _FileBody(web.StreamResponse):
    """Headers, then `count` bytes of an open file from `offset` by sendfile(2).

    Like aiohttp's FileResponse, minus its thread-pool round trip for stat
    and open: on a node those are page-cache hits, and under 200 listeners
    the hop to a worker thread and back costs more than the call itself.
    """

    def __init__(self, fobj: Any, offset: int, count: int, **kw: Any) -> None:
        super().__init__(**kw)
        self._fobj, self._offset, self._count = fobj, offset, count

    async def prepare(self, request: web.BaseRequest) -> Any:
        if self.prepared:
            return await super().prepare(request)
        try:
            writer = await super().prepare(request)
            if request.method != "HEAD" and self._count:
                transport = request.transport
                if transport is None:
                    raise ConnectionResetError("connection lost")
                offset, count = self._offset, self._count
                sent = _sendfile_now(transport, self._fobj, offset, count)
                offset, count = offset + sent, count - sent
                try:
                    if count:
                        await asyncio.get_running_loop().sendfile(
                            transport, self._fobj, offset, count
                        )
                except NotImplementedError:  # TLS or a platform without sendfile
                    self._fobj.seek(offset)
                    left = count
                    while left > 0 and (block := self._fobj.read(min(CHUNK, left))):
                        await self.write(block)
                        left -= len(block)
            await self.write_eof()
            return writer
        finally:
            self._fobj.close()


def _sendfile_now(transport: Any, fobj: Any, offset: int, count: int) -> int:
    """As much of the range as the socket takes right now, by one sendfile(2)
    on a plain TCP socket whose transport has nothing queued (the headers are
    out); returns the bytes sent, 0 when this does not apply.

    A 256 KiB Range usually fits the socket's buffer whole, and then this is
    all the sending there is: `loop.sendfile` would first pause reading, wait
    for the transport to drain and resume it (two epoll changes and several
    loop turns per request); it only runs for what is left.
    """
    if not hasattr(os, "sendfile") or transport.get_extra_info("sslcontext") is not None:
        return 0
    sock = transport.get_extra_info("socket")
    if sock is None or transport.is_closing() or transport.get_write_buffer_size():
        return 0
    try:
        return os.sendfile(sock.fileno(), fobj.fileno(), offset, count)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError:
        # Let the loop's sendfile meet the same error and report it its way.
        return 0


async def send_local_file(
    request: web.Request, path: Any, key: str, headers: dict[str, str]
) -> web.StreamResponse:
    """Send a file of the local store: Range, If-Range, validators, sendfile."""
    try:
        fobj = open(path, "rb")  # noqa: ASYNC230,SIM115 - a page-cache hit; closed by _FileBody
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise NotFound("the audio file is missing from storage") from None
    try:
        st = os.fstat(fobj.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise NotFound("the audio file is missing from storage")
        planned = _plan(request, local_object(key, st), headers)
    except BaseException:
        fobj.close()
        raise
    if isinstance(planned, web.Response):
        fobj.close()
        return planned
    status, base, start, count = planned
    resp = _FileBody(fobj, start, count, status=status, headers=base)
    resp.content_length = count
    return resp


def _attachment(track: Track, key: str) -> str:
    ext = key.rsplit(".", 1)[-1] if "." in key.rsplit("/", 1)[-1] else "bin"
    name = f"{track.artist.name or track.artist.handle} - {track.title}.{ext}"
    ascii_name = re.sub(r"[^A-Za-z0-9 ._()-]+", "_", name)[:150]
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name[:150])}"
