"""Shared benchmark helpers: server subprocesses, a bounded load loop,
percentiles and the one-JSON-object output (DESIGN.md 12).

Why servers run in subprocesses: the machines these run on have few cores,
and a load generator sharing an event loop (or a GIL) with the server it
measures steals exactly the time being measured. Each server gets its own
process (`python -m bench._serve ...`); the load runs in the caller's.

Everything binds to 127.0.0.1; nothing reaches past loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's one JSON object (stdout carries nothing else)."""
    print(json.dumps(result, indent=2, sort_keys=False), flush=True)


def log(msg: str) -> None:
    """Progress for the human watching, on stderr so stdout stays one JSON object."""
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def percentiles(values: Sequence[float], ps: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles of `values` (seconds) as milliseconds, e.g. {"p50": 1.2}."""
    if not values:
        return {f"p{p:g}": 0.0 for p in ps}
    ordered = sorted(values)
    out = {}
    for p in ps:
        rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
        out[f"p{p:g}"] = round(ordered[rank - 1] * 1000, 2)
    return out


def machine() -> dict[str, Any]:
    """Where the figures came from; the load average says whether anything else
    was competing for the CPUs while they were taken."""
    try:
        load1 = round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not on every platform
        load1 = None
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "loadavg_1m": load1,
    }


def proc_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far; None where /proc is missing.

    Server CPU per request is a figure that holds up when other work shares
    the machine, which wall-clock latency and requests/second do not.
    """
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_ms_per_request(before: float | None, after: float | None, requests: int) -> float | None:
    if before is None or after is None or not requests:
        return None
    return round((after - before) / requests * 1000, 3)


# ---- servers in subprocesses ---------------------------------------------------


@dataclass
class Server:
    """A server subprocess on a loopback port; `stop()` (or the context manager) ends it."""

    proc: subprocess.Popen
    port: int
    name: str
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_server(
    kind: str,
    *args: str,
    port: int | None = None,
    ready_path: str = "/",
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
    timeout: float = 90.0,
) -> Server:
    """Start `python -m bench._serve KIND --port P ARGS...` and wait until it answers."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "bench._serve", kind, "--port", str(port), *args]
    log_path = (log_dir / f"{kind}-{port}.log") if log_dir else None
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT
    )
    server = Server(proc=proc, port=port, name=kind, log_path=log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text()[-2000:] if log_path else ""
            raise RuntimeError(f"{kind} server exited with {proc.returncode}: {tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
            with urllib.request.urlopen(server.base_url + ready_path, timeout=5) as r:
                r.read()
            return server
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{kind} server did not answer on port {port} within {timeout}s")


# ---- load ---------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int
    seconds: float
    statuses: dict[int, int]
    latencies: list[float]
    answers: dict[str, int] = field(default_factory=dict)  # post_load's `classify` counts
    warmup: LoadResult | None = None  # post_load's uncounted first posts

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "latency_ms": percentiles(self.latencies),
        }


async def load(
    base_url: str,
    paths: Sequence[str] | Callable[[int], str],
    *,
    requests: int,
    concurrency: int = 32,
    warmup: int = 0,
    headers: dict[str, str] | None = None,
    max_seconds: float = 120.0,
) -> LoadResult:
    """Send `requests` GETs with `concurrency` in flight; bounded by `max_seconds`.

    `paths` is a list (cycled) or a function of the request number. Bodies
    are read in full, as a browser would. A warm-up run is not counted.
    """
    pick = paths if callable(paths) else (lambda i: paths[i % len(paths)])
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(
        base_url, connector=connector, timeout=timeout, headers=headers
    ) as http:
        if warmup:
            await _drive(http, pick, warmup, concurrency, max_seconds, offset=10_000_000)
        return await _drive(http, pick, requests, concurrency, max_seconds)


async def _drive(
    http: aiohttp.ClientSession,
    pick: Callable[[int], str],
    requests: int,
    concurrency: int,
    max_seconds: float,
    offset: int = 0,
) -> LoadResult:
    counter = iter(range(requests))
    statuses: Counter = Counter()
    latencies: list[float] = []
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            try:
                async with http.get(pick(i + offset)) as r:
                    await r.read()
                    statuses[r.status] += 1
            except (TimeoutError, aiohttp.ClientError):
                statuses[0] += 1
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return LoadResult(len(latencies), elapsed, dict(statuses), latencies)


@dataclass(frozen=True)
class Post:
    """One prepared POST (e.g. a pre-signed activity): signing is the sender's
    cost, so it happens before the timed phase and the loop only sends."""

    path: str
    headers: dict[str, str]
    body: bytes


async def post_load(
    base_url: str,
    posts: Sequence[Post],
    *,
    concurrency: int = 64,
    max_seconds: float = 120.0,
    classify: Callable[[int, bytes], str] | None = None,
    warmup: int = 0,
) -> LoadResult:
    """Send each of `posts` once, `concurrency` in flight, bounded by `max_seconds`.

    Unlike `load` nothing is cycled: each body is sent exactly once (an inbox
    dedupes by activity id, so repeats would measure something else).
    `classify(status, body)` names an answer, counted in `LoadResult.answers`.
    The first `warmup` posts are sent on the same connections but not
    counted: opening the connections is not what is measured.
    """
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)

    async with aiohttp.ClientSession(base_url, connector=connector, timeout=timeout) as http:

        async def drive(batch: Sequence[Post]) -> LoadResult:
            statuses: Counter = Counter()
            answers: Counter = Counter()
            latencies: list[float] = []
            todo = iter(batch)
            deadline = time.perf_counter() + max_seconds

            async def worker() -> None:
                for post in todo:
                    if time.perf_counter() > deadline:
                        return
                    t0 = time.perf_counter()
                    try:
                        async with http.post(post.path, data=post.body, headers=post.headers) as r:
                            body = await r.read()
                            statuses[r.status] += 1
                            if classify is not None:
                                answers[classify(r.status, body)] += 1
                    except (TimeoutError, aiohttp.ClientError):
                        statuses[0] += 1
                    latencies.append(time.perf_counter() - t0)

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - start
            return LoadResult(len(latencies), elapsed, dict(statuses), latencies, dict(answers))

        warmed = await drive(posts[:warmup]) if warmup else None
        result = await drive(posts[warmup:])
        result.warmup = warmed
        return result


# ---- a node to measure ------------------------------------------------------------


async def make_node(data_dir: Path, *, port: int, extra: dict[str, Any] | None = None) -> Any:
    """A migrated node data directory (SQLite in `data_dir`) for `port`; returns its Settings."""
    from node.bootstrap import init_data_dir
    from node.db import migrate, open_database

    values = {"log.level": "WARNING", "server.worker": False, **(extra or {})}
    settings = init_data_dir(data_dir, domain=f"127.0.0.1:{port}", extra=values)
    db = open_database(settings.database_url)
    try:
        await migrate(db)
    finally:
        await db.dispose()
    return settings


def rng(seed: int = 1729) -> random.Random:
    """Every benchmark draws from a fixed seed, so runs compare like with like."""
    return random.Random(seed)
