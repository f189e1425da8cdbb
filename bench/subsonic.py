"""Subsonic `search3` deep paging: `python -m bench.subsonic [--quick]`.

Apps like Symfonium sync a whole library with `search3?query=` and growing
`songOffset`s. The figures, from one run over 50,000 songs (10,000 with
`--quick`), 500 per page, one request at a time (the latency one app sees):

- `first_pages_ms`: the first tenth of the pages;
- `deep_pages_ms`: the last tenth, reached page after page as an app
  does (each continues by id from where the one before ended);
- `anchor_deep_jump_ms` (the anchor): the same deep offsets asked for
  cold by another user, so the database skips `offset` rows (OFFSET);
- `deep_vs_first` (target: about 1, flat) and `jump_vs_deep` (how much
  the remembered cursor saves at that depth).

The node runs in its own process (bench._common); its catalog is seeded by
bulk inserts (no audio: not on the measured path).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from ._common import emit, free_port, log, machine, make_node, percentiles, start_server

PAGE = 500
PASSWORD = "bench subsonic password"


async def seed(settings: Any, songs: int) -> None:
    """One artist, `songs` ready standalone tracks, two fans with Subsonic passwords."""
    from sqlalchemy import insert, select

    from media.subsonic import credentials
    from media.subsonic.models import SubsonicCredential  # noqa: F401 - registers the table
    from node.context import NodeContext
    from node.db import open_database
    from node.models import Account, Track, new_uuid
    from node.services.accounts import create_account

    db = open_database(settings.database_url)
    ctx = NodeContext(settings=settings, db=db)
    now = datetime.now(UTC)
    try:
        async with db.transaction() as s:
            await create_account(ctx, s, "artist", "bench password 1", "artist")
            for fan in ("syncer", "jumper"):
                await create_account(ctx, s, fan, "bench password 1", "fan")
        async with db.transaction() as s:
            artist_id = await s.scalar(select(Account.actor_id).where(Account.username == "artist"))
            for fan in ("syncer", "jumper"):
                account = await s.scalar(select(Account).where(Account.username == fan))
                await credentials.set_password(s, settings.node.secret_key, account, PASSWORD)
        base = settings.base_url
        for start in range(0, songs, 5000):
            rows = []
            for i in range(start, min(songs, start + 5000)):
                uuid = new_uuid()
                rows.append(
                    dict(
                        uuid=uuid,
                        uri=f"{base}/tracks/{uuid}",
                        artist_id=artist_id,
                        title=f"Song {i:06d}",
                        duration_ms=180_000,
                        genres=["house"],
                        state="ready",
                        media={},
                        local=True,
                        created_at=now - timedelta(seconds=songs - i),
                        updated_at=now,
                    )
                )
            async with db.transaction() as s:
                await s.execute(insert(Track), rows)
    finally:
        await db.dispose()


def auth(user: str) -> dict[str, str]:
    salt = f"salt{time.monotonic_ns()}"
    token = hashlib.md5((PASSWORD + salt).encode()).hexdigest()
    return {"u": user, "t": token, "s": salt, "v": "1.16.1", "c": "bench", "f": "json"}


async def page(http: aiohttp.ClientSession, base: str, user: str, offset: int) -> tuple[float, int]:
    params = {
        **auth(user),
        "query": "",
        "artistCount": "0",
        "albumCount": "0",
        "songCount": str(PAGE),
        "songOffset": str(offset),
    }
    t0 = time.perf_counter()
    async with http.get(f"{base}/rest/search3", params=params) as r:
        body = await r.json()
    elapsed = time.perf_counter() - t0
    result = body["subsonic-response"]
    assert result["status"] == "ok", result
    return elapsed, len(result["searchResult3"].get("song", []))


async def main_async(quick: bool) -> dict[str, Any]:
    songs = 10_000 if quick else 50_000
    with tempfile.TemporaryDirectory(prefix="nycmg-bench-subsonic-") as tmp:
        tmp_path = Path(tmp)
        port = free_port()
        settings = await make_node(tmp_path / "node", port=port)
        t0 = time.perf_counter()
        await seed(settings, songs)
        log(f"seeded {songs} songs in {time.perf_counter() - t0:.1f}s; starting the node")
        node = start_server(
            "node",
            "--data",
            str(settings.data_dir),
            port=port,
            ready_path="/healthz",
            log_dir=tmp_path,
        )
        try:
            async with aiohttp.ClientSession() as http:
                await page(http, node.base_url, "syncer", 0)  # warm-up, not timed
                times, offset, seen = [], 0, 0
                while True:
                    elapsed, n = await page(http, node.base_url, "syncer", offset)
                    if not n:
                        break
                    times.append(elapsed)
                    seen += n
                    offset += n
                assert seen == songs, (seen, songs)
                tenth = max(1, len(times) // 10)
                deep_offsets = [PAGE * i for i in range(len(times) - tenth, len(times))]
                jumps = [(await page(http, node.base_url, "jumper", o))[0] for o in deep_offsets]
        finally:
            node.stop()
    first, deep = times[:tenth], times[-tenth:]
    first_p, deep_p, jump_p = percentiles(first), percentiles(deep), percentiles(jumps)
    return {
        "bench": "subsonic",
        "songs": songs,
        "page_size": PAGE,
        "pages": len(times),
        "first_pages_ms": first_p,
        "deep_pages_ms": deep_p,
        "anchor_deep_jump_ms": jump_p,
        "deep_vs_first": round(deep_p["p50"] / max(first_p["p50"], 1e-6), 2),
        "jump_vs_deep": round(jump_p["p50"] / max(deep_p["p50"], 1e-6), 2),
        "machine": machine(),
        "notes": "one request at a time; deep pages continue by id, the anchor skips rows",
    }


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.subsonic", description=__doc__.splitlines()[0]
    )
    p.add_argument("--quick", action="store_true", help="10,000 songs instead of 50,000")
    args = p.parse_args()
    emit(asyncio.run(main_async(args.quick)))


if __name__ == "__main__":
    main()
