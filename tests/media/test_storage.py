"""Media storage: what the pipeline and streaming rely on, for every backend.

The same stories run against the local filesystem and an S3-compatible
bucket (moto in server mode, spoken to over real HTTP).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from media.storage import LocalStorage, Storage, check_key


@pytest.fixture(params=["local", "s3"])
async def storage(request, tmp_path: Path):
    if request.param == "local":
        store: Storage = LocalStorage(tmp_path / "media")
    else:
        s3 = request.getfixturevalue("s3_settings")
        from media.storage_s3 import S3Storage

        store = S3Storage(**s3)
    yield store
    await store.close()


async def test_an_uploaded_file_can_be_read_back_and_described(storage: Storage, tmp_path):
    source = tmp_path / "upload.mp3"
    source.write_bytes(b"ID3" + bytes(range(256)) * 40)
    obj = await storage.put_file("audio/ana/t1/mp3_128.mp3", source, "audio/mpeg")
    assert obj.size == source.stat().st_size
    assert obj.content_type == "audio/mpeg"
    assert obj.etag
    assert await storage.get_bytes("audio/ana/t1/mp3_128.mp3") == source.read_bytes()

    again = await storage.stat("audio/ana/t1/mp3_128.mp3")
    assert again is not None
    assert (again.size, again.etag, again.content_type) == (obj.size, obj.etag, obj.content_type)
    assert again.modified.tzinfo is not None

    copy = tmp_path / "copy.mp3"
    await storage.fetch_to("audio/ana/t1/mp3_128.mp3", copy)
    assert copy.read_bytes() == source.read_bytes()


async def test_replacing_an_object_changes_its_etag(storage: Storage):
    first = await storage.put_bytes("audio/ana/t1/waveform.json", b"[1,2,3]", "application/json")
    second = await storage.put_bytes(
        "audio/ana/t1/waveform.json", b"[1,2,3,4,5]", "application/json"
    )
    assert first.etag != second.etag
    assert await storage.get_bytes("audio/ana/t1/waveform.json") == b"[1,2,3,4,5]"


async def test_missing_objects_are_reported_not_crashed_on(storage: Storage, tmp_path):
    assert await storage.stat("audio/nobody/none/opus.ogg") is None
    with pytest.raises(KeyError):
        await storage.get_bytes("audio/nobody/none/opus.ogg")
    with pytest.raises(KeyError):
        await storage.fetch_to("audio/nobody/none/opus.ogg", tmp_path / "x")
    await storage.delete("audio/nobody/none/opus.ogg")  # no error


async def test_a_byte_range_reads_just_those_bytes(storage: Storage):
    data = bytes(range(256)) * 4096  # 1 MiB, several chunks
    await storage.put_bytes("audio/ana/t1/opus.ogg", data, "audio/ogg")
    got = b"".join([b async for b in storage.iter_range("audio/ana/t1/opus.ogg", 1000, 300_000)])
    assert got == data[1000:300_001]
    tail = b"".join([b async for b in storage.iter_range("audio/ana/t1/opus.ogg", len(data) - 5)])
    assert tail == data[-5:]


async def test_deleting_a_track_removes_all_its_files_and_nothing_else(storage: Storage):
    for name in ("original.wav", "opus.ogg", "mp3_128.mp3", "waveform.json"):
        await storage.put_bytes(f"audio/ana/t1/{name}", b"x" * 10, "application/octet-stream")
    await storage.put_bytes("audio/ana/t10/opus.ogg", b"y" * 7, "audio/ogg")
    await storage.put_bytes("covers/ana/t1/300.jpg", b"z" * 3, "image/jpeg")

    assert await storage.usage() == (6, 50)
    assert await storage.delete_prefix("audio/ana/t1/") == 4
    assert await storage.stat("audio/ana/t1/opus.ogg") is None
    assert await storage.stat("audio/ana/t10/opus.ogg") is not None
    assert await storage.usage() == (2, 10)

    await storage.delete("covers/ana/t1/300.jpg")
    assert await storage.usage() == (1, 7)


@pytest.mark.parametrize(
    "key", ["../etc/passwd", "audio/../../x", "/abs/key", "audio//x", "audio/.hidden", "a\\b", ""]
)
def test_keys_cannot_escape_the_store(key):
    with pytest.raises(ValueError):
        check_key(key)


async def test_local_files_are_offered_to_the_web_server(tmp_path):
    store = LocalStorage(tmp_path / "media")
    await store.put_bytes("audio/ana/t1/preview.mp3", b"abc", "audio/mpeg")
    path = store.local_path("audio/ana/t1/preview.mp3")
    assert path is not None and path.read_bytes() == b"abc"
    assert await store.presigned_url("audio/ana/t1/preview.mp3", 60) is None
    # No temporary files are left behind by the atomic writes.
    assert sorted(p.name for p in path.parent.iterdir()) == ["preview.mp3"]


async def test_a_long_recording_is_stored_whole(storage: Storage, tmp_path):
    # Bigger than the multipart threshold, so S3 receives it in parts.
    from media.storage import MULTIPART_THRESHOLD

    source = tmp_path / "long.wav"
    block = bytes(range(256)) * 4096
    source.write_bytes(block * (MULTIPART_THRESHOLD // len(block) + 2))
    obj = await storage.put_file("audio/ana/t2/original.wav", source, "audio/wav")
    assert obj.size == source.stat().st_size
    copy = tmp_path / "copy.wav"
    await storage.fetch_to("audio/ana/t2/original.wav", copy)
    assert copy.read_bytes() == source.read_bytes()


async def test_the_node_setting_picks_the_backend(node, s3_settings):
    from media.storage import STORAGE, open_storage, storage_of

    # The running node serves its media from DATA/media by default.
    store = node.app[STORAGE]
    assert storage_of(node.ctx) is store
    assert isinstance(store, LocalStorage)
    assert store.root == node.settings.data_dir / "media"

    values = dict(node.settings.values)
    values.update({"media.storage": "s3"} | {f"media.s3_{k}": v for k, v in s3_settings.items()})
    from node.config import Settings

    s3 = open_storage(Settings(data_dir=node.settings.data_dir, values=values))
    try:
        await s3.put_bytes("covers/ana/t1/64.jpg", b"jpeg", "image/jpeg")
        url = await s3.presigned_url("covers/ana/t1/64.jpg", 60)
        assert url and url.startswith(s3_settings["endpoint"]) and "Signature" in url
    finally:
        await s3.close()
