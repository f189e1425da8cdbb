"""From an uploaded master to a playable track: inspection, the transcode job, the results.

1. Upload: the core calls `ctx.upload_inspector` (installed here) before it
   stores anything, with the file `read_multipart` spooled to DATA/tmp (an
   upload never sits in memory whole). The master is decoded completely in the process pool
   (`media.probe`) and its tags read (`media.tags`); a bad file raises a
   415 or 422 problem and nothing is kept.
2. `track.uploaded` (emitted in the upload's transaction) enqueues the job
   `media.transcode` in that same transaction.
3. The job runs the ladder (`media.transcode.PARTS`) and the cover art in
   the process pool, so the event loop stays free; stores every output
   through `media.storage` under `audio/{artist}/{track}/...` and
   `covers/{artist}/{track}/{size}.jpg`; fills `track.media` (the shape is in
   /work/helpers/INTERFACES.md); sets the track `ready` and emits
   `track.ready` and `track.updated`. The master is then kept once, in
   storage (`files.original`): the upload's copy under DATA/uploads is
   removed and `track.original_path` cleared.
4. A failure is written on the track (`media.error`, `media.attempts`) and
   retried by the job queue with backoff; after `media.transcode_attempts`
   tries (or at once when retrying cannot help, e.g. the master is gone)
   the track is `failed`. `retry_track` (the console) starts it again.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import secrets
import shutil
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import func, select

from node.appkeys import CTX
from node.context import NodeContext
from node.errors import Conflict, NotFound, UnsupportedMediaType, ValidationFailed
from node.jobs import PermanentFailure
from node.models import Job, Track, utcnow

from . import artwork, probe, tags, transcode
from .storage import storage_of

log = logging.getLogger("nycmg.media")

JOB_KIND = "media.transcode"
_POOL_KEY = "media.pool"


# ---- the process pool -------------------------------------------------------


def pool_for(ctx: NodeContext) -> Executor:
    """The context's process pool, started on first use.

    Spawned, not forked: the parent runs an event loop and database threads,
    which a fork would copy mid-flight.
    """
    pool = ctx.extras.get(_POOL_KEY)
    if pool is None:
        n = ctx.settings.media.transcode_processes or os.cpu_count() or 1
        pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("spawn"))
        ctx.extras[_POOL_KEY] = pool
    return pool


def close_pool(ctx: NodeContext) -> None:
    """Stop the pool at once, ending any transcode still running.

    By now the job worker has stopped; a job cut off here stays `running`
    and is picked up again when its lock expires (or at the next start),
    so waiting for a long master to finish would only delay shutdown.
    """
    pool = ctx.extras.pop(_POOL_KEY, None)
    if pool is None:
        return
    # Python 3.14 has ProcessPoolExecutor.terminate_workers(); until then, its processes.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=5)


async def in_pool(ctx: NodeContext, fn: Any, *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(pool_for(ctx), fn, *args)
    except BrokenProcessPool:
        # A worker died (killed, out of memory): start a fresh pool for the next try.
        ctx.extras.pop(_POOL_KEY, None)
        raise


def scratch_dir(ctx: NodeContext, what: str) -> Path:
    path = ctx.settings.data_dir / "tmp" / f"{what}-{secrets.token_hex(8)}"
    path.mkdir(parents=True, exist_ok=False)
    return path


# ---- 1. upload inspection ---------------------------------------------------


def inspect_file(path: str, max_duration_seconds: float) -> dict[str, Any]:
    """Probe + tags of one file (runs in a worker process)."""
    info = probe.probe(path, max_duration_seconds).as_dict()
    info["tags"] = tags.read_tags(path).as_dict()
    return info


def problem_for(e: probe.ProbeError) -> Exception:
    if e.kind == "unsupported":
        return UnsupportedMediaType(e.detail)
    return ValidationFailed([{"field": "file", "message": e.detail}], detail=e.detail)


async def inspect_upload(
    ctx: NodeContext, filename: str, mime: str, data: bytes | Path
) -> dict[str, Any]:
    """Decode an upload before it is stored; raise 415/422 problems for bad files.

    `data` is the file `read_multipart` spooled to disk (decoded where it
    is, no copy), or bytes (written to a scratch file first).
    """
    if isinstance(data, Path):
        return await _inspect_path(ctx, data)
    work = scratch_dir(ctx, "upload")
    try:
        path = work / "master"
        await asyncio.to_thread(path.write_bytes, data)
        return await _inspect_path(ctx, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def _inspect_path(ctx: NodeContext, path: Path) -> dict[str, Any]:
    try:
        return await in_pool(ctx, inspect_file, str(path), ctx.settings.media.max_duration_seconds)
    except probe.ProbeError as e:
        raise problem_for(e) from None


# ---- 2. the job --------------------------------------------------------------


def setup(app: web.Application) -> None:
    """Install the upload inspector, the `track.uploaded` subscriber and the job handler."""
    from . import models  # noqa: F401 - the tables this part owns

    ctx = app[CTX]

    async def inspector(filename: str, mime: str, data: bytes | Path) -> dict[str, Any]:
        return await inspect_upload(ctx, filename, mime, data)

    ctx.upload_inspector = inspector

    async def on_uploaded(session: Any, event: Any) -> None:
        await enqueue_transcode(ctx, session, event.payload["track_id"])

    ctx.bus.subscribe("track.uploaded", on_uploaded)

    async def handle(job: Job) -> None:
        await transcode_job(ctx, job)

    ctx.jobs.register(JOB_KIND, handle)

    async def pool_ctx(app: web.Application):
        yield
        await asyncio.to_thread(close_pool, ctx)

    app.cleanup_ctx.append(pool_ctx)


async def enqueue_transcode(ctx: NodeContext, session: Any, track_id: int) -> None:
    await ctx.enqueue(
        session,
        JOB_KIND,
        {"track_id": track_id},
        priority=50,
        max_attempts=max(1, ctx.settings.media.transcode_attempts),
    )


def audio_key(handle: str, uuid: str, name: str) -> str:
    return f"audio/{handle}/{uuid}/{name}"


def cover_key(handle: str, uuid: str, size: int) -> str:
    return f"covers/{handle}/{uuid}/{size}.jpg"


def cover_file(path: str, fallback: str | None = None) -> dict[int, bytes] | None:
    """Covers from the master's embedded picture, else from `fallback` (an imported
    folder's cover.jpg); runs in a worker process."""
    data = tags.read_picture(path)
    if not data and fallback:
        try:
            if Path(fallback).stat().st_size <= tags.MAX_PICTURE_BYTES:
                data = Path(fallback).read_bytes()
        except OSError:
            data = None
    if not data:
        return None
    try:
        return artwork.make_covers(data)
    except artwork.ArtworkError:
        return None


class _Gone(Exception):
    """The master is missing or undecodable: retrying cannot help."""


async def transcode_job(ctx: NodeContext, job: Job) -> None:
    track_id = job.payload.get("track_id")
    async with ctx.db.read_session() as s:
        track = await s.get(Track, track_id)
        if track is None or not track.local:
            return  # deleted since, or not ours: nothing to do
        if track.state == "ready" and (track.media or {}).get("files"):
            return  # done by an earlier run
        handle, uuid, original = track.artist.handle, track.uuid, track.original_path
        source = dict((track.media or {}).get("source") or {})
        duration = track.duration_ms or source.get("duration_ms") or 0
    try:
        if not original or not (ctx.settings.data_dir / original).is_file():
            raise _Gone("the uploaded master is missing; upload it again")
        media = await _produce(
            ctx, ctx.settings.data_dir / original, handle, uuid, source, duration
        )
    except asyncio.CancelledError:
        raise
    except (_Gone, probe.ProbeError) as e:
        await _record_failure(ctx, track_id, str(e), job.attempts, final=True)
        raise PermanentFailure(str(e)) from None
    except Exception as e:
        final = job.attempts >= job.max_attempts
        await _record_failure(ctx, track_id, f"{type(e).__name__}: {e}", job.attempts, final=final)
        raise
    async with ctx.db.transaction() as s:
        track = await s.get(Track, track_id)
        if track is None:
            return
        keep = {
            k: v
            for k, v in (track.media or {}).items()
            if k in ("original_filename", "source", "url", "remote_files")
        }
        track.media = {**keep, **media, "attempts": job.attempts}
        track.duration_ms = media["files"]["original"]["duration_ms"] or track.duration_ms
        track.state = "ready"
        track.updated_at = utcnow()
        # The master now lives in storage (files.original): one copy, not two.
        track.original_path = None
        await s.flush()
        await ctx.bus.emit(s, "track.ready", track_id=track.id, uri=track.uri)
        await ctx.bus.emit(s, "track.updated", track_id=track.id, uri=track.uri)
    await _drop_upload(ctx, original)


async def _drop_upload(ctx: NodeContext, original: str) -> None:
    """Remove DATA/uploads/... once no track needs it (older uploads were
    shared by content between tracks with the same bytes)."""
    async with ctx.db.read_session() as s:
        users = await s.scalar(
            select(func.count()).select_from(Track).where(Track.original_path == original)
        )
    if not users:
        path = ctx.settings.data_dir / original
        await asyncio.to_thread(path.unlink, missing_ok=True)


async def _produce(
    ctx: NodeContext, master: Path, handle: str, uuid: str, source: dict[str, Any], duration: int
) -> dict[str, Any]:
    """Run the ladder and store every output; returns the new `track.media` fields."""
    work = scratch_dir(ctx, f"transcode-{uuid}")
    storage = storage_of(ctx)
    try:
        if not source.get("ext"):  # uploaded before inspection existed, or imported raw
            info = await in_pool(
                ctx, inspect_file, str(master), ctx.settings.media.max_duration_seconds
            )
            source = {
                **source,
                **{
                    k: info[k]
                    for k in ("ext", "codec", "sample_rate", "channels", "duration_ms", "sha256")
                },
            }
            duration = info["duration_ms"]
        parts = [
            in_pool(ctx, transcode.run_part, str(master), str(work), part, duration)
            for part in transcode.PARTS
        ]
        covers_made = in_pool(ctx, cover_file, str(master), source.get("folder_cover"))
        *results, covers = await asyncio.gather(*parts, covers_made)
        files: dict[str, Any] = {}
        media: dict[str, Any] = {}
        for r in results:
            files.update(r.pop("files"))
            media.update(r)
        stored: dict[str, Any] = {}
        ext = source.get("ext") or "bin"
        key = audio_key(handle, uuid, f"original.{ext}")
        obj = await storage.put_file(key, master, _mime_of_ext(ext))
        stored["original"] = {
            "key": key,
            "mime": obj.content_type,
            "size": obj.size,
            "codec": source.get("codec"),
            "bitrate": int(obj.size * 8000 / duration) if duration else None,
            "sample_rate": source.get("sample_rate"),
            "channels": source.get("channels"),
            "duration_ms": media.get("duration_ms") or duration,
        }
        for quality, desc in files.items():
            rendition = transcode.RENDITIONS[quality]
            key = audio_key(handle, uuid, f"{quality}.{rendition.filename.rsplit('.', 1)[1]}")
            obj = await storage.put_file(key, work / rendition.filename, rendition.mime)
            stored[quality] = {"key": key, **desc, "size": obj.size}
        out: dict[str, Any] = {"files": stored, "loudness_lufs": media.get("loudness_lufs")}
        if media.get("waveform"):
            key = audio_key(handle, uuid, "waveform.json")
            await storage.put_file(key, work / media["waveform"], "application/json")
            out["waveform"] = key
        if covers:
            out["cover"] = {}
            for size, data in covers.items():
                key = cover_key(handle, uuid, size)
                await storage.put_bytes(key, data, "image/jpeg")
                out["cover"][str(size)] = key
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _mime_of_ext(ext: str) -> str:
    for e, mime in probe.CONTAINERS.values():
        if e == ext:
            return mime
    return "application/octet-stream"


async def _record_failure(
    ctx: NodeContext, track_id: int, error: str, attempts: int, *, final: bool
) -> None:
    """Show the artist what went wrong; `failed` only when no retry is coming."""
    log.warning("transcode failed", extra={"track": track_id, "error": error, "final": final})
    async with ctx.db.transaction() as s:
        track = await s.get(Track, track_id)
        if track is None:
            return
        track.media = {**(track.media or {}), "error": error[:500], "attempts": attempts}
        track.state = "failed" if final else "processing"
        track.updated_at = utcnow()
        await s.flush()
        await ctx.bus.emit(s, "track.updated", track_id=track.id, uri=track.uri)


async def retry_track(ctx: NodeContext, session: Any, uuid: str) -> Track:
    """Start a failed track's transcode again (the console, the studio)."""
    track = await session.scalar(select(Track).where(Track.uuid == uuid))
    if track is None or not track.local:
        raise NotFound("no such track")
    if track.state != "failed":
        raise Conflict(f"the track is {track.state}, not failed")
    track.media = {k: v for k, v in (track.media or {}).items() if k != "error"}
    track.state = "processing"
    track.updated_at = utcnow()
    await session.flush()
    await enqueue_transcode(ctx, session, track.id)
    await ctx.bus.emit(session, "track.updated", track_id=track.id, uri=track.uri)
    return track
