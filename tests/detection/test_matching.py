"""Recognising catalogue music in a noisy room: excerpts of indexed songs are
found (with where they start) through crowd noise, hiss, a muffled room, a
slightly wrong speed and lossy codecs; music outside the catalogue and noise
alone are turned away."""

from __future__ import annotations

import numpy as np
import pytest

from detection import synth
from detection.audio import encode_pcm, read_pcm
from detection.fingerprint import fingerprint
from detection.index import Postings
from detection.matching import best_candidate

from .conftest import CATALOG_SEEDS

EXCERPTS = [(2, 3.0), (6, 9.5), (11, 15.0)]  # (song seed, start second)


@pytest.fixture(scope="module")
def index(song_prints) -> Postings:
    """The catalogue's postings, as the node's snapshot holds them (track id = seed)."""
    hashes = np.concatenate([fp.hashes for fp in song_prints.values()])
    frames = np.concatenate([fp.offsets for fp in song_prints.values()])
    tracks = np.concatenate([np.full(len(fp), seed) for seed, fp in song_prints.items()])
    return Postings.build(hashes, tracks, frames)


def recognise(index: Postings, samples: np.ndarray):
    cand = best_candidate(index, fingerprint(samples))
    return cand if cand.accepted else None


def room(name: str, clip: np.ndarray, k: int) -> np.ndarray:
    if name == "babble at 5 dB":
        return synth.mix_at_snr(clip, synth.babble(k, 6.0), 5)
    if name == "white noise at 5 dB":
        return synth.mix_at_snr(clip, synth.white(k, 6.0), 5)
    if name == "a muffled room (low-pass 1 kHz)":
        return synth.lowpass(clip, 1000.0)
    if name == "2% fast":
        return synth.change_speed(clip, 1.02)
    if name == "2% slow":
        return synth.change_speed(clip, 0.98)
    if name == "MP3 at 64 kbit/s":
        return read_pcm(encode_pcm(clip, "mp3", bitrate=64_000))
    if name == "Opus at 32 kbit/s":
        return read_pcm(encode_pcm(clip, "opus", bitrate=32_000))
    if name == "babble at 5 dB, low-pass, then MP3":
        noisy = synth.lowpass(synth.mix_at_snr(clip, synth.babble(k, 6.0), 5), 1500.0)
        return read_pcm(encode_pcm(noisy, "mp3", bitrate=64_000))
    raise AssertionError(name)


def test_a_clean_excerpt_is_found_at_its_place_in_the_song(index, songs):
    for seed, start in EXCERPTS:
        found = recognise(index, synth.excerpt(songs[seed], start, 5.0))
        assert found is not None and found.track_id == seed
        assert abs(found.offset_ms - start * 1000) <= 70
        assert found.confidence > 0.5


@pytest.mark.parametrize(
    "condition",
    [
        "babble at 5 dB",
        "white noise at 5 dB",
        "a muffled room (low-pass 1 kHz)",
        "2% fast",
        "2% slow",
        "MP3 at 64 kbit/s",
        "Opus at 32 kbit/s",
        "babble at 5 dB, low-pass, then MP3",
    ],
)
def test_a_five_second_excerpt_is_recognised_in(condition, index, songs):
    for k, (seed, start) in enumerate(EXCERPTS):
        heard = room(condition, synth.excerpt(songs[seed], start, 5.0), k)
        found = recognise(index, heard)
        assert found is not None, f"song {seed} not recognised in {condition}"
        assert found.track_id == seed
        # The position survives too (a 2% speed change moves it by 2%).
        assert abs(found.offset_ms - start * 1000) <= 0.025 * start * 1000 + 100


def test_a_ten_second_excerpt_is_recognised_through_babble_as_loud_as_the_music(index, songs):
    for k, (seed, start) in enumerate(EXCERPTS):
        heard = synth.mix_at_snr(synth.excerpt(songs[seed], start, 8.0), synth.babble(k, 9.0), 0)
        found = recognise(index, heard)
        assert found is not None and found.track_id == seed


@pytest.mark.parametrize("seed", [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008])
def test_music_outside_the_catalogue_is_not_recognised(index, seed):
    assert seed not in CATALOG_SEEDS
    song = synth.song(seed, 6.0)
    assert recognise(index, song[: 5 * 8000]) is None
    assert recognise(index, synth.mix_at_snr(song, synth.babble(seed, 6.0), 10)) is None


def test_noise_and_silence_alone_are_not_recognised(index):
    assert recognise(index, synth.babble(1, 5.0) * 0.1) is None
    assert recognise(index, synth.white(1, 5.0) * 0.1) is None
    assert recognise(index, np.zeros(5 * 8000, np.float32)) is None
