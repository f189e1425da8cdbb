"""Fixtures for the media tests.

`s3_settings`: an S3-compatible server (moto in server mode) on a free
loopback port, spoken to over real HTTP; returns S3Storage keyword arguments
with a fresh bucket per test.
"""

from __future__ import annotations

import secrets

import pytest


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3, once per test session, at http://127.0.0.1:PORT."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_settings(s3_server: str) -> dict[str, str]:
    return {
        "endpoint": s3_server,
        "bucket": f"nycmg-{secrets.token_hex(4)}",
        "region": "us-east-1",
        "access_key": "testing",
        "secret_key": "testing",
    }


@pytest.fixture
def add_track():
    """`uuid = await add_track(node, "ana", "Title", {"mp3_128": b"..."})`: a track
    whose transcodes are already in the node's storage (as the pipeline leaves
    them), standalone and ready unless `draft=True` (an unpublished release)."""
    from sqlalchemy import select

    from media.storage import STORAGE
    from node.models import Track

    async def make(
        node,
        artist: str,
        title: str,
        files: dict[str, bytes],
        *,
        draft: bool = False,
        state="ready",
    ) -> str:
        r = await node.client.post(
            "/api/v1/tracks", json={"title": title}, headers=node.auth(artist)
        )
        assert r.status == 201, await r.text()
        uuid = (await r.json())["uuid"]
        if draft:
            r = await node.client.post(
                "/api/v1/releases",
                json={"title": f"{title} (draft)", "kind": "single", "tracks": [uuid]},
                headers=node.auth(artist),
            )
            assert r.status == 201, await r.text()
        storage = node.app[STORAGE]
        ext = {"opus": "ogg", "original": "wav"}
        mime = {"opus": "audio/ogg", "original": "audio/wav"}
        media = {"original_filename": f"{title}.wav", "files": {}}
        for fmt, data in files.items():
            key = f"audio/{artist}/{uuid}/{fmt}.{ext.get(fmt, 'mp3')}"
            obj = await storage.put_bytes(key, data, mime.get(fmt, "audio/mpeg"))
            media["files"][fmt] = {"key": key, "mime": obj.content_type, "size": obj.size}
        async with node.ctx.db.transaction() as s:
            track = await s.scalar(select(Track).where(Track.uuid == uuid))
            track.media = media
            track.state = state
        return uuid

    return make
