"""Matching and scoring over a whoosh index's segments, in memory.

whoosh supplies the storage: segments, the term dictionary, postings,
stored fields, deletions. Its matcher tree, though, costs ~15-20 µs per
matching document in pure Python, which puts a query matching a few
thousand of 50,000 documents at 50-100 ms. Here each segment's postings for
the name and body fields are read once per term and kept as arrays
(segments are immutable, so the cache is valid for the segment's life,
keyed by segment id), and a query is a few dict operations per posting,
most of them in C.

Scoring: for each word, a document scores its best alternative (exact,
typo or completion, in name or body; weights and idf from query.py); the
words' scores add up; every word must match; an exact whole-name match adds
a large constant. Ties go to the newer document (the higher docnum).
"""

from __future__ import annotations

import logging
from array import array
from typing import Any

from .query import WHOLE_NAME, Alternative, Lexicon, SegmentLexicon

log = logging.getLogger("nycmg.search")
_NONE = array("i")


def open_searcher(ix: Any, previous: Any = None) -> Any:
    """A searcher over the index's latest commit, reusing the previous searcher's
    segment readers whose segment is unchanged (same id, same deletions).

    Not `searcher.refresh()`: whoosh-reloaded's refresh reuses a reader by
    segment id even when the segment gained deletions, and keeps segments
    that were merged away, which shows an updated document twice. Readers
    that are not reused are closed; the previous searcher must not be used
    again (nor closed: it would close the shared readers).
    """
    from whoosh.reading import EmptyReader, MultiReader, SegmentReader
    from whoosh.searching import Searcher

    if previous is None:
        return ix.searcher()
    try:
        toc = ix._read_toc()  # whoosh's own view of the latest commit
        old = {}
        for r, _ in previous.reader().leaf_readers():
            seg = r.segment() if r.is_atomic() else None
            if seg is not None:
                old[seg.segment_id()] = r
        readers = []
        for seg in toc.segments:
            r = old.pop(seg.segment_id(), None)
            if r is None or r.segment().deleted_count() != seg.deleted_count():
                if r is not None:
                    old[seg.segment_id()] = r  # to close
                r = SegmentReader(ix.storage, toc.schema, seg, generation=toc.generation)
            readers.append(r)
        for r in old.values():
            r.close()
        if not readers:
            reader = EmptyReader(toc.schema)
        elif len(readers) == 1:
            reader = readers[0]
        else:
            reader = MultiReader(readers, generation=toc.generation)
        return Searcher(reader, fromindex=ix)
    except FileNotFoundError:
        # A merge removed a segment file between reading the TOC and opening it:
        # expected under concurrent writes, and the plain path handles it.
        log.debug("search: a segment was merged away while reopening; opening a fresh searcher")
        previous.close()
        return ix.searcher()
    except Exception:  # noqa: BLE001 - whoosh internals moved: take the plain path
        log.warning("search: reader reuse failed; opening a fresh searcher", exc_info=True)
        previous.close()
        return ix.searcher()


def _segment_table(reader: Any) -> tuple[list, list, list]:
    """docnum -> (type, borough, genres) for one segment, read from its postings.

    Postings are compact and already in docnum order; reading them is much
    cheaper than loading stored fields for every match.
    """
    n = reader.doc_count_all()
    types: list[str | None] = [None] * n
    boroughs: list[str | None] = [None] * n
    genres: list[tuple[str, ...]] = [()] * n
    fields = reader.indexed_field_names()
    for field, table in (("type", types), ("borough", boroughs)):
        if field in fields:
            for btext in reader.lexicon(field):
                value = btext.decode("utf-8")
                for d in reader.postings(field, btext).all_ids():
                    table[d] = value
    if "genre" in fields:
        for btext in reader.lexicon("genre"):
            value = btext.decode("utf-8")
            for d in reader.postings("genre", btext).all_ids():
                genres[d] = (*genres[d], value)
    return types, boroughs, genres


class Segment:
    """What searches need from one segment, computed on first use and kept."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self._table: tuple[list, list, list] | None = None
        self._lexicon: SegmentLexicon | None = None
        self._postings: dict[tuple[str, str], array] = {}

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

    def postings(self, field: str, term: str) -> array:
        """Docnums (segment-local, deleted ones included) of `term` in `field`."""
        key = (field, term)
        ids = self._postings.get(key)
        if ids is None:
            if term not in self.lexicon.df.get(field, ()):
                return _NONE  # not in this segment: no disk lookup, nothing cached
            ids = self._postings[key] = array("i", self.reader.postings(field, term).all_ids())
        return ids

    def exact(self, whole: str) -> list[int]:
        """Docnums whose whole normalized name is `whole` (not cached: one per query)."""
        if self.reader.doc_frequency("exact", whole) == 0:
            return []
        return list(self.reader.postings("exact", whole).all_ids())

    def deleted(self) -> frozenset[int] | set[int]:
        if not self.reader.has_deletions():
            return set()
        return getattr(self.reader, "deleted_docs_set", None) or {
            d for d in range(self.reader.doc_count_all()) if self.reader.is_deleted(d)
        }


class View:
    """One searcher's segments (with their offsets), facet tables and lexicon."""

    def __init__(self, searcher: Any, cache: dict[str, Segment]) -> None:
        self.segments: list[tuple[Segment, int]] = []
        seen = set()
        for sub, offset in searcher.leaf_searchers():
            reader = sub.reader()
            segment = reader.segment()
            key = segment.segment_id() if segment is not None else f"{id(reader)}"
            seen.add(key)
            entry = cache.get(key)
            if entry is None:
                entry = cache[key] = Segment(reader)
            entry.reader = reader  # the live reader (current deletions); cached data stays valid
            self.segments.append((entry, offset))
        for key in [k for k in cache if k not in seen]:
            del cache[key]  # merged away
        self.doc_count = searcher.doc_count()
        self._tables: tuple[list, list, list] | None = None
        self._lexicon: Lexicon | None = None

    @property
    def ready(self) -> bool:
        """Are the facet tables and the lexicon built (so a query is cheap)?"""
        return self._tables is not None and self._lexicon is not None

    @property
    def tables(self) -> tuple[list, list, list]:
        """docnum -> type, borough, genres over the whole index (segments in offset order)."""
        if self._tables is None:
            types: list = []
            boroughs: list = []
            genres: list = []
            for seg, _ in self.segments:
                t, b, g = seg.table
                types += t
                boroughs += b
                genres += g
            self._tables = (types, boroughs, genres)
        return self._tables

    @property
    def lexicon(self) -> Lexicon:
        if self._lexicon is None:
            self._lexicon = Lexicon([seg.lexicon for seg, _ in self.segments])
        return self._lexicon

    def match(
        self,
        plan: list[list[Alternative]],
        whole: str | None = None,
        fields: tuple[str, ...] = ("name", "body"),
    ) -> dict[int, float]:
        """Global docnum -> score for the documents matching every word of `plan`."""
        out: dict[int, float] = {}
        for seg, offset in self.segments:
            per_word: list[dict[int, float]] = []
            for alts in plan:
                acc: dict[int, float] = {}
                for field, term, weight in alts:  # best first: a doc keeps its best
                    if field not in fields:
                        continue
                    ids = seg.postings(field, term)
                    if not ids:
                        continue
                    if not acc:
                        acc = dict.fromkeys(ids, weight)
                    else:
                        better = acc
                        acc = dict.fromkeys(ids, weight)
                        acc.update(better)
                if not acc:
                    per_word = []
                    break
                per_word.append(acc)
            if not per_word:
                continue
            per_word.sort(key=len)
            first, rest = per_word[0], per_word[1:]
            if rest:
                scores: dict[int, float] = {}
                for d, s in first.items():
                    for other in rest:
                        v = other.get(d)
                        if v is None:
                            break
                        s += v
                    else:
                        scores[d] = s
            else:
                scores = first
            if whole and scores:
                for d in seg.exact(whole):
                    if d in scores:
                        scores[d] += WHOLE_NAME
            deleted = seg.deleted()
            if not out and not deleted and offset == 0:
                out = scores  # the common case, one clean segment: no copy
                continue
            for d, s in scores.items():
                if d not in deleted:
                    out[d + offset] = s
        return out
