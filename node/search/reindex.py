"""`nycmg search reindex`: rebuild the whole index from the database.

The rebuild writes a fresh generation next to the live one, in batches read
by keyset over ids (no OFFSET, constant memory, any catalog size), commits it
once (one segment: the fastest to search), then swaps it in atomically, so
searches keep answering from the old generation the whole time.

Changes made while the rebuild ran went into the old generation through
`search.index` jobs. Every such change left a job row (the transactional
outbox), so after the swap the rebuild replays the objects of the jobs
created since it started (minus a margin for transactions that were open at
the start) against the new generation. Reconciling is idempotent, so
replaying one too many is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ..models import Job, utcnow
from . import documents as D
from .index import (
    SearchIndex,
    _fields,
    directory_lock,
    new_generation,
    swap_generation,
    touch_stamp,
)
from .jobs import JOB_KIND, reconcile_many

log = logging.getLogger("nycmg.search")

BATCH = 500
CATCH_UP_MARGIN = timedelta(minutes=5)

Progress = Callable[[int, int], None]


def _query(doc_type: str) -> Any:
    if doc_type == "release":
        return D.releases_query(with_tracks=False)
    return D.QUERIES[doc_type]()


def _is_public(doc_type: str, row: Any) -> bool:
    return {
        "artist": D.artist_public,
        "release": D.release_public,
        "track": D.track_public,
        "event": D.event_public,
    }[doc_type](row)


async def count_public(ctx: Any) -> dict[str, int]:
    """How many public objects of each type the database holds (the bar's total)."""
    out = {}
    async with ctx.db.read_session() as s:
        for t in D.DOC_TYPES:
            model = D.MODELS[t]
            out[t] = (
                await s.scalar(select(func.count()).select_from(model).where(D.public_filter(t)))
                or 0
            )
    return out


async def reindex(
    ctx: Any, directory: str | Path, progress: Progress | None = None, *, batch_size: int = BATCH
) -> int:
    """Rebuild the index in `directory` from the database; returns how many documents."""
    directory = Path(directory)
    started = utcnow() - CATCH_UP_MARGIN

    def make_generation() -> tuple[Any, Path]:
        from whoosh import index as whoosh_index

        with directory_lock(directory):
            gen_dir = new_generation(directory)
        ix = whoosh_index.open_dir(str(gen_dir))
        # No other writer can know this generation yet; big RAM buffer, one segment.
        return ix.writer(limitmb=128, procs=1), gen_dir

    totals = await count_public(ctx)
    total = sum(totals.values())
    writer, gen_dir = await asyncio.to_thread(make_generation)
    done = 0
    if progress:
        progress(0, total)
    pending: asyncio.Future | None = None  # whoosh adds batch N while the database reads N+1
    try:
        for t in D.DOC_TYPES:
            model = D.MODELS[t]
            last = 0
            while True:
                async with ctx.db.read_session() as s:
                    stmt = (
                        _query(t)
                        .where(D.public_filter(t), model.id > last)
                        .order_by(model.id)
                        .limit(batch_size)
                    )
                    rows = (await s.scalars(stmt)).unique().all()
                    if not rows:
                        break
                    last = rows[-1].id
                    docs = [_fields(D.BUILDERS[t](r)) for r in rows if _is_public(t, r)]
                if pending is not None:
                    done += await pending
                    if progress:
                        progress(done, max(total, done))
                pending = asyncio.ensure_future(asyncio.to_thread(_add_all, writer, docs))
        if pending is not None:
            done += await pending
            pending = None
            if progress:
                progress(done, max(total, done))
        await asyncio.to_thread(writer.commit)
    except BaseException:
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
        await asyncio.to_thread(writer.cancel)
        shutil.rmtree(gen_dir, ignore_errors=True)
        raise
    await asyncio.to_thread(touch_stamp, gen_dir)
    await asyncio.to_thread(swap_generation, directory, gen_dir)
    replayed = await _catch_up(ctx, directory, started)
    log.info("search reindex done", extra={"documents": done, "replayed": replayed})
    return done


def _add_all(writer: Any, docs: list[dict[str, Any]]) -> int:
    for fields in docs:
        writer.add_document(**fields)
    return len(docs)


async def _catch_up(ctx: Any, directory: Path, since: Any) -> int:
    """Re-apply the objects of `search.index` jobs created since the rebuild began."""
    async with ctx.db.read_session() as s:
        payloads = (
            await s.scalars(
                select(Job.payload).where(Job.kind == JOB_KIND, Job.created_at >= since)
            )
        ).all()
    items = [
        (p["type"], p.get("uri") or p.get("id"))
        for p in payloads
        if isinstance(p, dict) and isinstance(p.get("uri") or p.get("id"), str)
    ]
    if not items:
        return 0
    index = SearchIndex(directory, ctx)
    await asyncio.to_thread(index.open)
    try:
        return await reconcile_many(ctx, index, items)
    finally:
        await asyncio.to_thread(index.close)
