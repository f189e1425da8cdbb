"""Recognising a fingerprint against the index by time-offset voting (Wang 2003).

Every query hash found in the index votes for (track, db frame - query frame),
once per distinct query frame. The true track piles its votes into one
offset bin; chance collisions spread over many. Votes are counted in bins of `BIN_FRAMES` with the neighbouring
bin added, so a small residual speed error cannot split a peak in two.

A playback speed change moves every peak; the query's peaks are mapped back
for a few speed hypotheses (`SPEEDS`) and the best one wins. The decision
compares the best bin with the best bin of any *other* track (what chance
alone reaches against this catalogue for this query): a match needs
`MIN_VOTES` and a clear margin over that runner-up (`MIN_MARGIN` votes and
`MIN_RATIO` times). Tuned on synthesized catalogues (bench/detection.py):
music outside the catalogue reaches a margin of 5 at most. `confidence` is the
margin scaled to 0..1, so callers can order and threshold detections.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.models import Track

from . import fingerprint as fpmod
from .index import Postings, lookup_sql, snapshot

SPEEDS = (1.0, 0.99, 1.01, 0.98, 1.02)
BIN_FRAMES = 1
MIN_VOTES = 10
MIN_MARGIN = 7  # votes over the runner-up (the best any other track reaches)
MIN_RATIO = 1.4  # and as a ratio, for queries where chance runs high
MAX_POSTINGS = 4000  # hashes more common than this are skipped at query time
_DIFF_BIAS = 1 << 22


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


def vote(postings: Postings, hashes: np.ndarray, offsets: np.ndarray) -> tuple[int, int, int, int]:
    """(track id, frame offset, votes, runner-up votes) of the best offset bin."""
    qidx, slots, frames = postings.lookup(hashes, MAX_POSTINGS)
    if slots.size == 0:
        return -1, 0, 0, 0
    anchor = offsets[qidx].astype(np.int64)
    diff = (frames.astype(np.int64) - anchor) // BIN_FRAMES
    # One sort of (track slot, offset bin, query frame) does all the counting.
    # A vote is a distinct query *frame* agreeing on the offset, not a hash:
    # a chord onset makes dozens of hashes at one frame, and two songs that
    # share a chord would otherwise agree by the dozen at one moment.
    key = (slots.astype(np.int64) << 43) | ((diff + _DIFF_BIAS) << 20) | (anchor & 0xFFFFF)
    key.sort()
    distinct = key[np.r_[True, key[1:] != key[:-1]]] >> 20
    edges = np.flatnonzero(np.r_[True, distinct[1:] != distinct[:-1], True])
    keys = distinct[edges[:-1]]
    counts = np.diff(edges)
    # Add the next bin's votes when it is adjacent (same track, diff + 1).
    window = counts.copy()
    adjacent = np.flatnonzero(keys[1:] == keys[:-1] + 1)
    window[adjacent] += counts[adjacent + 1]
    best = int(np.argmax(window))
    best_slot = int(keys[best] >> 23)
    frame = int((keys[best] & ((1 << 23) - 1)) - _DIFF_BIAS) * BIN_FRAMES
    others = window[(keys >> 23) != best_slot]
    runner_up = int(others.max()) if others.size else 0
    return int(postings.track_ids[best_slot]), frame, int(window[best]), runner_up


def best_candidate(postings: Postings, fp: fpmod.Fingerprint, speeds=SPEEDS) -> Candidate:
    """The best alignment of `fp` over the speed hypotheses (stops early on a clear match)."""
    best = Candidate(-1, 0, 0, 0, len(fp), 1.0)
    for speed in speeds:
        if speed == 1.0:
            hashes, offsets = fp.hashes, fp.offsets
        else:
            hashes, offsets = fpmod.hashes_for_speed(fp.peak_frames, fp.peak_bins, speed)
        track, frame, votes, runner_up = vote(postings, hashes, offsets)
        if votes > best.votes:
            best = Candidate(track, frame, votes, runner_up, int(hashes.size), speed)
        if best.accepted:
            break
    return best


async def _as_match(session: AsyncSession, cand: Candidate) -> Match | None:
    if not cand.accepted:
        return None
    # Read, not taken from the snapshot: the track may have been deleted by
    # another process since the snapshot was last checked.
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
    return await _as_match(session, best_candidate(postings, fp, speeds=(1.0,)))
