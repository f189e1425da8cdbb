"""Landmark fingerprints: what a device computes from a window of room audio
and sends to its node (DESIGN.md 8)."""

from __future__ import annotations

import base64
import zlib

import numpy as np
import pytest

from detection import synth
from detection.audio import AudioError, encode_pcm, read_pcm, windows
from detection.fingerprint import (
    FRAME_MS,
    MAX_ENCODED_CHARS,
    SAMPLE_RATE,
    FingerprintError,
    decode,
    encode,
    fingerprint,
)


def test_the_same_audio_always_gives_the_same_fingerprint():
    samples = synth.song(7, 6.0)
    first, second = fingerprint(samples), fingerprint(samples.copy())
    assert len(first) > 500
    assert np.array_equal(first.hashes, second.hashes)
    assert np.array_equal(first.offsets, second.offsets)
    assert first.hashes.dtype == np.uint32 and first.offsets.dtype == np.int32
    assert abs(first.duration_ms - 6000) < 200


def test_two_songs_share_few_hashes():
    a = set(fingerprint(synth.song(1, 10.0)).hashes.tolist())
    b = set(fingerprint(synth.song(2, 10.0)).hashes.tolist())
    assert len(a & b) < 0.1 * min(len(a), len(b))


def test_songs_from_different_seeds_are_different_music():
    one, two = synth.song(1, 5.0), synth.song(2, 5.0)
    assert one.shape == two.shape == (5 * SAMPLE_RATE,)
    assert not np.allclose(one, two)
    assert np.array_equal(synth.song(1, 5.0), one)


def test_silence_and_scraps_give_an_empty_fingerprint():
    assert len(fingerprint(np.zeros(5 * SAMPLE_RATE, np.float32))) == 0
    assert len(fingerprint(np.zeros(100, np.float32))) == 0


def test_a_fingerprint_travels_as_compact_base64_and_comes_back_the_same():
    fp = fingerprint(synth.song(3, 10.0))
    wire = encode(fp)
    back = decode(wire)

    assert isinstance(wire, str) and wire.isascii()
    # Far smaller than the audio it describes: a few hundred bytes a second.
    assert len(wire) < 10 * 1000
    assert np.array_equal(back.hashes, fp.hashes)
    assert np.array_equal(back.offsets, fp.offsets)
    assert back.frames == fp.frames


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not base64 at all!!",
        base64.urlsafe_b64encode(b"plain bytes").decode(),
        base64.urlsafe_b64encode(zlib.compress(b"\x09" + b"\0" * 8)).decode(),
        "A" * (MAX_ENCODED_CHARS + 1),
    ],
)
def test_garbled_fingerprints_are_refused(bad):
    with pytest.raises(FingerprintError):
        decode(bad)


def test_a_fingerprint_that_inflates_past_its_bound_is_refused():
    bomb = base64.urlsafe_b64encode(zlib.compress(b"\x01" + b"\0" * 8_000_000, 9)).decode()
    assert len(bomb) < MAX_ENCODED_CHARS
    with pytest.raises(FingerprintError):
        decode(bomb)


def test_peak_counts_that_disagree_with_the_payload_are_refused():
    fp = fingerprint(synth.song(4, 3.0))
    raw = zlib.decompress(base64.urlsafe_b64decode(encode(fp)))
    tampered = raw[:5] + (len(fp.peak_frames) + 1).to_bytes(4, "little") + raw[9:]
    with pytest.raises(FingerprintError):
        decode(base64.urlsafe_b64encode(zlib.compress(tampered)).decode())


@pytest.mark.parametrize("codec", ["wav", "flac", "mp3", "opus"])
def test_any_audio_file_is_read_as_mono_at_the_fingerprint_rate(codec):
    samples = synth.song(5, 4.0)
    pcm = read_pcm(encode_pcm(samples, codec, out_rate=44_100))
    assert pcm.dtype == np.float32
    assert abs(pcm.size - samples.size) < 0.05 * SAMPLE_RATE + 2000
    assert 0.05 < float(np.sqrt(np.mean(pcm**2))) < 1.0


def test_a_file_that_is_not_audio_is_an_audio_error(tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"ID3 this is not an mp3" * 100)
    with pytest.raises(AudioError):
        read_pcm(junk)


def test_windows_cut_a_stream_into_fixed_overlapping_pieces():
    chunks = (np.full(3000, i, np.float32) for i in range(10))  # 30,000 samples
    cut = list(windows(chunks, window_s=1.0, hop_s=0.5))
    assert [start for start, _ in cut] == [i * 4000 for i in range(6)]
    assert all(w.size == SAMPLE_RATE for _, w in cut)


def test_offsets_are_counted_in_frames_of_fixed_length():
    assert FRAME_MS == pytest.approx(32.0)
