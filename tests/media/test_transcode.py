"""After an upload, the node makes the ladder: the original kept, Opus 160k, MP3 320k
and 128k, a 30-second preview, loudness, a waveform and covers. Checked by
decoding what was stored, not by trusting what the pipeline says."""

from __future__ import annotations

import io
import json

import av
from aiohttp import FormData
from PIL import Image
from sqlalchemy import select, update

from media import synth
from media.storage import storage_of
from node.models import Job, Track, utcnow


async def upload(node, user: str, data: bytes, filename: str, title: str) -> dict:
    f = FormData()
    f.add_field("title", title)
    f.add_field("file", data, filename=filename, content_type="application/octet-stream")
    r = await node.client.post("/api/v1/tracks", data=f, headers=node.auth(user))
    assert r.status == 201, await r.text()
    return await r.json()


async def status(node, uuid: str, user: str = "ana") -> dict:
    r = await node.client.get(f"/api/v1/tracks/{uuid}", headers=node.auth(user))
    assert r.status == 200
    return await r.json()


async def media_of(node, uuid: str) -> dict:
    async with node.ctx.db.read_session() as s:
        return (await s.scalar(select(Track).where(Track.uuid == uuid))).media


def decode(data: bytes) -> dict:
    with av.open(io.BytesIO(data)) as c:
        s = c.streams.audio[0]
        samples = sum(f.samples for f in c.decode(s))
        return {
            "format": c.format.name,
            "codec": s.codec_context.name,
            "rate": s.codec_context.sample_rate,
            "channels": s.codec_context.channels,
            "seconds": samples / s.codec_context.sample_rate,
            "kbps": len(data) * 8 / 1000 / (samples / s.codec_context.sample_rate),
        }


async def test_an_uploaded_master_becomes_every_rendition_with_loudness_waveform_and_covers(node):
    await node.user("ana", "artist")
    master = synth.encode(
        synth.master(40),
        "flac",
        tags={"title": "Ladder", "album": "Tests"},
        cover=synth.cover_png(700),
    )
    track = await upload(node, "ana", master, "ladder.flac", "Ladder")
    assert track["state"] == "processing"

    await node.run_jobs()

    shown = await status(node, track["uuid"])
    assert shown["state"] == "ready"
    assert shown["formats"] == ["mp3_128", "mp3_320", "opus", "original", "preview"]
    assert shown["processing"]["error"] is None
    media = await media_of(node, track["uuid"])
    storage = storage_of(node.ctx)
    files = media["files"]
    for quality in files:
        assert files[quality]["key"] == (
            f"audio/ana/{track['uuid']}/{quality}."
            + {"opus": "ogg", "original": "flac"}.get(quality, "mp3")
        )

    original = await storage.get_bytes(files["original"]["key"])
    assert original == master

    opus = decode(await storage.get_bytes(files["opus"]["key"]))
    assert (opus["format"], opus["codec"], opus["rate"], opus["channels"]) == (
        "ogg",
        "opus",
        48000,
        2,
    )
    assert abs(opus["seconds"] - 40) < 0.1
    assert 120 < opus["kbps"] < 200

    for quality, kbps in (("mp3_320", 320), ("mp3_128", 128)):
        out = decode(await storage.get_bytes(files[quality]["key"]))
        assert out["format"] == "mp3" and out["codec"].startswith("mp3")
        assert out["rate"] == 44100 and out["channels"] == 2
        assert abs(out["seconds"] - 40) < 0.1
        assert abs(out["kbps"] - kbps) < kbps * 0.05
        assert files[quality]["bitrate"] == kbps * 1000

    preview = decode(await storage.get_bytes(files["preview"]["key"]))
    assert abs(preview["seconds"] - 30) < 0.1

    assert -30 < media["loudness_lufs"] < 0
    waveform = json.loads(await storage.get_bytes(media["waveform"]))
    assert waveform["length"] == len(waveform["peaks"]) == 1000
    assert all(0 <= p <= 1 for p in waveform["peaks"]) and max(waveform["peaks"]) > 0.5

    for size in ("1200", "600", "300", "64"):
        img = Image.open(io.BytesIO(await storage.get_bytes(media["cover"][size])))
        assert img.format == "JPEG"
        # A 700 px source is not blown up to 1200.
        assert img.size == (min(int(size), 700),) * 2

    assert shown["duration_ms"] == 40000


async def test_a_mono_mp3_and_a_short_clip_keep_their_shape(node):
    await node.user("ana", "artist")
    track = await upload(
        node, "ana", synth.encode(synth.master(12, channels=1), "mp3"), "mono.mp3", "Mono"
    )
    await node.run_jobs()
    media = await media_of(node, track["uuid"])
    storage = storage_of(node.ctx)
    opus = decode(await storage.get_bytes(media["files"]["opus"]["key"]))
    assert opus["channels"] == 1
    # Shorter than 30 s: the preview is the whole clip.
    preview = decode(await storage.get_bytes(media["files"]["preview"]["key"]))
    assert abs(preview["seconds"] - 12) < 0.1
    assert "cover" not in media


async def test_a_failed_transcode_is_retried_and_shown_to_the_artist(node):
    await node.user("ana", "artist")
    track = await upload(node, "ana", synth.encode(synth.master(5), "wav"), "x.wav", "Flaky")
    # The storage cannot write under the artist's folder: something in the way.
    blocker = node.settings.data_dir / "media" / "audio" / "ana"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("in the way")

    await node.run_jobs()
    shown = await status(node, track["uuid"])
    assert shown["state"] == "processing"  # a retry is coming
    assert shown["processing"]["attempts"] == 1
    assert shown["processing"]["error"]
    # Fans see no error details.
    await node.user("fan", "fan")
    r = await node.client.get(f"/api/v1/tracks/{track['uuid']}", headers=node.auth("fan"))
    assert r.status == 404  # not public yet either

    blocker.unlink()
    async with node.ctx.db.transaction() as s:  # the backoff has passed
        await s.execute(update(Job).where(Job.state == "queued").values(next_attempt_at=utcnow()))
    await node.run_jobs()
    shown = await status(node, track["uuid"])
    assert shown["state"] == "ready"
    assert shown["processing"] == {"error": None, "attempts": 2}


async def test_a_master_that_is_gone_fails_at_once(node):
    await node.user("ana", "artist")
    track = await upload(node, "ana", synth.encode(synth.master(3), "wav"), "x.wav", "Gone")
    async with node.ctx.db.read_session() as s:
        row = await s.scalar(select(Track).where(Track.uuid == track["uuid"]))
    (node.settings.data_dir / row.original_path).unlink()
    await node.run_jobs()
    shown = await status(node, track["uuid"])
    assert shown["state"] == "failed"
    assert "missing" in shown["processing"]["error"]
