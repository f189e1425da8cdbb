"""The whoosh index: one writer (the `search.index` job, or a rebuild), many readers.

On disk, `DIR/CURRENT` names the live generation (`gen-000003`), a whoosh
index in `DIR/gen-000003/`. A rebuild writes a new generation next to it and
replaces `CURRENT` atomically (`os.replace`), so searches keep answering from
the old one until the new one is complete. After every commit the writer
rewrites `GEN/STAMP`; a reader compares `CURRENT` and `STAMP` with what its
cached searcher was built from (two tiny file reads) and refreshes only when
something changed, so readers in other processes (`serve --no-worker` next
to a `worker`) see new documents too.

Threads: whoosh is pure Python and blocking. Reads run on one dedicated
thread, which alone owns the cached searcher (whoosh searchers are not
meant to be shared between threads); writes run on another, serialized by an
asyncio.Lock in-process and by whoosh's own lock file across processes.

Queries are built from the user's words directly, never by a query parser,
so no input can make a syntax error: each word must match (exactly, within
an edit distance of 1-2 for words of 4 letters or more, or as a prefix for
the last word) in the name or the body, and an exact whole-name match is
boosted far above the rest. Facet counts are computed over the whole match
set from per-segment docnum -> value tables, cached by segment id (segments
never change once written; deletions only hide documents).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from whoosh import index as whoosh_index
from whoosh.fields import DATETIME, ID, KEYWORD, STORED, TEXT, Schema
from whoosh.query import And, Or, Query, Term

from .documents import DOC_TYPES
from .query import ANALYZER, Lexicon, SegmentLexicon, build_query, normalized, words

try:  # POSIX: serialize creating and swapping generations across processes
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("nycmg.search")

__all__ = ["DOC_TYPES", "SearchIndex", "SCHEMA", "words", "GENERATION_PREFIX"]

SCHEMA = Schema(
    uri=ID(stored=True, unique=True),  # the key: deletions only know an object's URI
    doc=ID(stored=True),  # "release:UUID", "artist:jay", "artist:jay@queens.example"
    type=ID(stored=True),
    oid=STORED,  # the id a result carries: uuid, or handle for artists
    name=TEXT(analyzer=ANALYZER, stored=True, phrase=False, field_boost=2.0),
    exact=ID,  # the whole name, normalized: exact-match boost and title-prefix suggestions
    body=TEXT(analyzer=ANALYZER, phrase=False),
    subtitle=STORED,
    url=STORED,
    borough=ID(stored=True),
    genre=KEYWORD(commas=True, scorable=False),
    genres=STORED,
    artist=ID(stored=True),  # owner's URI: an artist's rename re-indexes their things
    release=ID(stored=True),  # a track's release URI: publishing re-indexes its tracks
    date=DATETIME(sortable=True),
)

GENERATION_PREFIX = "gen-"
CURRENT = "CURRENT"
STAMP = "STAMP"


def _fields(doc: dict[str, Any]) -> dict[str, Any]:
    """A document dict (documents.py) as whoosh fields; None values are left out."""
    genres = list(doc.get("genres") or [])
    date = doc.get("date")
    if isinstance(date, datetime):
        # whoosh stores naive datetimes; ours are UTC.
        date = date.astimezone(UTC).replace(tzinfo=None)
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


def _segment_table(reader: Any) -> tuple[list, list, list]:
    """docnum -> (type, borough, genres) for one segment, read from its postings.

    Postings are compact and already in docnum order; reading them is much
    cheaper than loading stored fields for every match.
    """
    n = reader.doc_count_all()
    types: list[str | None] = [None] * n
    boroughs: list[str | None] = [None] * n
    genres: list[tuple[str, ...]] = [()] * n
    for field, table in (("type", types), ("borough", boroughs)):
        if field not in reader.indexed_field_names():
            continue
        for btext in reader.lexicon(field):
            value = btext.decode("utf-8")
            for d in reader.postings(field, btext).all_ids():
                table[d] = value
    if "genre" in reader.indexed_field_names():
        for btext in reader.lexicon("genre"):
            value = btext.decode("utf-8")
            for d in reader.postings("genre", btext).all_ids():
                genres[d] = (*genres[d], value)
    return types, boroughs, genres


class _Segment:
    """What a search needs from one segment, computed once: segments are immutable."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self._table: tuple[list, list, list] | None = None
        self._lexicon: SegmentLexicon | None = None

    @property
    def table(self) -> tuple[list, list, list]:
        if self._table is None:
            self._table = _segment_table(self.reader)
        return self._table

    @property
    def lexicon(self) -> SegmentLexicon:
        if self._lexicon is None:
            self._lexicon = SegmentLexicon(self.reader)
        return self._lexicon


class _View:
    """One searcher's whole-index facet tables and lexicon, built from cached segments."""

    def __init__(self, searcher: Any, cache: dict[str, _Segment]) -> None:
        self.segments: list[_Segment] = []
        seen = set()
        for sub, _offset in searcher.leaf_searchers():
            reader = sub.reader()
            segment = reader.segment()
            key = segment.segment_id() if segment is not None else f"{id(reader)}"
            seen.add(key)
            entry = cache.get(key)
            if entry is None:
                entry = cache[key] = _Segment(reader)
            entry.reader = reader  # the live reader; the cached data stays valid
            self.segments.append(entry)
        for key in [k for k in cache if k not in seen]:
            del cache[key]  # merged away
        self._tables: tuple[list, list, list] | None = None
        self._lexicon: Lexicon | None = None

    @property
    def tables(self) -> tuple[list, list, list]:
        """docnum -> type, borough, genres over the whole index (offsets in segment order)."""
        if self._tables is None:
            types: list = []
            boroughs: list = []
            genres: list = []
            for seg in self.segments:
                t, b, g = seg.table
                types += t
                boroughs += b
                genres += g
            self._tables = (types, boroughs, genres)
        return self._tables

    @property
    def lexicon(self) -> Lexicon:
        if self._lexicon is None:
            self._lexicon = Lexicon([seg.lexicon for seg in self.segments])
        return self._lexicon


# ---- the index ----------------------------------------------------------------


class SearchIndex:
    """Search over the node's public catalog. `open()` before use (done at app start)."""

    def __init__(self, directory: str | Path, ctx: Any = None) -> None:
        self.directory = Path(directory)
        self.ctx = ctx
        self._write_lock: asyncio.Lock | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._writer_pool: ThreadPoolExecutor | None = None
        # Read thread only:
        self._searcher: Any = None
        self._searcher_key: tuple[str | None, str | None] = (None, None)
        self._read_ix: Any = None
        self._view: _View | None = None
        self._segments: dict[str, _Segment] = {}
        self._browse_order: list[int] | None = None
        # Write thread only:
        self._write_ix: Any = None
        self._write_gen: str | None = None

    # -- lifecycle

    def open(self) -> None:
        """Create the index directory and an empty index if there is none (blocking)."""
        ensure_index(self.directory)
        if self._reader_pool is None:
            self._reader_pool = ThreadPoolExecutor(1, thread_name_prefix="search-read")
        if self._writer_pool is None:
            self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="search-write")

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

    async def _run(self, pool_name: str, fn: Any, *args: Any) -> Any:
        if self._reader_pool is None or self._writer_pool is None:
            await asyncio.to_thread(self.open)
        pool = self._reader_pool if pool_name == "read" else self._writer_pool
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

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
            return await self._run("write", self._apply_sync, upserts, deletes)

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

    def _current_searcher(self) -> Any:
        """The cached searcher, refreshed if the index changed (read thread only)."""
        gen = read_current(self.directory)
        if gen is None:
            gen = ensure_index(self.directory)
        try:
            stamp = (self.directory / gen / STAMP).read_text()
        except FileNotFoundError:
            stamp = None
        key = (gen, stamp)
        if self._searcher is not None and key == self._searcher_key:
            return self._searcher
        if self._searcher is None or gen != self._searcher_key[0]:
            self._read_ix = whoosh_index.open_dir(str(self.directory / gen))
            self._segments.clear()
        # A new searcher, not `searcher.refresh()`: whoosh-reloaded's refresh
        # reuses a segment's reader by segment id even when the segment gained
        # deletions, and keeps merged-away segments, which shows an updated
        # document twice. Opening readers is cheap next to a wrong answer.
        old, self._searcher = self._searcher, self._read_ix.searcher()
        if old is not None:
            old.close()
        self._searcher_key = key
        self._view = None
        self._browse_order = None
        return self._searcher

    def _current_view(self, searcher: Any) -> _View:
        if self._view is None:
            self._view = _View(searcher, self._segments)
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
        genre = " ".join(genre.split()).lower() if genre else None
        limit = max(1, min(int(limit), 100))
        page = max(1, int(page))
        return await self._run(
            "read", self._search_sync, q or "", tuple(types or ()), borough, genre, limit, page
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
        ws = words(text)
        empty = {"borough": {}, "genre": {}, "type": {}}
        if ws:
            query = build_query(ws, self._current_view(searcher).lexicon)
            ranked = [d for _, d in searcher.search(query, limit=None, terms=False).top_n]
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

        T, B, G = self._current_view(searcher).tables
        ftypes = set(types) if types else None
        type_c: Counter = Counter()
        borough_c: Counter = Counter()
        genre_c: Counter = Counter()
        kept: list[int] = []
        for d in ranked:
            dt, db, dg = T[d], B[d], G[d]
            mt = ftypes is None or dt in ftypes
            mb = borough is None or db == borough
            mg = genre is None or genre in dg
            if mb and mg:
                type_c[dt] += 1
            if mt and mg and db:
                borough_c[db] += 1
            if mt and mb:
                genre_c.update(dg)
                if mg:
                    kept.append(d)
        start = (page - 1) * limit
        results = [self._result(searcher.stored_fields(d)) for d in kept[start : start + limit]]
        return {
            "query": text,
            "total": len(kept),
            "page": page,
            "limit": limit,
            "results": results,
            "facets": {
                "borough": dict(borough_c.most_common()),
                "genre": dict(genre_c.most_common(50)),
                "type": {k: type_c[k] for k in DOC_TYPES if type_c.get(k)},
            },
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
        return await self._run("read", self._suggest_sync, q or "", limit)

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
        # 2. Any word of the title starting with the last word (the others exact).
        last = ws[-1]
        if len(found) < limit and (len(last) >= 2 or len(ws) > 1):
            lex = self._current_view(searcher).lexicon
            parts: list[Query] = [Term("name", w) for w in ws[:-1]]
            endings = [last] + [w for w in lex.completions(last) if lex.has("name", w)]
            parts.append(
                Or([Term("name", w) for w in endings]) if len(endings) > 1 else Term("name", last)
            )
            query = And(parts) if len(parts) > 1 else parts[0]
            for hit in searcher.search(query, limit=limit * 2, terms=False):
                if hit.docnum not in seen:
                    seen.add(hit.docnum)
                    found.append(hit.docnum)
                if len(found) >= limit:
                    break
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
        return await self._run("read", self._lookup_sync, field, value)

    def _lookup_sync(self, field: str, value: str) -> list[dict[str, Any]]:
        searcher = self._current_searcher()
        return [searcher.stored_fields(d) for d in searcher.docs_for_query(Term(field, value))]

    async def count(self) -> int:
        """How many documents the live generation holds."""
        return await self._run("read", lambda: self._current_searcher().doc_count())
