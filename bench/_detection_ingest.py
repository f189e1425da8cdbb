"""Declared plays ingested per second through real signed batches (issue 6's
"at least 20,000 declared plays per second"), for `bench.detection`.

A node (its own process, SQLite, no worker) with a catalogue of 200 tracks
and 50 venue devices receives pre-signed batches of 1,000 declared tracks
(a DJ integration's plays: track URI, start, length), 4 in flight, each
batch from one device, each item a new play. The figure is plays recorded
per second of wall clock, checked against the rows in the database after
the run. The anchor is the same batches sent to a bare aiohttp handler that
only reads each body (`bench._serve accept`): the transport's ceiling in
the same run. Signing is the devices' cost, done before the timed phase.

    python -m bench._detection_ingest [--quick] [--database-url URL]

With `--database-url postgresql+psycopg://.../DB` the node runs on a fresh
database created next to DB on that server (and dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._common import (
    Post,
    emit,
    log,
    machine,
    make_node,
    post_load,
    proc_cpu_seconds,
    start_server,
)

DEVICES = 50
TRACKS = 200
BATCH = 1000
CONCURRENCY = 4
SPACING = timedelta(minutes=3)


async def _seed(settings: Any) -> list[dict[str, str]]:
    """Tracks, one venue and its devices, inserted directly; returns the credentials."""
    from sqlalchemy import insert

    from detection.devices import register_device
    from node.app import create_app
    from node.appkeys import CTX
    from node.models import Actor, Track, Venue

    app = create_app(settings, worker=False)
    ctx = app[CTX]
    creds = []
    try:
        async with ctx.db.transaction() as s:
            artist = Actor(
                uri=ctx.urls.actor("benchband"),
                handle="benchband",
                domain=ctx.domain,
                is_artist=True,
                name="Bench Band",
            )
            venue = Venue(uri=ctx.urls.obj("venues", "bench-hall"), name="Bench Hall", local=True)
            s.add_all([artist, venue])
            await s.flush()
            await s.execute(
                insert(Track),
                [
                    {
                        "uuid": f"00000000-0000-4000-8000-{i:012d}",
                        "uri": ctx.urls.obj("tracks", f"00000000-0000-4000-8000-{i:012d}"),
                        "artist_id": artist.id,
                        "title": f"Cut {i}",
                        "state": "ready",
                        "genres": [],
                        "media": {},
                        "duration_ms": 180_000,
                        "local": True,
                    }
                    for i in range(TRACKS)
                ],
            )
            for _ in range(DEVICES):
                _, cred = await register_device(ctx, s, venue, registered_by="bench")
                creds.append(cred.as_dict())
    finally:
        await ctx.db.dispose()
    return creds


def _batches(settings: Any, creds: list[dict[str, str]], total: int) -> list[Post]:
    """Pre-signed batches: device d's plays follow each other every 3 minutes."""
    from detection.client import DeviceClient, declared

    base = settings.base_url
    start = datetime.now(UTC) - timedelta(hours=100)
    clients = [DeviceClient.from_credential(c) for c in creds]
    sent = [0] * len(clients)
    posts = []
    for b in range(total // BATCH):
        d = b % len(clients)
        client = clients[d]
        items = []
        for _ in range(BATCH):
            n = sent[d]
            sent[d] += 1
            track = f"{base}/tracks/00000000-0000-4000-8000-{(n * 7 + d) % TRACKS:012d}"
            items.append(declared(n + 1, start + n * SPACING, 180_000, track))
        body = client.body(f"bench-{b}", items)
        posts.append(Post(client.batch_path, client.headers(body), body))
    return posts


def _matched(status: int, body: bytes) -> str:
    if status != 200:
        return f"http {status}"
    items = json.loads(body)["items"]
    return "all matched" if all(i["status"] == "matched" for i in items) else "some not matched"


def _fresh_postgres(url: str) -> tuple[str, Callable[[], None]]:
    """A new, empty database on the server of `url`, and how to drop it."""
    import secrets

    import psycopg

    admin = url.replace("postgresql+psycopg://", "postgresql://")
    name = f"nycmg_bench_ingest_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{url.rpartition('/')[0]}/{name}", drop


async def measure_declared_ingest(quick: bool, database_url: str | None = None) -> dict[str, Any]:
    """Declared plays/second through signed batches against a real node, with its anchor."""
    total = 20_000 if quick else 100_000
    drop = None
    if database_url:
        database_url, drop = _fresh_postgres(database_url)
    try:
        figures = await _measure(total, database_url)
    finally:
        if drop is not None:
            drop()
    return {"database": "postgresql" if database_url else "sqlite", **figures}


async def _measure(total: int, database_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="nycmg-bench-ingest-") as tmp:
        from ._common import free_port

        port = free_port()
        extra = {"database.url": database_url} if database_url else None
        settings = await make_node(Path(tmp) / "node", port=port, extra=extra)
        creds = await _seed(settings)
        posts = _batches(settings, creds, total)
        log(f"ingest: {len(posts)} signed batches of {BATCH} declared plays prepared")
        with start_server("accept") as bare:
            anchor = await post_load(bare.base_url, posts, concurrency=CONCURRENCY)
        with start_server(
            "node", "--data", str(settings.data_dir), port=port, ready_path="/healthz"
        ) as server:
            # Warm-up: one batch per device outside the timed phase is not
            # possible without changing what is timed, so the first batches
            # (connections, caches) are simply part of the measurement.
            cpu0 = proc_cpu_seconds(server.proc.pid)
            t0 = time.perf_counter()
            result = await post_load(
                server.base_url, posts, concurrency=CONCURRENCY, classify=_matched
            )
            elapsed = time.perf_counter() - t0
            cpu1 = proc_cpu_seconds(server.proc.pid)
        plays = await _count_plays(settings)
    rate = plays / elapsed if elapsed else 0.0
    anchor_rate = total / anchor.seconds if anchor.seconds else 0.0
    return {
        "declared_plays": total,
        "plays_recorded": plays,
        "batches": result.summary(),
        "answers": result.answers,
        "declared_plays_per_second": round(rate, 1),
        "target_plays_per_second": 20_000,
        "server_cpu_ms_per_1000_plays": round((cpu1 - cpu0) / plays * 1e6, 2)
        if cpu0 is not None and cpu1 is not None and plays
        else None,
        "anchor": {
            "what": "the same signed batches read by a bare aiohttp handler",
            "plays_per_second": round(anchor_rate, 1),
            "batches": anchor.summary(),
        },
        "ratio_to_anchor": round(rate / anchor_rate, 4) if anchor_rate else None,
    }


async def _count_plays(settings: Any) -> int:
    from sqlalchemy import func, select

    from node.db import open_database
    from node.models import Play

    db = open_database(settings.database_url)
    try:
        async with db.read_session() as s:
            return int(await s.scalar(select(func.count()).select_from(Play)) or 0)
    finally:
        await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 plays instead of 100,000")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server's database (postgresql+psycopg://...); default SQLite",
    )
    args = parser.parse_args()
    if args.database_url and not args.database_url.startswith("postgresql+psycopg://"):
        parser.error("--database-url must start with postgresql+psycopg://")
    figures = asyncio.run(measure_declared_ingest(args.quick, args.database_url))
    emit({"benchmark": "detection_ingest", "quick": args.quick, "machine": machine(), **figures})


if __name__ == "__main__":
    main()
