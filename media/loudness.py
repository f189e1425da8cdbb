"""Integrated loudness (EBU R128 / ITU-R BS.1770-4) and waveform peaks, fed frame by frame.

Loudness: each channel goes through the K-weighting filter (a high shelf,
then a high pass), mean squares are summed over 400 ms blocks with 75%
overlap, blocks under -70 LUFS are dropped (absolute gate), then blocks more
than 10 LU under the loudness of the rest (relative gate); what remains is
averaged. The filters are designed for the stream's own sample rate from the
BS.1770 analogue prototypes (the same derivation libebur128 uses), so 44.1
kHz needs no resampling. Channel weights are 1.0 (mono and stereo).
Spec: https://www.itu.int/rec/R-REC-BS.1770 and EBU Tech 3341.

Both meters keep only per-100 ms sums, so an hour of audio costs kilobytes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

ABSOLUTE_GATE = -70.0
RELATIVE_GATE = -10.0


def k_weighting_sos(rate: int) -> np.ndarray:
    """Second-order sections of the K-weighting filter at `rate` Hz."""
    # Stage 1: the head's acoustic effect, a high shelf (+4 dB above ~1.7 kHz).
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0,
        2 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        1.0,
        2 * (k * k - 1) / a0,
        (1 - k / q + k * k) / a0,
    ]
    # Stage 2: the RLB high pass (~38 Hz).
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, highpass], dtype=np.float64)


class LoudnessMeter:
    """Feed planar float frames (channels x samples); read `integrated()` at the end."""

    def __init__(self, rate: int, channels: int) -> None:
        self.sos = k_weighting_sos(rate)
        self.zi = np.zeros((self.sos.shape[0], channels, 2))
        self.segment = max(1, round(rate / 10))  # 100 ms
        self.pending = np.zeros(0, dtype=np.float64)
        self.segments: list[float] = []

    def add(self, planar: np.ndarray) -> None:
        filtered, self.zi = signal.sosfilt(self.sos, planar, axis=-1, zi=self.zi)
        energy = np.einsum("ij,ij->j", filtered, filtered)  # sum of squares across channels
        data = np.concatenate([self.pending, energy]) if self.pending.size else energy
        whole = data.size // self.segment * self.segment
        if whole:
            self.segments.extend(data[:whole].reshape(-1, self.segment).sum(axis=1).tolist())
        self.pending = data[whole:]

    def integrated(self) -> float | None:
        """Integrated loudness in LUFS, or None for silence (every block under the gate)."""
        seg = np.asarray(self.segments, dtype=np.float64)
        if seg.size < 4:
            if not seg.size and not self.pending.size:
                return None
            # Shorter than one block: measure what there is as one block.
            total = seg.sum() + self.pending.sum()
            count = seg.size * self.segment + self.pending.size
            blocks = np.array([total / count])
        else:
            sums = seg[:-3] + seg[1:-2] + seg[2:-1] + seg[3:]
            blocks = sums / (4 * self.segment)
        with np.errstate(divide="ignore"):
            loud = -0.691 + 10 * np.log10(blocks)
        kept = blocks[loud > ABSOLUTE_GATE]
        if not kept.size:
            return None
        relative = -0.691 + 10 * math.log10(kept.mean()) + RELATIVE_GATE
        with np.errstate(divide="ignore"):
            final = kept[(-0.691 + 10 * np.log10(kept)) > relative]
        if not final.size:
            return None
        return round(-0.691 + 10 * math.log10(final.mean()), 2)


class PeakMeter:
    """Peaks per 10 ms, reduced at the end to a fixed number of points (0..1) for the player."""

    def __init__(self, rate: int) -> None:
        self.window = max(1, rate // 100)
        self.pending = np.zeros(0, dtype=np.float32)
        self.peaks: list[float] = []

    def add(self, planar: np.ndarray) -> None:
        mono = np.abs(planar).max(axis=0)
        data = np.concatenate([self.pending, mono]) if self.pending.size else mono
        whole = data.size // self.window * self.window
        if whole:
            self.peaks.extend(data[:whole].reshape(-1, self.window).max(axis=1).tolist())
        self.pending = data[whole:]

    def points(self, count: int = 1000) -> list[float]:
        peaks = self.peaks + ([float(self.pending.max())] if self.pending.size else [])
        if not peaks:
            return []
        arr = np.minimum(np.asarray(peaks, dtype=np.float64), 1.0)
        count = min(count, arr.size)
        edges = np.linspace(0, arr.size, count + 1).astype(int)
        reduced = np.maximum.reduceat(arr, edges[:-1])
        return [round(float(v), 3) for v in reduced]
