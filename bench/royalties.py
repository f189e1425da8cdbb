"""Closing a royalty period at scale: `python -m bench.royalties [--quick] [--database-url URL]`.

The node is loaded in bulk (executemany on SQLite, COPY on PostgreSQL) with
100,000 subscribers, 20,000 artists on 5 nodes (one of them this node) and
10 million plays in one month (`--quick`: 1 million plays), spread like
real listening: popular artists get most plays, plays follow each other in
time, a few are too short, overlap, or repeat one track past the daily cap.

Figures, from one run:

- `close_seconds`: `close_period(ctx, month)`, the code `nycmg royalties
  close` runs (qualification rules, UCPS split per subscriber, pro-rata,
  payables, ledger), in its own process, and `close_peak_rss_mb`, that
  process's peak resident memory (target < 2,048);
- `group_by_seconds`: the anchor, a bare `SELECT listener_id, artist_uri,
  COUNT(*) FROM plays WHERE <month> GROUP BY listener_id, artist_uri` over
  the same plays through the same driver, every row fetched, in its own
  process (the faster of two runs, one before and one after the close);
- `ratio` = close_seconds / group_by_seconds (target <= 3), and
  `cpu_ratio`, the same from each process's CPU time (user + system, the
  driver's thread included), which moves less when the machine is shared;
- `close_phases_seconds`: where the close spent its time (fees, plays and
  the UCPS split, venues, booking, the subscribers of `period_closed`).

Everything is on loopback or in a temporary directory, removed at exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ._common import ROOT, emit, free_port, log, machine

PERIOD = "2026-10"
MONTH_START = datetime(2026, 10, 1, tzinfo=UTC)
MONTH_MS = 31 * 24 * 3600 * 1000
NODES = 5
CHUNK = 500_000


def _cpu() -> float:
    """CPU seconds this process (every thread, the database driver's too) has used."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _settings(data: Path):
    from node.config import load_settings

    return load_settings(data)


# ---- loading -------------------------------------------------------------------


def _artists(base: str, n_artists: int) -> list[str]:
    per = n_artists // NODES
    hosts = [base] + [f"https://node{i}.example" for i in range(1, NODES)]
    return [f"{hosts[i % NODES]}/actors/artist{i // NODES}" for i in range(per * NODES)]


def _plays(n_subs: int, n_plays: int, n_artists: int, seed: int = 1729) -> tuple[np.ndarray, ...]:
    """Columns of the plays, sorted by listener: listener index, artist, track, start, ms."""
    rng = np.random.default_rng(seed)
    # Play counts per subscriber: some listen a lot, most a little; exactly n_plays in all.
    weights = rng.gamma(1.2, 1.0, n_subs)
    counts = np.floor(weights / weights.sum() * n_plays).astype(np.int64)
    counts[: n_plays - int(counts.sum())] += 1
    listener = np.repeat(np.arange(n_subs, dtype=np.int64), counts)
    # Artist popularity is heavy-tailed: u**3 puts most plays on the first artists.
    artist = np.floor(rng.random(n_plays) ** 3 * n_artists).astype(np.int64)
    track = rng.integers(0, 10, n_plays)
    ms = rng.integers(30_000, 300_000, n_plays)
    short = rng.random(n_plays) < 0.04
    ms[short] = rng.integers(1_000, 29_000, int(short.sum()))
    # 2% repeat the previous play's track (loops, some past the daily cap)
    rep = np.flatnonzero(rng.random(n_plays) < 0.02)
    rep = rep[rep > 0]
    artist[rep] = artist[rep - 1]
    track[rep] = track[rep - 1]
    # Each listener's plays follow each other: next start = start + length + a pause;
    # 1% of the time the next one starts halfway through (an overlap).
    step = ms + rng.integers(1_000, 900_000, n_plays)
    overlap = rng.random(n_plays) < 0.01
    step[overlap] = ms[overlap] // 2
    cum = np.cumsum(step)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    group_start = np.repeat(cum[first] - step[first], counts)
    offset = np.repeat(rng.integers(0, 86_400_000, n_subs), counts)
    start = (cum - step - group_start + offset) % MONTH_MS
    return listener, artist, track, start, ms


def _timestamps(start_ms: np.ndarray, sqlite: bool) -> list[str]:
    t = np.datetime64("2026-10-01T00:00:00", "ms") + start_ms.astype("timedelta64[ms]")
    s = np.datetime_as_string(t.astype("datetime64[us]"), unit="us")
    if sqlite:
        return [x.replace("T", " ") for x in s.tolist()]
    return [x + "+00:00" for x in s.tolist()]


def load(data: Path, n_subs: int, n_artists: int, n_plays: int) -> dict[str, Any]:
    """Fill the node's database; returns what was loaded."""
    from sqlalchemy import create_engine, insert

    from node.models import Account, Actor
    from royalties.models import SubscriptionPayment

    settings = _settings(data)
    url = settings.database_url.replace("+aiosqlite", "")
    sqlite = url.startswith("sqlite")
    base = settings.base_url
    artists = _artists(base, n_artists)
    now = datetime.now(UTC)
    engine = create_engine(url)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            insert(Actor),
            [
                {
                    "uri": f"{base}/actors/fan{i}",
                    "handle": f"fan{i}",
                    "domain": settings.node.domain,
                    "kind": "Person",
                    "local": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n_subs)
            ],
        )
        ids = dict(
            conn.exec_driver_sql(
                "SELECT handle, id FROM actors WHERE handle LIKE 'fan%'"
            ).fetchall()
        )
        actor_ids = [ids[f"fan{i}"] for i in range(n_subs)]
        conn.execute(
            insert(Account),
            [
                {
                    "actor_id": actor_ids[i],
                    "username": f"fan{i}",
                    "password_hash": "x",
                    "role": "fan",
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(n_subs)
            ],
        )
        acc = dict(conn.exec_driver_sql("SELECT actor_id, id FROM accounts").fetchall())
        fees = [999, 1099, 499, 1499]
        conn.execute(
            insert(SubscriptionPayment),
            [
                {
                    "account_id": acc[actor_ids[i]],
                    "period": PERIOD,
                    "amount_minor": fees[i % len(fees)],
                    "currency": "USD",
                    "kind": "payment",
                    "provider": "ledger",
                    "external_id": f"bench:{i}",
                    "reason": "",
                    "ledger_ref": f"bench:{i}",
                    "created_at": now,
                }
                for i in range(n_subs)
            ],
        )
    engine.dispose()
    accounts_s = time.perf_counter() - t0

    listener, artist, track, start, ms = _plays(n_subs, n_plays, len(artists))
    cols = (
        "uuid, listener_id, listener_uri, track_uri, artist_uri, started_at, ms_listened, "
        "source, origin, created_at"
    )
    created = now.isoformat(sep=" ").replace("+00:00", "") if sqlite else now.isoformat()
    t0 = time.perf_counter()

    def rows(lo: int, hi: int):
        stamps = _timestamps(start[lo:hi], sqlite)
        for j, i in enumerate(range(lo, hi)):
            li, ai = int(listener[i]), int(artist[i])
            yield (
                f"{i:032x}",
                actor_ids[li],
                f"{base}/actors/fan{li}",
                f"{artists[ai]}/tracks/{int(track[i])}",
                artists[ai],
                stamps[j],
                int(ms[i]),
                "stream",
                "local",
                created,
            )

    indexes = ["ix_plays_track_started", "ix_plays_listener_started", "ix_plays_artist_started"]
    if sqlite:
        import sqlite3

        db = sqlite3.connect(url.removeprefix("sqlite:///"))
        db.execute("PRAGMA synchronous=OFF")
        defs = dict(
            db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type='index' AND tbl_name='plays'"
            ).fetchall()
        )
        for name in indexes:
            db.execute(f"DROP INDEX {name}")
        for lo in range(0, n_plays, CHUNK):
            db.executemany(
                f"INSERT INTO plays ({cols}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows(lo, min(n_plays, lo + CHUNK)),
            )
            db.commit()
            log(f"plays {min(n_plays, lo + CHUNK):,}/{n_plays:,}")
        for name in indexes:
            db.execute(defs[name])
        db.execute("ANALYZE")
        db.commit()
        db.close()
    else:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as db:
            with db.cursor() as cur:
                with cur.copy(f"COPY plays ({cols}) FROM STDIN") as copy:
                    for lo in range(0, n_plays, CHUNK):
                        for row in rows(lo, min(n_plays, lo + CHUNK)):
                            copy.write_row(row)
                        log(f"plays {min(n_plays, lo + CHUNK):,}/{n_plays:,}")
            db.commit()
            db.execute("ANALYZE")
    return {
        "subscribers": n_subs,
        "artists": len(artists),
        "nodes": NODES,
        "plays": n_plays,
        "load_accounts_seconds": round(accounts_s, 1),
        "load_plays_seconds": round(time.perf_counter() - t0, 1),
    }


# ---- the two measured runs, each in its own process -------------------------------


async def measure_group_by(data: Path) -> dict[str, Any]:
    from sqlalchemy import bindparam, text

    from node.db import open_database
    from node.models import UTCDateTime
    from royalties.periods import bounds

    db = open_database(_settings(data).database_url)
    start, end = bounds(PERIOD)
    stmt = text(
        "SELECT listener_id, artist_uri, COUNT(*) FROM plays "
        "WHERE started_at >= :start AND started_at < :end GROUP BY listener_id, artist_uri"
    ).bindparams(bindparam("start", type_=UTCDateTime), bindparam("end", type_=UTCDateTime))
    try:
        t0, c0 = time.perf_counter(), _cpu()
        n = total = 0
        async with db.read_session() as s:
            result = await s.stream(
                stmt, {"start": start, "end": end}, execution_options={"yield_per": 20_000}
            )
            async for part in result.partitions(20_000):
                for _, _, c in part:
                    n += 1
                    total += c
        seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    finally:
        await db.dispose()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "rows": n,
        "plays": total,
        "peak_rss_mb": _peak_rss_mb(),
    }


async def measure_close(data: Path) -> dict[str, Any]:
    from node.app import create_app
    from node.appkeys import CTX
    from royalties.close import close_period

    app = create_app(_settings(data))
    ctx = app[CTX]
    try:
        t0, c0 = time.perf_counter(), _cpu()
        result = await close_period(ctx, PERIOD, closed_by="bench", now=datetime.now(UTC))
        seconds, cpu = time.perf_counter() - t0, _cpu() - c0
    finally:
        await ctx.db.dispose()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "phases": result.seconds,
        "cpu_phases": result.cpu_seconds,
        "already_closed": result.already_closed,
        "totals": result.totals.get("USD", {}),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _run(what: str, data: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "bench.royalties", "--measure", what, "--data", str(data)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    return json.loads(out.stdout)


def run_bench(quick: bool, database_url: str | None) -> dict[str, Any]:
    from node.bootstrap import init_data_dir
    from node.db import migrate, open_database

    n_subs, n_artists = 100_000, 20_000
    n_plays = 1_000_000 if quick else 10_000_000
    with tempfile.TemporaryDirectory(prefix="nycmg-bench-royalties-") as tmp:
        data = Path(tmp) / "node"
        settings = init_data_dir(
            data,
            domain=f"127.0.0.1:{free_port()}",
            database_url=database_url,
            extra={"log.level": "WARNING"},
        )

        async def _migrate() -> None:
            db = open_database(settings.database_url)
            try:
                await migrate(db)
            finally:
                await db.dispose()

        asyncio.run(_migrate())
        log(f"loading {n_subs:,} subscribers, {n_artists:,} artists, {n_plays:,} plays")
        loaded = load(data, n_subs, n_artists, n_plays)
        log("anchor: bare GROUP BY")
        anchor1 = _run("group_by", data)
        log(f"  {anchor1['seconds']:.2f} s; closing the period")
        close = _run("close", data)
        log(f"  {close['seconds']:.2f} s; anchor again")
        anchor2 = _run("group_by", data)
        anchor = min(anchor1["seconds"], anchor2["seconds"])
        ratio = close["seconds"] / anchor if anchor else None
        anchor_cpu = min(anchor1["cpu_seconds"], anchor2["cpu_seconds"])
        cpu_ratio = close["cpu_seconds"] / anchor_cpu if anchor_cpu else None
        totals = close["totals"]
        accounted = (
            totals.get("artists_local", 0)
            + totals.get("artists_remote", 0)
            + totals.get("node_share", 0)
            + totals.get("foundation", 0)
        )
        result = {
            "benchmark": "royalties",
            "database": "postgresql" if database_url else "sqlite",
            **loaded,
            "close_seconds": round(close["seconds"], 2),
            "close_peak_rss_mb": close["peak_rss_mb"],
            "group_by_seconds": round(anchor, 2),
            "group_by_runs_seconds": [round(anchor1["seconds"], 2), round(anchor2["seconds"], 2)],
            "group_by_rows": anchor1["rows"],
            "ratio": round(ratio, 2) if ratio else None,
            "ratio_ok": bool(ratio and ratio <= 3),
            "close_cpu_seconds": round(close["cpu_seconds"], 2),
            "group_by_cpu_seconds": round(anchor_cpu, 2),
            "cpu_ratio": round(cpu_ratio, 2) if cpu_ratio else None,
            "close_phases_seconds": close["phases"],
            "close_phases_cpu_seconds": close["cpu_phases"],
            "memory_ok": close["peak_rss_mb"] < 2048,
            "qualified_plays": totals.get("qualified_plays"),
            "collected_minor": totals.get("collected"),
            "every_cent_accounted": accounted == totals.get("collected"),
            "machine": machine(),
        }
        if quick:
            result["note"] = "--quick: 1,000,000 plays instead of 10,000,000"
        return result


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.royalties", description=__doc__.splitlines()[0]
    )
    p.add_argument("--quick", action="store_true", help="1,000,000 plays instead of 10,000,000")
    p.add_argument(
        "--database-url",
        help="a fresh PostgreSQL database (postgresql+psycopg://...); default SQLite",
    )
    p.add_argument("--measure", choices=["group_by", "close"], help=argparse.SUPPRESS)
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        fn = measure_group_by if args.measure == "group_by" else measure_close
        print(json.dumps(asyncio.run(fn(args.data))))
        return
    emit(run_bench(args.quick, args.database_url))


if __name__ == "__main__":
    main()
