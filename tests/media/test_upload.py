"""An artist uploads masters through the API: every accepted format is taken,
decoded and described; bad files get a clear problem and leave nothing behind."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from aiohttp import FormData
from sqlalchemy import func, select

from media import synth
from node.models import Track

SHORT = synth.master(4)


def form(data: bytes, filename: str, **fields: str) -> FormData:
    f = FormData()
    for k, v in fields.items():
        f.add_field(k, v)
    f.add_field("file", data, filename=filename, content_type="application/octet-stream")
    return f


async def upload(node, user: str, data: bytes, filename: str, **fields: str):
    return await node.client.post(
        "/api/v1/tracks", data=form(data, filename, **fields), headers=node.auth(user)
    )


def leftovers(node) -> list[str]:
    """Files the node kept anywhere under its upload and scratch directories."""
    found = []
    for sub in ("uploads", "tmp", "media"):
        root = node.settings.data_dir / sub
        if root.exists():
            found += [str(p) for p in root.rglob("*") if p.is_file()]
    return found


async def track_count(node) -> int:
    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(func.count()).select_from(Track))


@pytest.mark.parametrize("fmt", list(synth.FORMATS))
async def test_every_accepted_format_is_taken_and_described_from_its_decoded_audio(node, fmt):
    await node.user("ana", "artist")
    ext = synth.FORMATS[fmt][2]
    r = await upload(node, "ana", synth.encode(SHORT, fmt), f"take.{ext}", title=f"Take {fmt}")
    assert r.status == 201, await r.text()
    track = await r.json()
    assert track["title"] == f"Take {fmt}"
    assert track["state"] == "processing"
    # The duration is the decoded one, whatever the container said.
    assert abs(track["duration_ms"] - 4000) <= 60

    r = await node.client.get(f"/api/v1/tracks/{track['uuid']}", headers=node.auth("ana"))
    assert (await r.json())["state"] == "processing"


async def test_the_title_defaults_to_the_tags_then_the_file_name(node):
    await node.user("ana", "artist")
    tagged = synth.encode(SHORT, "flac", tags={"title": "Tagged Name", "genre": "house"})
    r = await upload(node, "ana", tagged, "01 whatever.flac")
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["title"] == "Tagged Name"
    assert body["genres"] == ["house"]

    r = await upload(node, "ana", synth.encode(SHORT, "wav"), "Night Bus.wav")
    assert r.status == 201, await r.text()
    assert (await r.json())["title"] == "Night Bus"


BAD = {
    "random bytes named .wav": (lambda: os.urandom(64_000), "noise.wav", 415, "not an audio file"),
    "a PNG renamed .mp3": (lambda: synth.cover_png(64), "song.mp3", 415, "no audio"),
    "a truncated FLAC": (
        lambda: synth.encode(synth.master(8), "flac")[:30_000],
        "cut.flac",
        422,
        "corrupt",
    ),
    "a truncated WAV": (
        lambda: synth.encode(synth.master(8), "wav")[:200_000],
        "cut.wav",
        422,
        "truncated",
    ),
    "an empty file": (lambda: b"", "empty.wav", 422, "empty"),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_a_bad_file_gets_a_clear_problem_and_leaves_nothing_behind(node, case):
    make, name, status, words = BAD[case]
    await node.user("ana", "artist")
    r = await upload(node, "ana", make(), name, title="Nope")
    assert r.status == status, await r.text()
    assert r.content_type == "application/problem+json"
    assert words in (await r.json())["detail"]
    assert await track_count(node) == 0
    assert leftovers(node) == []


async def test_audio_longer_than_the_node_accepts_is_refused(tmp_path, databases, aiohttp_client):
    from tests.conftest import build_node

    node = await build_node(tmp_path / "n", databases, **{"media.max_duration_seconds": 3})
    node.client = await aiohttp_client(node.app)
    await node.user("ana", "artist")
    r = await upload(node, "ana", synth.encode(SHORT, "flac"), "long.flac", title="Long")
    assert r.status == 422
    assert "too long" in (await r.json())["detail"]
    assert await track_count(node) == 0
    assert leftovers(node) == []


async def test_fans_cannot_upload(node):
    await node.user("fan", "fan")
    r = await upload(node, "fan", synth.encode(SHORT, "wav"), "x.wav", title="x")
    assert r.status == 403
    assert await track_count(node) == 0


async def test_a_file_larger_than_the_node_accepts_is_refused(tmp_path, databases, aiohttp_client):
    from tests.conftest import build_node

    node = await build_node(tmp_path / "n", databases, **{"media.max_upload_bytes": 200_000})
    node.client = await aiohttp_client(node.app)
    await node.user("ana", "artist")
    r = await upload(node, "ana", synth.encode(SHORT, "wav"), "big.wav", title="Big")
    assert r.status == 413
    assert r.content_type == "application/problem+json"
    assert await track_count(node) == 0
    assert leftovers(node) == []


async def test_the_master_is_kept_once_in_storage_after_processing(node):
    from media.storage import STORAGE

    await node.user("ana", "artist")
    master = synth.encode(SHORT, "flac")
    r = await upload(node, "ana", master, "take.flac", title="Once")
    assert r.status == 201, await r.text()
    uuid = (await r.json())["uuid"]
    # Until the pipeline has run, the upload waits under DATA/uploads (and
    # nothing is left in the scratch folder the body was spooled to).
    data = str(node.settings.data_dir)
    kept = leftovers(node)
    assert [Path(p).relative_to(data).parts[0] for p in kept] == ["uploads"]
    assert await asyncio.to_thread(Path(kept[0]).read_bytes) == master

    await node.run_jobs()
    r = await node.client.get(f"/api/v1/tracks/{uuid}", headers=node.auth("ana"))
    assert (await r.json())["state"] == "ready"
    async with node.ctx.db.read_session() as s:
        row = await s.scalar(select(Track).where(Track.uuid == uuid))
    assert row.original_path is None
    assert not [p for p in leftovers(node) if Path(p).relative_to(data).parts[0] == "uploads"]
    assert await node.app[STORAGE].get_bytes(row.media["files"]["original"]["key"]) == master
