"""Recognising a fingerprint against the index by time-offset voting (Wang 2003).

Every query hash found in the index votes for (track, db frame - query frame),
once per distinct query frame. The true track piles its votes into one
offset bin (a frame); chance collisions spread over many. A bin's votes are
counted with the next bin's, so a small residual speed error cannot split a
peak in two.

A playback speed change moves every peak; the query's peaks are mapped back
for a few speed hypotheses (`SPEEDS`) and the best one wins. The decision
compares the best bin with the best bin of any *other* track (what chance
alone reaches against this catalogue for this query): a match needs
`MIN_VOTES` and a clear margin over that runner-up (`MIN_MARGIN` votes and
`MIN_RATIO` times). Tuned on synthesized catalogues (bench/detection.py):
music outside the catalogue reaches a margin of 5 at most. `confidence` is the
margin scaled to 0..1, so callers can order and threshold detections.

Counting is linear in the postings a query reaches (tens of thousands for a
5-s query against 500 tracks): a screening pass bounds every bin's votes
from raw counts in a hashed table, and only the postings that may belong to
a bin of `SCREEN_VOTES` or more are sorted and counted exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.models import Track

from . import fingerprint as fpmod
from .index import ANCHOR_BITS, FRAME_BIAS, Postings, lookup_sql, snapshot, snapshot_uri

SPEEDS = (1.0, 0.99, 1.01, 0.98, 1.02)
MIN_VOTES = 10
MIN_MARGIN = 7  # votes over the runner-up (the best any other track reaches)
MIN_RATIO = 1.4  # and as a ratio, for queries where chance runs high
MAX_POSTINGS = 4000  # hashes more common than this are skipped at query time
SCREEN_VOTES = 6  # postings only in bins bounded below this skip the exact count
SCREEN_MIN_POSTINGS = 3000  # below this, counting everything exactly is as quick
_MAX_ANCHOR = (1 << ANCHOR_BITS) - 1  # query frames past this (~9 hours) are ignored
_OFFSET_MASK = (1 << 23) - 1
_CELL_MASK = (1 << 18) - 1
_CELL_STRIDE = 0x9E3779B1  # spreads track slots over the hashed cells


@dataclass(frozen=True)
class Match:
    """A recognised track: where in it the query starts, and how sure we are."""

    track_id: int
    track_uri: str
    offset_ms: int
    confidence: float
    votes: int


@dataclass(frozen=True)
class Candidate:
    """The best alignment found for a query, accepted or not."""

    track_id: int
    frame_offset: int
    votes: int
    runner_up: int
    query_hashes: int
    speed: float

    @property
    def confidence(self) -> float:
        if self.votes <= 0:
            return 0.0
        margin = (self.votes - self.runner_up) / self.votes
        strength = min(1.0, self.votes / (3.0 * MIN_VOTES))
        return round(max(0.0, margin) * strength, 4)

    @property
    def accepted(self) -> bool:
        return (
            self.votes >= MIN_VOTES
            and self.votes - self.runner_up >= MIN_MARGIN
            and self.votes >= MIN_RATIO * self.runner_up
        )

    @property
    def offset_ms(self) -> int:
        return max(0, int(round(self.frame_offset * fpmod.FRAME_MS)))


def _exact_votes(key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slot, offset, window votes) of every (track slot, offset bin) in `key`.

    `key` packs (track slot, offset bin, query frame) as `Postings.packed`
    does; one sort does all the counting. A vote is a distinct query *frame*
    agreeing on the offset, not a hash: a chord onset makes dozens of hashes
    at one frame, and two songs that share a chord would otherwise agree by
    the dozen at one moment. A bin's window adds the next bin's votes when
    it is adjacent (same track, offset + 1).
    """
    key = np.sort(key)
    distinct = key[np.r_[True, key[1:] != key[:-1]]] >> ANCHOR_BITS
    edges = np.flatnonzero(np.r_[True, distinct[1:] != distinct[:-1], True])
    keys = distinct[edges[:-1]]
    counts = np.diff(edges)
    window = counts.copy()
    adjacent = np.flatnonzero(keys[1:] == keys[:-1] + 1)
    window[adjacent] += counts[adjacent + 1]
    return keys >> 23, (keys & _OFFSET_MASK) - FRAME_BIAS, window


def _best(key: np.ndarray) -> tuple[int, int, int, int]:
    """(slot, offset, votes, runner-up votes) of the best window in `key`."""
    s, d, w = _exact_votes(key)
    best = int(np.argmax(w))
    others = w[s != s[best]]
    return int(s[best]), int(d[best]), int(w[best]), int(others.max()) if others.size else 0


def _bound(key: np.ndarray) -> np.ndarray:
    """Per posting, an upper bound of the votes of any window it is part of.

    Linear time, no sort: postings are counted per hashed (slot, offset)
    cell, where offset + 1 is the next cell, so a cell and the next one
    bound a window. Collisions and repeats of a query frame only ever add.
    """
    bins = key >> ANCHOR_BITS  # slot << 23 | offset
    cell = (bins + (bins >> 23) * _CELL_STRIDE) & _CELL_MASK
    raw = np.bincount(cell, minlength=_CELL_MASK + 1)
    here = raw[cell]
    after = raw[(cell + 1) & _CELL_MASK]
    before = raw[(cell - 1) & _CELL_MASK]
    return np.maximum(here + after, before + here)


def vote(
    postings: Postings, hashes: np.ndarray, offsets: np.ndarray, floor: int = 0
) -> tuple[int, int, int, int]:
    """(track id, frame offset, votes, runner-up votes) of the best offset bin.

    With a `floor`, a query that cannot reach `floor` votes anywhere is
    answered (-1, 0, 0, 0) from the screening pass alone.
    """
    anchors = np.asarray(offsets, np.int64)
    if anchors.size and (anchors.min() < 0 or anchors.max() > _MAX_ANCHOR):
        ok = (anchors >= 0) & (anchors <= _MAX_ANCHOR)
        hashes, anchors = np.asarray(hashes)[ok], anchors[ok]
    packed, anchor = postings.gather(hashes, anchors, MAX_POSTINGS)
    if packed.size == 0:
        return -1, 0, 0, 0
    key = packed - (anchor << ANCHOR_BITS) + anchor
    found = None
    if key.size > SCREEN_MIN_POSTINGS or floor > 0:
        # Most postings are chance hits in bins of a vote or two: only those
        # that may be part of a window of SCREEN_VOTES or more are sorted.
        # The answer is exact whenever the runner-up reaches SCREEN_VOTES - 1
        # (whatever was left out can at most tie it); otherwise all count.
        bound = _bound(key)
        top = int(bound.max())
        if top < floor:
            return -1, 0, 0, 0
        if top >= SCREEN_VOTES and key.size > SCREEN_MIN_POSTINGS:
            found = _best(key[bound >= SCREEN_VOTES])
            if found[3] < SCREEN_VOTES - 1:
                found = None
    slot, offset, votes, runner_up = found or _best(key)
    return int(postings.track_ids[slot]), offset, votes, runner_up


def best_candidate(postings: Postings, fp: fpmod.Fingerprint, speeds=SPEEDS) -> Candidate:
    """The best alignment of `fp` over the speed hypotheses (stops early on a clear match)."""
    best = Candidate(-1, 0, 0, 0, len(fp), 1.0)
    for speed in speeds:
        if speed == 1.0:
            hashes, offsets = fp.hashes, fp.offsets
        else:
            hashes, offsets = fpmod.hashes_for_speed(fp.peak_frames, fp.peak_bins, speed)
        track, frame, votes, runner_up = vote(postings, hashes, offsets, floor=MIN_VOTES)
        if votes > best.votes:
            best = Candidate(track, frame, votes, runner_up, int(hashes.size), speed)
        if best.accepted:
            break
    return best


async def _as_match(session: AsyncSession, cand: Candidate, cached: bool = True) -> Match | None:
    if not cand.accepted:
        return None
    # The snapshot's URI when it has it (no round trip: a deletion in another
    # process reaches it at its next check, as it reaches the postings);
    # otherwise read, in case the track went since.
    uri = snapshot_uri(session, cand.track_id) if cached else None
    if uri is None:
        uri = await session.scalar(select(Track.uri).where(Track.id == cand.track_id))
    if uri is None:
        return None
    return Match(cand.track_id, uri, cand.offset_ms, cand.confidence, cand.votes)


async def match(session: AsyncSession, fp: fpmod.Fingerprint) -> Match | None:
    """The catalog track `fp` was cut from, or None when nothing is convincing."""
    if len(fp) == 0:
        return None
    postings = await snapshot(session)
    return await _as_match(session, best_candidate(postings, fp))


async def match_sql(session: AsyncSession, fp: fpmod.Fingerprint) -> Match | None:
    """`match` with the postings read by SQL instead of the snapshot (one speed hypothesis).

    Slower; used where a process should not hold the index in memory and
    by the benchmark as a comparison.
    """
    if len(fp) == 0:
        return None
    postings = await lookup_sql(session, fp.hashes)
    return await _as_match(session, best_candidate(postings, fp, speeds=(1.0,)), cached=False)
