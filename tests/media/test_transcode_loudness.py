"""Loudness as EBU R128 defines it: the EBU's own reference cases (Tech 3341), synthesized."""

from __future__ import annotations

import numpy as np
import pytest

from media.loudness import LoudnessMeter, PeakMeter


def sine(db: float, seconds: float, rate: int, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (10 ** (db / 20) * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x, x])


def measure(planar: np.ndarray, rate: int, frame: int = 1024) -> float | None:
    meter = LoudnessMeter(rate, planar.shape[0])
    for i in range(0, planar.shape[1], frame):
        meter.add(planar[:, i : i + frame])
    return meter.integrated()


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
@pytest.mark.parametrize("level", [-23.0, -33.0])
def test_a_stereo_1khz_tone_reads_its_level_in_lufs(rate, level):
    # EBU Tech 3341 cases 1 and 2: a 1 kHz stereo sine at -23 / -33 dBFS is -23 / -33 LUFS.
    assert measure(sine(level, 20, rate), rate) == pytest.approx(level, abs=0.1)


def test_quiet_passages_are_gated_out():
    # Tech 3341 case 3: -36, -23, -36 dBFS for 10, 60, 10 s reads -23 LUFS (relative gate).
    rate = 48000
    planar = np.concatenate([sine(-36, 10, rate), sine(-23, 60, rate), sine(-36, 10, rate)], axis=1)
    assert measure(planar, rate, frame=4096) == pytest.approx(-23.0, abs=0.1)


def test_silence_has_no_loudness_and_the_meter_needs_no_memory_per_sample():
    rate = 48000
    meter = LoudnessMeter(rate, 2)
    for _ in range(100):
        meter.add(np.zeros((2, 4800), dtype=np.float32))
    assert meter.integrated() is None
    assert len(meter.segments) == 100  # one number per 100 ms


def test_waveform_peaks_follow_the_envelope():
    rate = 8000
    planar = np.concatenate([sine(-6, 1, rate), sine(-40, 1, rate)], axis=1)
    peaks = PeakMeter(rate)
    peaks.add(planar)
    points = peaks.points(10)
    assert len(points) == 10
    assert all(p == pytest.approx(0.5, abs=0.02) for p in points[:5])
    assert all(p < 0.02 for p in points[5:])
