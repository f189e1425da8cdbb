"""Turning what a fan types into a plan of index terms, fast and without a parser.

Why not whoosh's QueryParser: its syntax (`AND`, `title:`, `"`, `*`) turns
odd input into errors or surprises; a fan's words are just words. Each word
must match somewhere (name or body): exactly, as a typo, or, for the last
word, as the start of a word still being typed. An exact whole-name match is
boosted far above everything else (see engine.py for the scoring).

Why not whoosh's FuzzyTerm and Prefix: they walk the on-disk term table in
pure Python (a Levenshtein automaton stepping through a binary search),
which costs tens of milliseconds per word at 50,000 documents. Instead each
segment's vocabulary is read once into memory (`SegmentLexicon`, cached by
segment id: segments never change once written) and typos are found with a
symmetric deletion index: two words are candidates when deleting at most one
letter from each gives the same string (or, for words of 8+ letters, up to
two from the typed one). That covers one insertion, deletion, substitution
or swap of neighbouring letters (a swap costs two in whoosh's plain
Levenshtein automata), then an exact distance check keeps edits <= 1
(<= 2 for long words).
"""

from __future__ import annotations

from bisect import bisect_left
from math import log
from typing import Any

from whoosh.analysis import CharsetFilter, LowercaseFilter, RegexTokenizer
from whoosh.support.charset import accent_map

# Names are not prose: no stemming and no stop words ("The The" is a band),
# accents folded so "Beyonce" finds "Beyoncé".
ANALYZER = RegexTokenizer(r"\w+(?:['’]\w+)*") | LowercaseFilter() | CharsetFilter(accent_map)

MAX_WORDS = 8
MAX_WORD_LEN = 40
FUZZY_MIN = 4  # shorter words are too easily a different word at one edit
FUZZY_TWO = 8  # from this length, two edits
MAX_EXPANSIONS = 30  # per word and kind (typos, prefixes): the most frequent win


def words(text: str | None) -> list[str]:
    """The user's words as the index sees them (same analyzer), de-duplicated, capped."""
    if not text:
        return []
    out: list[str] = []
    for tok in ANALYZER(text[:500]):
        w = tok.text[:MAX_WORD_LEN]
        if w and w not in out:
            out.append(w)
        if len(out) >= MAX_WORDS:
            break
    return out


def normalized(text: str) -> str:
    """A whole name as one comparable string (the `exact` field)."""
    return " ".join(tok.text for tok in ANALYZER(text or ""))[:200]


def _deletes(w: str) -> set[str]:
    return {w[:i] + w[i + 1 :] for i in range(len(w))}


def distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (Levenshtein plus neighbour swaps), capped."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        best = cur[0]
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            v = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                v = min(v, prev2[j - 2] + 1)
            cur[j] = v
            best = min(best, v)
        if best > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[len(b)]


class SegmentLexicon:
    """One segment's words in `name` and `body`, with document frequencies."""

    def __init__(self, reader: Any) -> None:
        self.df: dict[str, dict[str, int]] = {}
        fields = reader.indexed_field_names()
        for field in ("name", "body"):
            terms: dict[str, int] = {}
            if field in fields:
                for btext, info in reader.iter_field(field):
                    terms[btext.decode("utf-8")] = info.doc_frequency()
            self.df[field] = terms
        self.sorted = sorted(set(self.df["name"]) | set(self.df["body"]))
        # Typos are looked for among names (what fans type), not descriptions.
        self.by_delete: dict[str, Any] = {}
        for w in self.df["name"]:
            if len(w) >= FUZZY_MIN - 1:
                for d in _deletes(w) | {w}:
                    bucket = self.by_delete.get(d)
                    if bucket is None:
                        self.by_delete[d] = w
                    elif isinstance(bucket, str):
                        self.by_delete[d] = [bucket, w]
                    else:
                        bucket.append(w)

    def freq(self, w: str) -> int:
        return self.df["name"].get(w, 0) + self.df["body"].get(w, 0)

    def prefixed(self, prefix: str) -> list[str]:
        out = []
        i = bisect_left(self.sorted, prefix)
        while i < len(self.sorted) and self.sorted[i].startswith(prefix):
            out.append(self.sorted[i])
            i += 1
            if len(out) > 2000:  # a two-letter prefix in a huge vocabulary: enough
                break
        return out

    def near(self, keys: set[str]) -> set[str]:
        out: set[str] = set()
        for k in keys:
            bucket = self.by_delete.get(k)
            if bucket is None:
                continue
            if isinstance(bucket, str):
                out.add(bucket)
            else:
                out.update(bucket)
        return out


class Lexicon:
    """The vocabulary of a whole index: its segments' lexicons, consulted together."""

    def __init__(self, segments: list[SegmentLexicon]) -> None:
        self.segments = segments

    def freq(self, w: str) -> int:
        return sum(s.freq(w) for s in self.segments)

    def has(self, field: str, w: str) -> bool:
        return any(w in s.df[field] for s in self.segments)

    def df(self, field: str, w: str) -> int:
        return sum(s.df[field].get(w, 0) for s in self.segments)

    def _top(self, candidates: set[str]) -> list[str]:
        if len(candidates) <= MAX_EXPANSIONS:
            return sorted(candidates)
        return sorted(candidates, key=lambda w: (-self.freq(w), w))[:MAX_EXPANSIONS]

    def typos(self, w: str) -> list[str]:
        """Indexed names within one edit of `w` (two for long words), `w` excluded."""
        if len(w) < FUZZY_MIN:
            return []
        limit = 2 if len(w) >= FUZZY_TWO else 1
        keys = {w} | _deletes(w)
        if limit == 2:
            keys |= {d2 for d in _deletes(w) for d2 in _deletes(d)}
        found: set[str] = set()
        for s in self.segments:
            found |= s.near(keys)
        found.discard(w)
        return self._top({c for c in found if distance(w, c, limit) <= limit})

    def completions(self, prefix: str) -> list[str]:
        """Indexed words that start with `prefix`, `prefix` itself excluded."""
        if len(prefix) < 2:
            return []
        found: set[str] = set()
        for s in self.segments:
            found.update(s.prefixed(prefix))
        found.discard(prefix)
        return self._top(found)


# How much a word counts, by how it matched and where.
EXACT_NAME, EXACT_BODY = 3.0, 1.0
TYPO_NAME, TYPO_BODY = 0.6, 0.2
PREFIX_NAME, PREFIX_BODY = 1.0, 0.3
WHOLE_NAME = 50.0  # the exact whole name: always first

# One alternative for a word: (field, term, weight including idf).
Alternative = tuple[str, str, float]


def _alternatives(
    lex: Lexicon, w: str, name_w: float, body_w: float, n_docs: int
) -> list[Alternative]:
    out = []
    for field, weight in (("name", name_w), ("body", body_w)):
        df = lex.df(field, w)
        if df:
            out.append((field, w, weight * log(1 + n_docs / df)))
    return out


def plan(
    ws: list[str], lex: Lexicon, n_docs: int, *, fuzzy: bool = True
) -> list[list[Alternative]] | None:
    """For each word, the index terms that can stand for it, best first; None if a
    word can match nothing (then nothing matches: every word is required).

    Weights are the kind of match times the term's rarity (idf), so a rare
    exact word outweighs a common one and any typo or completion.
    """
    out: list[list[Alternative]] = []
    n = max(n_docs, 1)
    for i, w in enumerate(ws):
        alts = _alternatives(lex, w, EXACT_NAME, EXACT_BODY, n)
        if fuzzy:
            for t in lex.typos(w):
                alts += _alternatives(lex, t, TYPO_NAME, TYPO_BODY, n)
        if i == len(ws) - 1:
            for t in lex.completions(w):
                alts += _alternatives(lex, t, PREFIX_NAME, PREFIX_BODY, n)
        if not alts:
            return None
        alts.sort(key=lambda a: -a[2])
        out.append(alts)
    return out
