"""The ladder itself, without a node: masters of other rates and levels come out as
the same renditions, the preview is the faded middle of the track, and an encoder
that breaks stops the task with its error instead of leaving it hanging."""

from __future__ import annotations

import json

import av
import numpy as np
import pytest

from media import synth, transcode
from media.transcode import PARTS, run_part


def decoded(path) -> tuple[dict, np.ndarray]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        pcm = np.concatenate([f.to_ndarray() for f in c.decode(s)], axis=1)
        rate = s.codec_context.sample_rate
        seconds = pcm.shape[1] / rate
        info = {
            "codec": s.codec_context.name,
            "rate": rate,
            "channels": s.codec_context.channels,
            "seconds": seconds,
            "kbps": path.stat().st_size * 8 / 1000 / seconds,
        }
    return info, pcm


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def test_a_96khz_master_becomes_48khz_renditions_at_their_bitrates(tmp_path):
    master = tmp_path / "master.wav"
    master.write_bytes(synth.encode(synth.master(12, rate=96000), "wav", rate=96000))
    result = run_part(str(master), str(tmp_path / "out"), PARTS[0], 12_000)

    for quality, codec, kbps in (
        ("opus", "opus", 160),
        ("mp3_320", "mp3", 320),
        ("mp3_128", "mp3", 128),
        ("preview", "mp3", 128),
    ):
        info, _ = decoded(tmp_path / "out" / transcode.RENDITIONS[quality].filename)
        assert info["codec"].startswith(codec)
        assert (info["rate"], info["channels"]) == (48000, 2)
        assert abs(info["seconds"] - 12) < 0.1  # shorter than 30 s: the preview is all of it
        assert abs(info["kbps"] - kbps) < kbps * (0.25 if codec == "opus" else 0.05)
        assert result["files"][quality]["sample_rate"] == 48000
        assert abs(result["files"][quality]["duration_ms"] - 12_000) < 100
    assert result["duration_ms"] == 12_000
    assert -30 < result["loudness_lufs"] < 0
    waveform = json.loads((tmp_path / "out" / result["waveform"]).read_text())
    assert waveform["length"] == len(waveform["peaks"]) == 1000


def test_the_preview_is_30_seconds_from_a_third_in_faded_at_both_ends(tmp_path):
    rate = 44100
    # 60 s: quiet for the first 20 s, loud after; the preview is 20..50 s.
    pcm = synth.master(60, rate=rate)
    pcm[:, : 20 * rate] *= 0.05
    master = tmp_path / "master.flac"
    master.write_bytes(synth.encode(pcm, "flac"))
    result = run_part(str(master), str(tmp_path / "out"), PARTS[0], 60_000)

    info, preview = decoded(tmp_path / "out" / "preview.mp3")
    assert abs(info["seconds"] - 30) < 0.1
    assert result["files"]["preview"]["duration_ms"] == pytest.approx(30_000, abs=100)
    loud = rms(pcm[:, 30 * rate : 40 * rate])
    # All of it from the loud part: the middle as loud as the master's own.
    assert rms(preview[:, 10 * rate : 20 * rate]) == pytest.approx(loud, rel=0.1)
    # Fades: the first and last 100 ms (of the 1 s ramps) are far quieter.
    tenth = rate // 10
    assert rms(preview[:, 2000 : 2000 + tenth]) < loud * 0.2
    assert rms(preview[:, -tenth - 2000 : -2000]) < loud * 0.2


def test_an_encoder_that_breaks_stops_the_ladder_with_its_error(tmp_path, monkeypatch):
    master = tmp_path / "master.flac"
    master.write_bytes(synth.encode(synth.master(20), "flac"))
    real_open = transcode._Encoder._open

    def broken(self):
        if self.rendition.quality == "opus":
            raise RuntimeError("the opus encoder is broken")
        return real_open(self)

    monkeypatch.setattr(transcode._Encoder, "_open", broken)
    # Small queues, so the decoder would block on the broken encoder if it stopped reading.
    monkeypatch.setattr(transcode, "QUEUE_BLOCKS", 1)
    monkeypatch.setattr(transcode, "BLOCK", 1024)
    with pytest.raises(RuntimeError, match="opus encoder is broken"):
        run_part(str(master), str(tmp_path / "out"), PARTS[0], 20_000)


def test_a_failure_while_decoding_ends_the_encoders_and_is_raised(tmp_path, monkeypatch):
    master = tmp_path / "master.wav"
    master.write_bytes(synth.encode(synth.master(20), "wav"))
    real_add = transcode.PeakMeter.add
    calls = 0

    def add(self, planar):
        nonlocal calls
        calls += 1
        if calls > 3:
            raise ValueError("the analysis gave up")
        real_add(self, planar)

    monkeypatch.setattr(transcode.PeakMeter, "add", add)
    with pytest.raises(ValueError, match="analysis gave up"):
        run_part(str(master), str(tmp_path / "out"), PARTS[0], 20_000)
