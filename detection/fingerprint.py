"""Landmark audio fingerprints (after Wang 2003, "An Industrial-Strength Audio
Search Algorithm"), shared by the node and the device agent.

One module with numpy and scipy only, so a device computes exactly what the
node indexes. The steps:

1. A magnitude spectrogram (Hann window, `N_FFT` samples, hop `HOP`) of mono
   float32 audio at `SAMPLE_RATE`.
2. Whitening in both directions: a peak's prominence is the smaller of its
   height over the smoothed spectrum of its frame (an equaliser or a room's
   low-pass is a slow gain across frequency) and over the running level of
   its frequency across ~4 s (stationary noise and held chords). Picking
   on prominence in time favours onsets, which is what makes two songs in
   the same key with the same chords tell apart.
3. 2-D local maxima (time x frequency neighbourhood) above a prominence floor,
   then density control: at most `PEAKS_PER_SECOND` strongest peaks in each
   one-second block, so noise cannot flood the index and silence adds nothing.
4. Each peak is an anchor paired with up to `FANOUT` later peaks in a target
   zone; a pair becomes a 21-bit hash (anchor frequency bucket, frequency
   step, time step) with the anchor's frame as its offset.

Frequencies are bucketed on a logarithmic scale (`BUCKET_RATIO` wide), so a
playback speed change is a shift of every bucket by the same amount and the
frequency step of a pair barely moves. The node undoes a speed change by
rescaling the peaks (`hashes_for_speed`) and hashing again: that is why a
`Fingerprint` carries its peaks, and why the compact wire form (`encode`)
holds peaks, not hashes (a peak list is also ~8x smaller than its hashes).
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from scipy import fft as scipy_fft
from scipy.ndimage import uniform_filter1d

SAMPLE_RATE = 8000
N_FFT = 1024
HOP = 256
FRAMES_PER_SECOND = SAMPLE_RATE / HOP  # 31.25
FRAME_MS = 1000.0 * HOP / SAMPLE_RATE  # 32 ms

F_MIN_HZ = 150.0
F_MAX_HZ = 3800.0
BUCKET_RATIO = 0.015  # log-frequency bucket width (1.5 %)
PEAK_TIME_NEIGHBOURHOOD = 9  # frames (~0.29 s)
PEAK_FREQ_NEIGHBOURHOOD = 17  # bins (~133 Hz)
ENVELOPE_BINS = 41
TIME_ENVELOPE_FRAMES = 125  # ~4 s
PROMINENCE_DB = 3.0
FLOOR_BELOW_MAX_DB = 70.0
PEAKS_PER_SECOND = 30
INDEX_PEAKS_PER_SECOND = PEAKS_PER_SECOND
QUERY_PEAKS_PER_SECOND = 45
FANOUT = 10
DT_MIN, DT_MAX = 1, 63  # frames
DF_MAX = 63  # buckets either side
HASH_BITS = 21  # anchor bucket (8 bits), frequency step (7), time step (6)
MAX_PAIR_LOOKAHEAD = 48  # later peaks examined per anchor

# Wire form bounds: a batch item must stay small whatever a device sends.
MAX_ENCODED_PEAKS = 30_000  # ~15 minutes of audio at the peak density above
MAX_ENCODED_CHARS = 200_000
_WIRE_VERSION = 1
_FREQ_SCALE = 8  # peak frequencies travel in 1/8 of a bin

_BIN_HZ = SAMPLE_RATE / N_FFT
_BIN_LO = int(np.floor(F_MIN_HZ / _BIN_HZ))
_BIN_HI = int(np.ceil(F_MAX_HZ / _BIN_HZ))
_LOG_STEP = float(np.log1p(BUCKET_RATIO))
_WINDOW = np.hanning(N_FFT).astype(np.float32)


class FingerprintError(ValueError):
    """A wire-form fingerprint that cannot be decoded (bad base64, too big, garbled)."""


@dataclass(frozen=True)
class Fingerprint:
    """Hashes with their anchor frames, plus the peaks they were made from.

    `hashes` (uint32) and `offsets` (int32, frames of `FRAME_MS`) are parallel
    arrays; `peak_frames` (int32) and `peak_bins` (float32, fractional FFT bins)
    are the spectral peaks, sorted by frame.
    """

    hashes: np.ndarray
    offsets: np.ndarray
    peak_frames: np.ndarray
    peak_bins: np.ndarray
    frames: int

    @property
    def duration_ms(self) -> int:
        return int(round(self.frames * FRAME_MS))

    def __len__(self) -> int:
        return int(self.hashes.size)


def empty() -> Fingerprint:
    return Fingerprint(
        np.zeros(0, np.uint32),
        np.zeros(0, np.int32),
        np.zeros(0, np.int32),
        np.zeros(0, np.float32),
        0,
    )


def _frames(samples: np.ndarray) -> np.ndarray:
    """Hann-windowed analysis frames, shape (frames, `N_FFT`), float32."""
    x = np.asarray(samples, dtype=np.float32).ravel()
    if x.size < N_FFT:
        return np.zeros((0, N_FFT), np.float32)
    n_frames = 1 + (x.size - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(
        x, shape=(n_frames, N_FFT), strides=(x.strides[0] * HOP, x.strides[0]), writeable=False
    )
    return frames * _WINDOW


def spectrogram(samples: np.ndarray) -> np.ndarray:
    """Log-magnitude spectrogram (dB), shape (frames, bins), of mono audio."""
    frames = _frames(samples)
    if frames.shape[0] == 0:
        return np.zeros((0, N_FFT // 2 + 1), np.float32)
    mag = np.abs(scipy_fft.rfft(frames, axis=1)).astype(np.float32)
    return 20.0 * np.log10(mag + 1e-6)


def _band_db(samples: np.ndarray) -> np.ndarray:
    """Power (dB) of the landmark band, averaged over 3 frames, shape (frames, band bins).

    The average is of power, not of dB: it steadies noise and keeps tones
    and onsets. Only the band's bins are squared and logged.
    """
    frames = _frames(samples)
    if frames.shape[0] == 0:
        return np.zeros((0, _BIN_HI - _BIN_LO), np.float32)
    spec = scipy_fft.rfft(frames, axis=1)[:, _BIN_LO:_BIN_HI]
    power = spec.real * spec.real + spec.imag * spec.imag + np.float32(1e-12)
    smooth = power.copy()  # a 3-frame mean with the edges repeated
    smooth[1:] += power[:-1]
    smooth[0] += power[0]
    smooth[:-1] += power[1:]
    smooth[-1] += power[-1]
    return np.float32(10.0) * np.log10(smooth * np.float32(1.0 / 3.0))


def _sliding_max(x: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Centred running maximum of odd `size` along `axis` (outside the array counts
    as -inf), by doubling: log2(size) elementwise maxima instead of `size`."""
    r = size // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    m = np.pad(x, pad, constant_values=-np.inf)

    def shifted(a: np.ndarray, lo: int, hi: int | None) -> np.ndarray:
        idx = [slice(None)] * a.ndim
        idx[axis] = slice(lo, hi)
        return a[tuple(idx)]

    width = 1
    while width * 2 <= size:
        m = np.maximum(shifted(m, 0, -width), shifted(m, width, None))
        width *= 2
    rest = size - width
    if rest:
        m = np.maximum(shifted(m, 0, -rest), shifted(m, rest, None))
    return m


def find_peaks(
    samples: np.ndarray, peaks_per_second: int = PEAKS_PER_SECOND
) -> tuple[np.ndarray, np.ndarray, int]:
    """Spectral landmark peaks: (frames int32, fractional bins float32, frame count)."""
    band = _band_db(samples)
    n_frames = band.shape[0]
    if n_frames == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.float32), 0
    # A peak must stand out against its neighbours in frequency (whitening)
    # AND against the same frequency over the last/next ~2 s (steady noise,
    # held chords and the room's equalisation all sit in that running level).
    across = band - uniform_filter1d(band, size=ENVELOPE_BINS, axis=1, mode="nearest")
    along = band - uniform_filter1d(band, size=TIME_ENVELOPE_FRAMES, axis=0, mode="nearest")
    white = np.minimum(across, along)
    local_max = _sliding_max(
        _sliding_max(white, PEAK_TIME_NEIGHBOURHOOD, 0), PEAK_FREQ_NEIGHBOURHOOD, 1
    )
    floor = float(band.max()) - FLOOR_BELOW_MAX_DB
    is_peak = (white == local_max) & (white > PROMINENCE_DB) & (band > floor)
    # Interior bins only, so parabolic interpolation has both neighbours.
    is_peak[:, 0] = False
    is_peak[:, -1] = False
    t, k = np.nonzero(is_peak)
    if t.size == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.float32), n_frames
    strength = white[t, k]
    keep = _densest(t, strength, peaks_per_second)
    t, k = t[keep], k[keep]
    a, b, c = band[t, k - 1], band[t, k], band[t, k + 1]
    denom = a - 2.0 * b + c
    delta = np.where(np.abs(denom) > 1e-9, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    bins = k + _BIN_LO + np.clip(delta, -0.5, 0.5)
    # Rounded to what the wire form carries, so decode(encode(fp)) == fp.
    bins = (np.rint(bins * _FREQ_SCALE) / _FREQ_SCALE).astype(np.float32)
    order = np.lexsort((bins, t))
    return t[order].astype(np.int32), bins[order], n_frames


def _densest(t: np.ndarray, strength: np.ndarray, per_second: int) -> np.ndarray:
    """Indices of the strongest `per_second` peaks in each one-second block."""
    block_frames = int(round(FRAMES_PER_SECOND))
    block = t // block_frames
    order = np.lexsort((-strength, block))
    sorted_block = block[order]
    starts = np.searchsorted(sorted_block, sorted_block, side="left")
    rank = np.arange(sorted_block.size) - starts
    return np.sort(order[rank < per_second])


def bucket_of(bins: np.ndarray) -> np.ndarray:
    """Log-frequency bucket of fractional FFT bins (0 at `F_MIN_HZ`)."""
    hz = np.maximum(np.asarray(bins, np.float64) * _BIN_HZ, F_MIN_HZ)
    return np.floor(np.log(hz / F_MIN_HZ) / _LOG_STEP).astype(np.int64)


def hashes_for_speed(
    peak_frames: np.ndarray, peak_bins: np.ndarray, speed: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Pair peaks into (hashes uint32, offsets int32), undoing a playback `speed`.

    Audio played `speed` times too fast has frequencies times `speed` and times
    divided by it; the peaks are mapped back before hashing, so the offsets
    are in the reference (catalog) time base.
    """
    n = int(peak_frames.size)
    if n < 2:
        return np.zeros(0, np.uint32), np.zeros(0, np.int32)
    if speed == 1.0:
        times = peak_frames.astype(np.float64)
        buckets = bucket_of(peak_bins)
    else:
        times = peak_frames.astype(np.float64) * speed
        buckets = bucket_of(np.asarray(peak_bins, np.float64) / speed)
    look = min(MAX_PAIR_LOOKAHEAD, n - 1)
    i = np.arange(n)[:, None]
    j = i + np.arange(1, look + 1)[None, :]
    valid_j = j < n
    j = np.where(valid_j, j, n - 1)
    dt = np.rint(times[j] - times[i]).astype(np.int64)
    df = buckets[j] - buckets[i]
    ok = valid_j & (dt >= DT_MIN) & (dt <= DT_MAX) & (np.abs(df) <= DF_MAX)
    ok &= np.cumsum(ok, axis=1) <= FANOUT
    ii, jj = np.nonzero(ok)
    jj = j[ii, jj]
    b1 = np.clip(buckets[ii], 0, 255)
    d = (buckets[jj] - buckets[ii]) + DF_MAX
    t = np.rint(times[jj] - times[ii]).astype(np.int64)
    h = (b1 << 13) | (d << 6) | t
    offsets = np.rint(times[ii]).astype(np.int32)
    return h.astype(np.uint32), offsets


def fingerprint(samples: np.ndarray, *, peaks_per_second: int | None = None) -> Fingerprint:
    """The fingerprint of float32 mono audio at `SAMPLE_RATE`.

    Queries (the default) keep more peaks per second than catalogue tracks
    (`INDEX_PEAKS_PER_SECOND`): under noise some of a query's strongest
    peaks are noise, and the extra ones give the catalogue's peaks more
    chances to be found, while the index stays small.
    """
    frames, bins, n_frames = find_peaks(samples, peaks_per_second or QUERY_PEAKS_PER_SECOND)
    hashes, offsets = hashes_for_speed(frames, bins)
    return Fingerprint(hashes, offsets, frames, bins, n_frames)


def fingerprint_track(samples: np.ndarray) -> Fingerprint:
    """The fingerprint a catalogue track is indexed with (`INDEX_PEAKS_PER_SECOND`)."""
    return fingerprint(samples, peaks_per_second=INDEX_PEAKS_PER_SECOND)


def from_peaks(peak_frames: np.ndarray, peak_bins: np.ndarray, frames: int) -> Fingerprint:
    """A fingerprint rebuilt from its peaks (what `decode` does)."""
    hashes, offsets = hashes_for_speed(peak_frames, peak_bins)
    return Fingerprint(hashes, offsets, peak_frames, peak_bins, frames)


def encode(fp: Fingerprint) -> str:
    """Compact URL-safe base64 of a fingerprint's peaks (zlib-compressed).

    Layout: version u8, frames u32, peak count u32, then frame deltas (u16)
    and frequencies in 1/8 bin (u16). Hashes are rebuilt by `decode`.
    """
    n = int(fp.peak_frames.size)
    if n > MAX_ENCODED_PEAKS:
        raise FingerprintError(f"fingerprint has {n} peaks, at most {MAX_ENCODED_PEAKS} travel")
    frames = fp.peak_frames.astype(np.int64)
    deltas = np.diff(frames, prepend=0)
    if n and (deltas.min() < 0 or deltas.max() > 0xFFFF):
        raise FingerprintError("peak frames must be sorted and less than 65535 frames apart")
    freqs = np.rint(fp.peak_bins.astype(np.float64) * _FREQ_SCALE).astype(np.int64)
    freqs = np.clip(freqs, 0, 0xFFFF)
    body = struct.pack("<BII", _WIRE_VERSION, int(fp.frames), n)
    body += deltas.astype("<u2").tobytes() + freqs.astype("<u2").tobytes()
    return base64.urlsafe_b64encode(zlib.compress(body, 9)).decode("ascii")


def decode(s: str) -> Fingerprint:
    """Inverse of `encode`; raises `FingerprintError` on anything malformed or too big."""
    if not isinstance(s, str) or len(s) > MAX_ENCODED_CHARS:
        raise FingerprintError("fingerprint is not a string of bounded length")
    try:
        raw = base64.urlsafe_b64decode(s.encode("ascii"))
        limit = 9 + 4 * MAX_ENCODED_PEAKS
        dec = zlib.decompressobj()
        body = dec.decompress(raw, limit + 1)
        if len(body) > limit or dec.unconsumed_tail:
            raise FingerprintError("fingerprint too large")
    except (ValueError, zlib.error, UnicodeEncodeError) as exc:
        if isinstance(exc, FingerprintError):
            raise
        raise FingerprintError(f"fingerprint is not valid base64/zlib: {exc}") from None
    if len(body) < 9:
        raise FingerprintError("fingerprint header is truncated")
    version, frames, n = struct.unpack_from("<BII", body)
    if version != _WIRE_VERSION:
        raise FingerprintError(f"unknown fingerprint version {version}")
    if n > MAX_ENCODED_PEAKS or len(body) != 9 + 4 * n:
        raise FingerprintError("fingerprint peak count does not match its length")
    deltas = np.frombuffer(body, "<u2", n, 9).astype(np.int64)
    freqs = np.frombuffer(body, "<u2", n, 9 + 2 * n).astype(np.float32) / _FREQ_SCALE
    peak_frames = np.cumsum(deltas)
    if n and (peak_frames[-1] > frames or peak_frames[-1] > 2**31 - 1):
        raise FingerprintError("fingerprint peaks run past its length")
    if n and (freqs.min() < _BIN_LO - 1 or freqs.max() > _BIN_HI + 1):
        raise FingerprintError("fingerprint peak frequency out of range")
    return from_peaks(peak_frames.astype(np.int32), freqs.astype(np.float32), int(frames))
