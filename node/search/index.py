"""The whoosh index: one writer (the `search.index` job, or a rebuild), many readers.

On disk, `DIR/CURRENT` names the live generation (`gen-000003`), a whoosh
index in `DIR/gen-000003/`. A rebuild writes a new generation next to it and
replaces `CURRENT` atomically (`os.replace`), so searches keep answering from
the old one until the new one is complete. After every commit the writer
rewrites `GEN/STAMP`; a reader compares `CURRENT` and `STAMP` with what its
cached searcher was built from (two tiny file reads) and refreshes only when
something changed, so readers in other processes (`serve --no-worker` next
to a `worker`) see new documents too.

Threads: whoosh is pure Python and blocking. Writes run on a writer
thread, serialized by an asyncio.Lock in-process and by whoosh's own lock
file across processes. Reads share one cached searcher guarded by a lock:
a read runs inline on the event loop when the caches are warm (about a
millisecond), and on a dedicated reader thread when it may take long
(opening a new index version, building caches); see `_read`.

What a search does is split in two modules: query.py turns the fan's words
into index terms (never through a query parser, so no input is a syntax
error; typos and prefixes from an in-memory lexicon), and engine.py matches,
scores and counts facets from per-segment caches keyed by segment id
(segments never change once written; deletions only hide documents).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from whoosh import index as whoosh_index
from whoosh.columns import NumericColumn
from whoosh.fields import COLUMN, ID, KEYWORD, STORED, TEXT, Schema
from whoosh.query import Term

from .documents import DOC_TYPES, clean_genres
from .engine import Segment, View, open_searcher
from .query import ANALYZER, normalized, plan, words

try:  # POSIX: serialize creating and swapping generations across processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("nycmg.search")

__all__ = ["DOC_TYPES", "SearchIndex", "SCHEMA", "words", "GENERATION_PREFIX"]

SCHEMA = Schema(
    uri=ID(stored=True, unique=True),  # the key: deletions only know an object's URI
    doc=STORED,  # "release:UUID", "artist:jay", "artist:jay@queens.example"
    type=ID(stored=True),
    oid=STORED,  # the id a result carries: uuid, or handle for artists
    name=TEXT(analyzer=ANALYZER, stored=True, phrase=False),
    exact=ID,  # the whole name, normalized: exact-match boost and title-prefix suggestions
    body=TEXT(analyzer=ANALYZER, phrase=False),
    subtitle=STORED,
    url=STORED,
    borough=ID(stored=True),
    genre=KEYWORD(commas=True, scorable=False),
    genres=STORED,
    artist=ID(stored=True),  # owner's URI: an artist's rename re-indexes their things
    release=ID(stored=True),  # a track's release URI: publishing re-indexes its tracks
    # Newest first when browsing: a column only (an indexed DATETIME adds ~8
    # terms per document that no query uses).
    date=COLUMN(NumericColumn("q")),
)

GENERATION_PREFIX = "gen-"
BROWSE_CACHE = 32  # filter combinations remembered for an empty query, per index version
MAX_GENRES = 50  # the genre facet's longest list
CURRENT = "CURRENT"
STAMP = "STAMP"


def _fields(doc: dict[str, Any]) -> dict[str, Any]:
    """A document dict (documents.py) as whoosh fields; None values are left out."""
    genres = list(doc.get("genres") or [])
    date = doc.get("date")
    date = int(date.timestamp() * 1000) if isinstance(date, datetime) else 0  # ms
    fields = {
        "uri": doc["uri"],
        "doc": doc["doc"],
        "type": doc["type"],
        "oid": doc["oid"],
        "name": doc.get("name") or "",
        "exact": normalized(doc.get("name") or ""),
        "body": doc.get("body") or "",
        "subtitle": doc.get("subtitle") or "",
        "url": doc.get("url") or "",
        "genre": ",".join(genres),
        "genres": genres,
        "date": date,
    }
    for key in ("borough", "artist", "release"):
        if doc.get(key):
            fields[key] = doc[key]
    return {k: v for k, v in fields.items() if v is not None and v != ""}


# ---- generations on disk ----------------------------------------------------


@contextmanager
def directory_lock(directory: Path):
    """An exclusive lock on DIR/.lock while creating or swapping generations."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "a+") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_current(directory: Path) -> str | None:
    try:
        return (directory / CURRENT).read_text().strip() or None
    except FileNotFoundError:
        return None


def touch_stamp(gen_dir: Path) -> None:
    """Tell readers (in any process) that this generation changed."""
    _write_atomic(gen_dir / STAMP, secrets.token_hex(8))


def new_generation(directory: Path) -> Path:
    """Create an empty whoosh index in the next free generation directory."""
    directory.mkdir(parents=True, exist_ok=True)
    numbers = [
        int(p.name[len(GENERATION_PREFIX) :])
        for p in directory.glob(f"{GENERATION_PREFIX}*")
        if p.name[len(GENERATION_PREFIX) :].isdigit()
    ]
    gen_dir = directory / f"{GENERATION_PREFIX}{max(numbers, default=0) + 1:06d}"
    gen_dir.mkdir()
    whoosh_index.create_in(str(gen_dir), SCHEMA)
    touch_stamp(gen_dir)
    return gen_dir


def swap_generation(directory: Path, gen_dir: Path, keep: int = 2) -> None:
    """Make `gen_dir` live, atomically, then delete all but the `keep` newest generations.

    The previous generation is kept so a reader elsewhere that has not noticed
    the swap yet can still finish its search.
    """
    with directory_lock(directory):
        _write_atomic(directory / CURRENT, gen_dir.name)
        gens = sorted(p for p in directory.glob(f"{GENERATION_PREFIX}*") if p.is_dir())
        live = gen_dir.name
        older = [p for p in gens if p.name != live]
        for p in older[: max(0, len(older) - (keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)


def ensure_index(directory: Path) -> str:
    """The live generation's name, creating an empty index on first use."""
    with directory_lock(directory):
        gen = read_current(directory)
        if gen and whoosh_index.exists_in(str(directory / gen)):
            return gen
        if gen:
            log.warning(
                "search index generation %s is missing; starting empty (run `nycmg search reindex`)",
                gen,
            )
        gen_dir = new_generation(directory)
        _write_atomic(directory / CURRENT, gen_dir.name)
        return gen_dir.name


# ---- facets -------------------------------------------------------------------


def facet(
    tables: tuple[list, list, list],
    docs: Iterable[int],
    types: tuple[str, ...],
    borough: str | None,
    genre: str | None,
) -> tuple[list[int], dict[str, dict[str, int]]]:
    """The documents passing every filter, and each facet's counts with the
    other facets' filters applied (not its own), so a fan sees how many
    results picking another borough, genre or type would give."""
    T, B, G = tables
    ftypes = set(types) if types else None
    type_c: dict[str, int] = {}
    borough_c: dict[str, int] = {}
    genre_c: dict[str, int] = {}
    kept: list[int] = []
    for d in docs:
        dt, db, dg = T[d], B[d], G[d]
        mt = ftypes is None or dt in ftypes
        mb = borough is None or db == borough
        mg = genre is None or genre in dg
        if mb and mg:
            type_c[dt] = type_c.get(dt, 0) + 1
        if mt and mg and db:
            borough_c[db] = borough_c.get(db, 0) + 1
        if mt and mb:
            for g in dg:
                genre_c[g] = genre_c.get(g, 0) + 1
            if mg:
                kept.append(d)

    def ordered(c: dict[str, int], n: int | None = None) -> dict[str, int]:
        return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:n])

    facets = {
        "borough": ordered(borough_c),
        "genre": ordered(genre_c, MAX_GENRES),
        "type": {k: type_c[k] for k in DOC_TYPES if type_c.get(k)},
    }
    return kept, facets


# ---- the index ----------------------------------------------------------------


class SearchIndex:
    """Search over the node's public catalog. `open()` before use (done at app start)."""

    def __init__(self, directory: str | Path, ctx: Any = None) -> None:
        self.directory = Path(directory)
        self.ctx = ctx
        self._write_lock: asyncio.Lock | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._writer_pool: ThreadPoolExecutor | None = None
        # Read state, guarded by _read_lock (the read thread, or inline on the loop):
        self._read_lock = threading.Lock()
        self._open_lock = threading.Lock()
        self._searcher: Any = None
        self._searcher_key: tuple[str | None, str | None] = (None, None)
        self._read_ix: Any = None
        self._view: View | None = None
        self._segments: dict[str, Segment] = {}
        self._browse_order: list[int] | None = None
        self._browse_cache: dict[tuple, tuple[list[int], dict[str, Any]]] = {}
        # Write thread only:
        self._write_ix: Any = None
        self._write_gen: str | None = None

    # -- lifecycle

    def open(self) -> None:
        """Create the index directory and an empty index if there is none, and start
        warming the caches in the background (blocking; call it in a thread)."""
        with self._open_lock:
            ensure_index(self.directory)
            if self._writer_pool is None:
                self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="search-write")
            if self._reader_pool is None:
                self._reader_pool = ThreadPoolExecutor(1, thread_name_prefix="search-read")
                self._reader_pool.submit(self._locked, self._warm)

    def close(self) -> None:
        for pool in (self._reader_pool, self._writer_pool):
            if pool is not None:
                pool.shutdown(wait=True)
        self._reader_pool = self._writer_pool = None
        if self._searcher is not None:
            self._searcher.close()
        self._searcher, self._searcher_key, self._view = None, (None, None), None
        self._read_ix = self._write_ix = self._write_gen = None
        self._segments.clear()
        self._browse_cache.clear()
        self._browse_order = None

    def _locked(self, fn: Any, *args: Any) -> Any:
        with self._read_lock:
            return fn(*args)

    async def _read(self, fn: Any, *args: Any, cheap: Any = None) -> Any:
        """Run a read inline when it is cheap, else on the read thread.

        Why inline at all: a search over warm caches takes about a millisecond
        of pure Python. Handing it to a thread costs more than that under
        load: the event loop and the search thread then trade the GIL by its
        5 ms switch interval, and concurrent searches queue behind each other
        (a convoy). Work that may take long (opening a new index version,
        building caches, a first browse with new filters) goes to the thread.
        """
        if self._reader_pool is None or self._writer_pool is None:
            await asyncio.to_thread(self.open)
        if self._read_lock.acquire(blocking=False):
            try:
                if self._warm_for(cheap):
                    return fn(*args)
            finally:
                self._read_lock.release()
        return await asyncio.get_running_loop().run_in_executor(
            self._reader_pool, self._locked, fn, *args
        )

    def _warm_for(self, cheap: Any) -> bool:
        """Is the cached searcher current, with its caches built (caller holds the lock)?"""
        view = self._view
        if self._searcher is None or view is None or not view.ready:
            return False
        if self._index_key() != self._searcher_key:
            return False
        return cheap is None or bool(cheap())

    # -- writing

    async def apply(
        self, upserts: Iterable[dict[str, Any]] = (), deletes: Iterable[str] = ()
    ) -> int:
        """Upsert documents and delete URIs in one commit; returns how many changed."""
        upserts, deletes = list(upserts), [u for u in deletes if u]
        if not upserts and not deletes:
            return 0
        if self._write_lock is None:
            self._write_lock = asyncio.Lock()
        async with self._write_lock:
            if self._writer_pool is None:
                await asyncio.to_thread(self.open)
            return await asyncio.get_running_loop().run_in_executor(
                self._writer_pool, self._apply_sync, upserts, deletes
            )

    def _writable(self) -> tuple[Any, Path]:
        gen = ensure_index(self.directory)
        if self._write_gen != gen or self._write_ix is None:
            # A rebuild swapped generations (maybe in another process): follow it.
            self._write_ix = whoosh_index.open_dir(str(self.directory / gen))
            self._write_gen = gen
        return self._write_ix, self.directory / gen

    def _apply_sync(self, upserts: list[dict[str, Any]], deletes: list[str]) -> int:
        ix, gen_dir = self._writable()
        writer = ix.writer(timeout=30.0, delay=0.05)
        try:
            for uri in deletes:
                writer.delete_by_term("uri", uri)
            for doc in upserts:
                writer.update_document(**_fields(doc))
        except BaseException:
            writer.cancel()
            raise
        writer.commit()
        touch_stamp(gen_dir)
        return len(upserts) + len(deletes)

    # -- reading

    def _index_key(self) -> tuple[str | None, str | None]:
        """(live generation, its last commit's stamp): what a searcher was opened on."""
        gen = read_current(self.directory)
        if gen is None:
            return (None, None)
        try:
            return (gen, (self.directory / gen / STAMP).read_text())
        except FileNotFoundError:
            return (gen, None)

    def _current_searcher(self) -> Any:
        """The cached searcher, refreshed if the index changed (hold the read lock)."""
        key = self._index_key()
        if key[0] is None:
            ensure_index(self.directory)
            key = self._index_key()
        gen = key[0]
        if self._searcher is not None and key == self._searcher_key:
            return self._searcher
        if self._searcher is None or gen != self._searcher_key[0]:
            if self._searcher is not None:
                self._searcher.close()
            self._searcher = None
            self._read_ix = whoosh_index.open_dir(str(self.directory / gen))
            self._segments.clear()
        for attempt in range(3):
            try:
                self._searcher = open_searcher(self._read_ix, self._searcher)
                break
            except OSError:
                # A concurrent commit merged away a segment between reading the
                # table of contents and opening its file: read the new one.
                if attempt == 2:
                    raise
                self._searcher = None
                time.sleep(0.01)
        self._searcher_key = key
        self._view = None
        self._browse_order = None
        self._browse_cache.clear()
        return self._searcher

    def _warm(self) -> None:
        """Build the caches a first search would otherwise wait for (read thread)."""
        try:
            self._search_sync("", (), None, None, 1, 1)  # tables, browse order, facets
            self._search_sync("warm", (), None, None, 1, 1)  # the lexicon
        except Exception:  # noqa: BLE001 - a cold cache is only slower
            log.warning("search: warming the caches failed", exc_info=True)

    def _current_view(self, searcher: Any) -> View:
        if self._view is None:
            self._view = View(searcher, self._segments)
        return self._view

    def _browse(self, searcher: Any) -> list[int]:
        """Every live document, newest first (an empty query lists the catalog)."""
        if self._browse_order is None:
            reader = searcher.reader()
            dates = reader.column_reader("date") if reader.has_column("date") else None
            live = [d for d in range(reader.doc_count_all()) if not reader.is_deleted(d)]
            if dates is not None:
                live.sort(key=lambda d: dates[d] or 0, reverse=True)
            self._browse_order = live
        return self._browse_order

    async def search(
        self,
        q: str | None,
        *,
        types: list[str] | tuple[str, ...] | None = None,
        borough: str | None = None,
        genre: str | None = None,
        limit: int = 20,
        page: int = 1,
    ) -> dict[str, Any]:
        """Ranked results and facet counts. Each facet is counted over the matches
        with the other facets' filters applied (not its own), so a fan can see how
        many results picking another borough would give."""
        borough = self._canonical_borough(borough)
        genre = (clean_genres([genre]) or [None])[0] if genre else None
        limit = max(1, min(int(limit), 100))
        page = max(1, int(page))
        text, types = q or "", tuple(types or ())
        browse_key = (types, borough, genre)

        def cheap() -> bool:  # a query, or a browse whose filters were seen before
            return bool(words(text)) or browse_key in self._browse_cache

        return await self._read(
            self._search_sync, text, types, borough, genre, limit, page, cheap=cheap
        )

    def _canonical_borough(self, borough: str | None) -> str | None:
        if not borough:
            return None
        borough = " ".join(borough.split())
        boroughs = getattr(
            getattr(getattr(self.ctx, "settings", None), "node", None), "boroughs", None
        )
        for b in boroughs or ():
            if b.lower() == borough.lower():
                return b
        return borough

    def _search_sync(
        self,
        text: str,
        types: tuple[str, ...],
        borough: str | None,
        genre: str | None,
        limit: int,
        page: int,
    ) -> dict[str, Any]:
        searcher = self._current_searcher()
        view = self._current_view(searcher)
        ws = words(text)
        empty = {"borough": {}, "genre": {}, "type": {}}
        scores: dict[int, float] | None = None
        if ws:
            alternatives = plan(ws, view.lexicon, view.doc_count)
            scores = view.match(alternatives, " ".join(ws)) if alternatives else {}
            ranked: Any = scores.keys()
        elif text.strip() in ("", "*"):
            ranked = self._browse(searcher)
        else:  # only punctuation or symbols: nothing can match
            return {
                "query": text,
                "total": 0,
                "page": page,
                "limit": limit,
                "results": [],
                "facets": empty,
            }

        if scores is None:  # browsing: the same few filter sets come back again and again
            key = (types, borough, genre)
            cached = self._browse_cache.get(key)
            if cached is None:
                if len(self._browse_cache) >= BROWSE_CACHE:
                    self._browse_cache.pop(next(iter(self._browse_cache)))
                cached = self._browse_cache[key] = facet(view.tables, ranked, types, borough, genre)
            kept, facets = cached
        else:
            kept, facets = facet(view.tables, ranked, types, borough, genre)
        start = (page - 1) * limit
        if scores is not None:  # best first; ties to the newer document
            top = heapq.nlargest(start + limit, kept, key=lambda d: (scores[d], d))
        else:
            top = kept  # browsing: already newest first
        results = [self._result(searcher.stored_fields(d)) for d in top[start : start + limit]]
        return {
            "query": text,
            "total": len(kept),
            "page": page,
            "limit": limit,
            "results": results,
            "facets": facets,
        }

    @staticmethod
    def _result(f: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": f.get("type"),
            "id": f.get("oid"),
            "title": f.get("name", ""),
            "subtitle": f.get("subtitle", ""),
            "url": f.get("url", ""),
            "uri": f.get("uri"),
            "borough": f.get("borough"),
            "genres": list(f.get("genres") or []),
        }

    async def suggest(self, q: str | None, *, limit: int = 8) -> list[dict[str, Any]]:
        """Names and titles for a search box as the fan types: titles that start
        with the text first (shortest first), then titles with a word that does."""
        limit = max(1, min(int(limit), 20))
        return await self._read(self._suggest_sync, q or "", limit)

    def _suggest_sync(self, text: str, limit: int) -> list[dict[str, Any]]:
        searcher = self._current_searcher()
        ws = words(text)
        if not ws:
            return []
        reader = searcher.reader()
        found: list[int] = []
        seen: set[int] = set()
        # 1. Whole titles starting with the text, in term order (short before long).
        prefix = " ".join(ws)
        for btext in reader.expand_prefix("exact", prefix):
            for d in reader.postings("exact", btext).all_ids():
                if d not in seen and not reader.is_deleted(d):
                    seen.add(d)
                    found.append(d)
            if len(found) >= limit:
                break
        # 2. Titles with a word starting with the last word (the others exact).
        if len(found) < limit:
            view = self._current_view(searcher)
            alternatives = plan(ws, view.lexicon, view.doc_count, fuzzy=False)
            scores = view.match(alternatives, fields=("name",)) if alternatives else {}
            for d in heapq.nlargest(limit * 2, scores, key=lambda d: (scores[d], d)):
                if d not in seen:
                    seen.add(d)
                    found.append(d)
        out = []
        for d in found[:limit]:
            f = searcher.stored_fields(d)
            out.append(
                {
                    "type": f.get("type"),
                    "id": f.get("oid"),
                    "title": f.get("name", ""),
                    "subtitle": f.get("subtitle", ""),
                    "url": f.get("url", ""),
                }
            )
        return out

    async def lookup(self, field: str, value: str) -> list[dict[str, Any]]:
        """Stored fields of the documents whose `field` (uri, artist, release) is `value`."""
        return await self._read(self._lookup_sync, field, value)

    def _lookup_sync(self, field: str, value: str) -> list[dict[str, Any]]:
        searcher = self._current_searcher()
        return [searcher.stored_fields(d) for d in searcher.docs_for_query(Term(field, value))]

    async def count(self) -> int:
        """How many documents the live generation holds."""
        return await self._read(lambda: self._current_searcher().doc_count())
