"""Deterministic synthesized music and room noise for tests, benchmarks and the demo.

`song(seed, seconds)` builds a multi-instrument piece (pad chords, bass,
drums, a melody) whose key, tempo, progression, timbres and melody all come
from the seed, so two seeds give two different songs and the same seed gives
the same samples on every machine. The melody is drawn afresh for every bar,
so a song does not loop and an excerpt has one place it belongs.

`babble(seed, seconds)` is crowd-like noise: several synthetic voices
(glottal harmonics shaped by vowel formants, syllable-rate envelopes).
`mix_at_snr` and `lowpass` / `change_speed` model a room.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, resample_poly, sosfilt

from .fingerprint import SAMPLE_RATE

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _add(out: np.ndarray, start: int, sig: np.ndarray) -> None:
    if start >= out.size:
        return
    end = min(out.size, start + sig.size)
    out[start:end] += sig[: end - start]


def _tone(
    freq: float, dur: float, sr: int, harmonics: np.ndarray, attack: float, decay: float
) -> np.ndarray:
    n = max(1, int(dur * sr))
    t = np.arange(n) / sr
    sig = np.zeros(n)
    for h, amp in enumerate(harmonics, start=1):
        if amp == 0 or freq * h >= sr / 2 * 0.95:
            continue
        sig += amp * np.sin(2 * np.pi * freq * h * t)
    env = np.minimum(1.0, t / max(attack, 1e-3)) * np.exp(-t / max(decay, 1e-3))
    tail = min(n, int(0.01 * sr))
    if tail:
        env[-tail:] *= np.linspace(1, 0, tail)
    return sig * env


def song(seed: int, seconds: float = 30.0, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A distinct multi-instrument song for `seed`: float32 mono, peak 0.9."""
    rng = np.random.default_rng([0x5EED, int(seed)])
    n = int(seconds * sr)
    out = np.zeros(n)
    bpm = rng.uniform(84, 150)
    beat = 60.0 / bpm
    bar = 4 * beat
    root = int(rng.integers(45, 57))
    scale = _MAJOR if rng.random() < 0.5 else _MINOR
    degrees = [0] + list(rng.choice([1, 2, 3, 4, 5, 6], size=3, replace=True))
    pad_timbre = rng.uniform(0.1, 1.0, 6) / np.arange(1, 7)
    bass_timbre = rng.uniform(0.3, 1.0, 8) / np.arange(1, 9)
    lead_timbre = rng.uniform(0.05, 1.0, 10) / np.sqrt(np.arange(1, 11))
    bass_pattern = rng.choice([0.5, 1.0], size=8)
    kick_beats = sorted({0.0, *rng.choice([1.0, 1.5, 2.0, 2.5, 3.0, 3.5], size=2)})
    snare_beats = [1.0, 3.0] if rng.random() < 0.7 else [2.0]
    hat_step = 0.5 if rng.random() < 0.6 else 0.25
    lead_octave = int(rng.choice([12, 24]))
    melody_note = 0

    def pitch(degree: int, octave: int = 0) -> int:
        return root + scale[degree % 7] + 12 * (degree // 7) + octave

    n_bars = int(np.ceil(seconds / bar))
    for b in range(n_bars):
        t0 = b * bar
        deg = int(degrees[b % len(degrees)])
        # Pad: a triad held for the bar.
        for step in (0, 2, 4):
            sig = _tone(_hz(pitch(deg + step, 12)), bar, sr, pad_timbre, 0.08, bar * 0.9)
            _add(out, int(t0 * sr), 0.12 * sig)
        # Bass: the chord root in a per-song rhythm.
        pos = 0.0
        k = 0
        while pos < 4.0:
            dur = float(bass_pattern[k % len(bass_pattern)])
            note = pitch(deg) - 12 + (7 if (k % 4 == 3 and rng.random() < 0.4) else 0)
            sig = _tone(_hz(note), dur * beat, sr, bass_timbre, 0.01, dur * beat * 0.6)
            _add(out, int((t0 + pos * beat) * sr), 0.3 * sig)
            pos += dur
            k += 1
        # Melody: a fresh random walk on the scale every bar.
        pos = 0.0
        while pos < 4.0:
            dur = float(rng.choice([0.25, 0.5, 0.5, 1.0]))
            melody_note = int(np.clip(melody_note + rng.integers(-3, 4), -3, 11))
            if rng.random() < 0.85:
                sig = _tone(
                    _hz(pitch(melody_note, lead_octave)), dur * beat, sr, lead_timbre, 0.01, 0.4
                )
                _add(out, int((t0 + pos * beat) * sr), 0.25 * sig)
            pos += dur
        # Drums.
        for kb in kick_beats:
            _add(out, int((t0 + kb * beat) * sr), 0.5 * _kick(sr))
        for sb in snare_beats:
            _add(out, int((t0 + sb * beat) * sr), 0.25 * _noise_hit(rng, sr, 0.12, 0.05))
        hb = 0.0
        while hb < 4.0:
            _add(out, int((t0 + hb * beat) * sr), 0.06 * _noise_hit(rng, sr, 0.04, 0.01))
            hb += hat_step
    peak = float(np.max(np.abs(out))) or 1.0
    return (0.9 * out / peak).astype(np.float32)


def _kick(sr: int) -> np.ndarray:
    t = np.arange(int(0.2 * sr)) / sr
    freq = 50 + 90 * np.exp(-t / 0.03)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / 0.06)


def _noise_hit(rng: np.random.Generator, sr: int, dur: float, decay: float) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    return rng.standard_normal(t.size) * np.exp(-t / decay)


def babble(seed: int, seconds: float, sr: int = SAMPLE_RATE, voices: int = 6) -> np.ndarray:
    """Crowd babble: `voices` synthetic talkers; float32, unit RMS."""
    rng = np.random.default_rng([0xBAB, int(seed)])
    n = int(seconds * sr)
    out = np.zeros(n)
    for _ in range(voices):
        f0_base = rng.uniform(95, 240)
        pos = int(rng.uniform(0, 0.3) * sr)
        while pos < n:
            syl = rng.uniform(0.12, 0.32)
            m = int(syl * sr)
            t = np.arange(m) / sr
            f0 = f0_base * (1 + 0.08 * rng.standard_normal()) * (1 + 0.1 * (t / syl - 0.5))
            phase = 2 * np.pi * np.cumsum(f0) / sr
            f1, f2, f3 = rng.uniform(300, 850), rng.uniform(850, 2300), rng.uniform(2300, 3300)
            sig = np.zeros(m)
            for h in range(1, int(3800 / f0_base)):
                fh = f0_base * h
                amp = sum(
                    np.exp(-(((fh - f) / 120.0) ** 2)) * w
                    for f, w in ((f1, 1), (f2, 0.6), (f3, 0.3))
                )
                sig += (amp / h**0.5) * np.sin(h * phase)
            sig *= np.hanning(m)
            _add(out, pos, sig)
            pos += m + int(rng.exponential(0.08) * sr)
    rms = float(np.sqrt(np.mean(out**2))) or 1.0
    return (out / rms).astype(np.float32)


def white(seed: int, seconds: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """White noise, unit RMS."""
    rng = np.random.default_rng([0x7E, int(seed)])
    return rng.standard_normal(int(seconds * sr)).astype(np.float32)


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`signal` plus `noise` scaled to `snr_db` below it (by RMS), peak-limited to 1."""
    noise = noise[: signal.size]
    if noise.size < signal.size:
        noise = np.resize(noise, signal.size)
    ps = float(np.mean(signal.astype(np.float64) ** 2)) or 1e-12
    pn = float(np.mean(noise.astype(np.float64) ** 2)) or 1e-12
    mixed = signal + noise * np.sqrt(ps / (pn * 10 ** (snr_db / 10)))
    peak = float(np.max(np.abs(mixed))) or 1.0
    return (mixed / max(1.0, peak)).astype(np.float32)


def lowpass(
    samples: np.ndarray, cutoff_hz: float, sr: int = SAMPLE_RATE, order: int = 4
) -> np.ndarray:
    """A room-like low-pass (Butterworth)."""
    sos = butter(order, cutoff_hz, btype="low", fs=sr, output="sos")
    return sosfilt(sos, samples).astype(np.float32)


def change_speed(samples: np.ndarray, speed: float) -> np.ndarray:
    """Play `speed` times as fast (pitch and tempo together, like a turntable)."""
    up, down = 1000, int(round(1000 * speed))
    return resample_poly(samples, up, down).astype(np.float32)


def excerpt(
    samples: np.ndarray, start_s: float, seconds: float, sr: int = SAMPLE_RATE
) -> np.ndarray:
    a = int(start_s * sr)
    return samples[a : a + int(seconds * sr)]
