"""The fingerprint index: writing tracks' landmark hashes to the database, the
`detection.fingerprint` job that does it for every ready track, and the
in-process snapshot that matching reads.

Why a snapshot: a 5-second query has ~1,000 hashes, and a 500-track catalogue
holds millions of postings. Looking each hash up in SQL costs tens of
milliseconds; a sorted numpy copy answers in about one. The snapshot is
loaded from the database (each indexed track keeps its postings packed in
`detection_tracks.postings`, so a load reads one row per track, not one per
hash) and is refreshed when the cheap token of `detection_tracks` (count,
max id) changes, so a worker indexing a track in another process is seen by
the web process on its next query. `lookup_sql` is the same lookup done in
SQL (batched `IN (...)`), for callers without a snapshot and as a check.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.models import Job, Track

from . import fingerprint as fpmod
from .models import FingerprintHash, IndexedTrack

log = logging.getLogger("nycmg.detection.index")

JOB_KIND = "detection.fingerprint"
FINGERPRINT_VERSION = 1
INSERT_CHUNK = 20_000
SQL_IN_CHUNK = 900  # below SQLite's default bound-parameter limit
MAX_TRACK_SECONDS = 2 * 3600


# A posting packs (track slot, frame) into one int64 the way voting keys
# it: slot << SLOT_SHIFT | (frame + FRAME_BIAS) << ANCHOR_BITS. Voting
# subtracts the query frame (shifted) and adds it (low bits), and has its
# (slot, offset, query frame) key from one read and two additions.
ANCHOR_BITS = 20
FRAME_BIAS = 1 << 22
SLOT_SHIFT = 23 + ANCHOR_BITS
MAX_INDEX_FRAME = FRAME_BIAS - 1  # ~37 hours of audio


@dataclass(frozen=True)
class Postings:
    """Postings sorted by hash, with a direct-address table of where each hash starts.

    `hashes` (uint32) and `packed` (int64, track slot and frame, see
    `SLOT_SHIFT`) are parallel; `track_ids[slot]` is a posting's track, and
    `starts[h]:starts[h + 1]` are the postings of hash `h` (the hash space is
    small, `fingerprint.HASH_BITS`, so the table is a few MB and a lookup
    needs no search). Tracks are numbered densely by slot so voting never
    has to map ids.
    """

    hashes: np.ndarray
    packed: np.ndarray
    track_ids: np.ndarray
    starts: np.ndarray

    @staticmethod
    def build(hashes: np.ndarray, track_ids: np.ndarray, frames: np.ndarray) -> Postings:
        """Postings from unsorted parallel arrays (one entry per posting)."""
        hashes = np.asarray(hashes, np.uint32)
        ids, slots = np.unique(np.asarray(track_ids, np.int64), return_inverse=True)
        frames = np.clip(np.asarray(frames, np.int64), 0, MAX_INDEX_FRAME)
        packed = (slots.astype(np.int64) << SLOT_SHIFT) | ((frames + FRAME_BIAS) << ANCHOR_BITS)
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        counts = np.bincount(hashes, minlength=1 << fpmod.HASH_BITS)
        starts = np.zeros(counts.size + 1, np.int64)
        np.cumsum(counts, out=starts[1:])
        return Postings(hashes, packed[order], ids, starts)

    @staticmethod
    def empty() -> Postings:
        z = np.zeros(0, np.int64)
        return Postings.build(z, z, z)

    def __len__(self) -> int:
        return int(self.hashes.size)

    @property
    def slots(self) -> np.ndarray:
        return (self.packed >> SLOT_SHIFT).astype(np.int32)

    @property
    def frames(self) -> np.ndarray:
        return (((self.packed >> ANCHOR_BITS) & ((1 << 23) - 1)) - FRAME_BIAS).astype(np.int32)

    def track_of(self) -> np.ndarray:
        """Track id of every posting (for merging snapshots and tests)."""
        return self.track_ids[self.slots] if self.packed.size else np.zeros(0, np.int64)

    def gather(
        self, hashes: np.ndarray, values: np.ndarray, max_postings: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(packed posting, the query's value) for every posting of every query hash.

        `values` is parallel to `hashes` (a query's frames) and is repeated
        once per posting. Hashes with more than `max_postings` postings are
        skipped: they carry almost no information and would dominate the time.
        """
        h = np.asarray(hashes, np.int64)
        lo = self.starts[h]
        count = self.starts[h + 1] - lo
        if max_postings is not None:
            count[count > max_postings] = 0
        total = int(count.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, values.dtype)
        ends = np.cumsum(count)
        idx = np.repeat(lo - ends + count, count) + np.arange(total)
        return self.packed[idx], np.repeat(values, count)

    def lookup(
        self, hashes: np.ndarray, max_postings: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query index, track slot, frame) of every posting of every query hash."""
        packed, qidx = self.gather(hashes, np.arange(np.asarray(hashes).size), max_postings)
        slots = (packed >> SLOT_SHIFT).astype(np.int32)
        frames = (((packed >> ANCHOR_BITS) & ((1 << 23) - 1)) - FRAME_BIAS).astype(np.int32)
        return qidx, slots, frames


def _unique_postings(fp: fpmod.Fingerprint) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, frames) of `fp` without repeats, sorted by hash then frame."""
    if len(fp) == 0:
        return np.zeros(0, np.uint32), np.zeros(0, np.int32)
    key = (fp.hashes.astype(np.int64) << 32) | fp.offsets.astype(np.int64)
    key = np.unique(key)
    return (key >> 32).astype(np.uint32), (key & 0xFFFFFFFF).astype(np.int32)


def pack_postings(hashes: np.ndarray, frames: np.ndarray) -> bytes:
    return hashes.astype("<u4").tobytes() + frames.astype("<i4").tobytes()


def unpack_postings(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    n = len(blob) // 8
    return np.frombuffer(blob, "<u4", n, 0), np.frombuffer(blob, "<i4", n, 4 * n)


async def index_track(session: AsyncSession, track_id: int, fp: fpmod.Fingerprint) -> int:
    """Replace the postings of `track_id` with those of `fp`; returns how many were stored.

    `fp` should come from `fingerprint.fingerprint_track` (the index density).
    """
    hashes, frames = _unique_postings(fp)
    await remove_track(session, track_id)
    rows = [
        {"hash": int(h), "track_id": track_id, "frame": int(f)}
        for h, f in zip(hashes.tolist(), frames.tolist(), strict=True)
    ]
    table = FingerprintHash.__table__
    for i in range(0, len(rows), INSERT_CHUNK):
        await session.execute(insert(table), rows[i : i + INSERT_CHUNK])
    session.add(
        IndexedTrack(
            track_id=track_id,
            hashes=len(rows),
            duration_ms=fp.duration_ms,
            version=FINGERPRINT_VERSION,
            postings=pack_postings(hashes, frames),
        )
    )
    await session.flush()
    _bump()
    return len(rows)


async def remove_track(session: AsyncSession, track_id: int) -> None:
    """Drop a track from the index (the foreign keys also do this on delete)."""
    await session.execute(delete(FingerprintHash).where(FingerprintHash.track_id == track_id))
    await session.execute(delete(IndexedTrack).where(IndexedTrack.track_id == track_id))
    _bump()


async def lookup_sql(session: AsyncSession, hashes: np.ndarray) -> Postings:
    """The postings of `hashes` read straight from `detection_hashes`, in `IN (...)` chunks."""
    wanted = np.unique(hashes.astype(np.int64)).tolist()
    out_h: list[int] = []
    out_t: list[int] = []
    out_f: list[int] = []
    t = FingerprintHash.__table__.c
    for i in range(0, len(wanted), SQL_IN_CHUNK):
        res = await session.execute(
            select(t.hash, t.track_id, t.frame).where(t.hash.in_(wanted[i : i + SQL_IN_CHUNK]))
        )
        for h, tr, f in res:
            out_h.append(h)
            out_t.append(tr)
            out_f.append(f)
    return Postings.build(
        np.asarray(out_h, np.uint32), np.asarray(out_t, np.int64), np.asarray(out_f, np.int32)
    )


# --- the in-process snapshot ------------------------------------------------


@dataclass
class _Cache:
    token: tuple[int, int] = (-1, -1)
    rows: dict[int, int] | None = None  # track id -> detection_tracks.id
    uris: dict[int, str] | None = None  # track id -> track URI, for answering a match
    postings: Postings = Postings.empty()
    lock: asyncio.Lock | None = None
    checked_at: float = -1e9
    generation: int = -1


_CACHES: weakref.WeakKeyDictionary[Any, _Cache] = weakref.WeakKeyDictionary()
# How long a snapshot is trusted without asking the database: changes made by
# another process (the worker) are seen within this; changes made in this
# process bump `_generation` and are looked for at once.
SNAPSHOT_RECHECK_SECONDS = 0.5
_generation = 0


def _bump() -> None:
    global _generation
    _generation += 1


async def snapshot(session: AsyncSession) -> Postings:
    """The whole index as sorted arrays, refreshed when `detection_tracks` changed.

    One cache per database engine. Added tracks are merged in; a removal or
    re-index rebuilds from the packed postings (one row per track).
    """
    engine = session.get_bind()
    cache = _CACHES.get(engine)
    if cache is None:
        cache = _CACHES[engine] = _Cache(lock=asyncio.Lock())
    now = time.monotonic()
    if cache.generation == _generation and now - cache.checked_at < SNAPSHOT_RECHECK_SECONDS:
        return cache.postings
    generation = _generation
    token = tuple(
        (
            await session.execute(
                select(func.count(IndexedTrack.id), func.coalesce(func.max(IndexedTrack.id), 0))
            )
        ).one()
    )
    if token == cache.token:
        cache.checked_at, cache.generation = now, generation
        return cache.postings
    async with cache.lock:
        if token == cache.token:
            return cache.postings
        current = dict(
            (await session.execute(select(IndexedTrack.track_id, IndexedTrack.id))).all()
        )
        old = cache.rows or {}
        gone = any(current.get(tr) != rid for tr, rid in old.items())
        base = Postings.empty() if gone or cache.rows is None else cache.postings
        wanted = [rid for tr, rid in current.items() if gone or old.get(tr) != rid]
        parts_h, parts_t, parts_f = [base.hashes], [base.track_of()], [base.frames]
        uris = {} if base is not cache.postings else dict(cache.uris or {})
        for i in range(0, len(wanted), 200):
            res = await session.execute(
                select(IndexedTrack.track_id, IndexedTrack.postings, Track.uri)
                .join(Track, Track.id == IndexedTrack.track_id)
                .where(IndexedTrack.id.in_(wanted[i : i + 200]))
            )
            for track_id, blob, uri in res:
                h, f = unpack_postings(blob or b"")
                parts_h.append(h)
                parts_t.append(np.full(h.size, track_id, np.int64))
                parts_f.append(f)
                uris[track_id] = uri
        cache.postings = await asyncio.to_thread(
            Postings.build,
            np.concatenate(parts_h),
            np.concatenate(parts_t),
            np.concatenate(parts_f),
        )
        cache.rows = current
        cache.uris = uris
        cache.token = token
        cache.checked_at, cache.generation = now, generation
        return cache.postings


def snapshot_uri(session: AsyncSession, track_id: int) -> str | None:
    """The URI of an indexed track as the last `snapshot` of this database saw it.

    None when the snapshot does not know the track. What a match answers
    with: no query of its own, so a recognition costs no database round trip
    (a track deleted in another process is seen at the next snapshot check,
    within `SNAPSHOT_RECHECK_SECONDS`, as its postings are).
    """
    cache = _CACHES.get(session.get_bind())
    if cache is None or cache.uris is None:
        return None
    return cache.uris.get(track_id)


# --- the job ------------------------------------------------------------------


def _fingerprint_file(path: Path) -> fpmod.Fingerprint:
    from .audio import read_pcm

    return fpmod.fingerprint_track(read_pcm(path, max_seconds=MAX_TRACK_SECONDS))


async def fingerprint_track_audio(ctx: Any, track: Track) -> fpmod.Fingerprint | None:
    """Decode a local track's original through media storage and fingerprint it.

    Returns None when the track has no stored audio (yet). The decoding and
    hashing run in a worker thread (numpy and FFmpeg release the GIL for
    most of it) so the event loop keeps serving.
    """
    files = (track.media or {}).get("files") or {}
    entry = files.get("original") or next(iter(files.values()), None)
    if not entry or not entry.get("key"):
        return None
    from media.storage import storage_of

    storage = storage_of(ctx)
    local = storage.local_path(entry["key"])
    if local is not None and local.exists():
        return await asyncio.to_thread(_fingerprint_file, local)
    with tempfile.TemporaryDirectory(prefix="nycmg-fp-") as tmp:
        path = Path(tmp) / "original"
        await storage.fetch_to(entry["key"], path)
        return await asyncio.to_thread(_fingerprint_file, path)


REMOTE_MAX_BYTES = 200 * 1024 * 1024


async def fingerprint_remote_track(ctx: Any, track: Track) -> fpmod.Fingerprint | None:
    """Fingerprint a remote track (local=False) the node knows, from its origin's audio.

    Remote tracks are not queued automatically (their audio lives on another
    node): this is what a `detection.fingerprint` job for a remote track id
    runs, for the remote tracks a node chooses to recognise. The link is the
    one federation stored (`track.media["remote_audio"]`), fetched under
    federation's SSRF rules by media's bounded fetcher.
    """
    from media.remote import fetch_to_file, pick_link

    link = pick_link(track, "mp3_128")
    if link is None:
        return None
    allow_private = bool(ctx.settings.federation.allow_private_addresses)
    with tempfile.TemporaryDirectory(prefix="nycmg-fp-") as tmp:
        path = Path(tmp) / "remote"
        await fetch_to_file(link[0], path, max_bytes=REMOTE_MAX_BYTES, allow_private=allow_private)
        return await asyncio.to_thread(_fingerprint_file, path)


async def run_fingerprint_job(ctx: Any, job: Job) -> None:
    """`detection.fingerprint`: (re)index one track from its stored audio."""
    from node.jobs import PermanentFailure

    track_id = int((job.payload or {}).get("track_id") or 0)
    async with ctx.db.read_session() as session:
        track = await session.get(Track, track_id)
    if track is None:
        return  # deleted meanwhile: nothing to index
    if track.local:
        fp = await fingerprint_track_audio(ctx, track)
    else:
        fp = await fingerprint_remote_track(ctx, track)
    if fp is None:
        raise PermanentFailure(f"track {track_id} has no audio to fingerprint")
    async with ctx.db.transaction() as session:
        if await session.get(Track, track_id) is None:
            return
        n = await index_track(session, track_id, fp)
    log.info("indexed track %s: %d hashes", track_id, n)


async def enqueue_fingerprint(ctx: Any, session: AsyncSession, track_id: int) -> None:
    """Queue (re)indexing of a track; running it twice is harmless (it replaces)."""
    await ctx.enqueue(session, JOB_KIND, {"track_id": track_id})


def setup(app: Any) -> None:
    """Register the job and the `track.ready` / `track.deleted` subscribers."""
    from node.appkeys import CTX

    ctx = app[CTX]
    ctx.jobs.register(JOB_KIND, lambda job: run_fingerprint_job(ctx, job))

    async def on_ready(session: AsyncSession, evt: Any) -> None:
        track_id = evt.payload.get("track_id")
        if track_id:
            await enqueue_fingerprint(ctx, session, int(track_id))

    async def on_deleted(session: AsyncSession, evt: Any) -> None:
        # The rows go with the track (ON DELETE CASCADE); this process's
        # snapshot is told at once rather than at its next periodic check.
        _bump()

    ctx.bus.subscribe("track.ready", on_ready)
    ctx.bus.subscribe("track.deleted", on_deleted)
