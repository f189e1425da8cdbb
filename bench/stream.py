"""Streaming throughput and first-byte latency: `python -m bench.stream [--quick]`.

What it measures: many concurrent listeners (200) doing HTTP Range requests,
as browsers do while playing and seeking, half of them on one popular
track and half spread over the catalog. The same requests go, in the same
run, to the node (`GET /tracks/UUID/stream?format=mp3_128`: track lookup,
visibility, headers, sendfile) and to nginx serving the very same files
from DATA/media (the anchor). Figures:

- `throughput_ratio`: node bytes/s over nginx bytes/s (target >= 0.6);
- `first_byte_ms`: node time to first body byte, p50/p95/p99 (p99 target
  < 50 ms at 200 listeners);
- server CPU per request for both, and bytes sent per server CPU second
  (`per_cpu`), which hold up when the load generator (one Python process)
  or other work on the machine is the bottleneck.

Like with like: the node runs as one process (`nycmg serve` has no
`--workers`; more web processes are more `serve --no-worker` behind nginx,
docs/operations.md) and nginx with `worker_processes 1`. The servers are
measured in alternating rounds (node, nginx, node behind nginx, again), so
load from other processes on the machine falls on all of them alike; the
figures are the sums over the rounds.

nginx comes from the system (`make bench` installs it with apt-get when
missing); without it the run reports the node alone and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from ._common import (
    Server,
    emit,
    free_port,
    log,
    machine,
    make_node,
    percentiles,
    proc_cpu_seconds,
    rng,
    start_server,
)

LISTENERS = 200
CHUNK = 256 * 1024  # what a browser asks for per Range request, roughly
FILE_BYTES = 2 * 1024 * 1024  # a 2 MiB "mp3" (2 minutes at 128 kbit/s)
HOT_SHARE = 0.5  # listeners on the one popular track
PACE = 1.0  # seconds between one listener's requests in the latency phase
ROUNDS = 4  # measuring rounds per server, alternating between the servers


async def seed(settings: Any, n_tracks: int) -> list[tuple[str, str]]:
    """One artist, `n_tracks` ready tracks whose mp3_128 is in DATA/media;
    returns (uuid, storage key) pairs."""
    from sqlalchemy import insert

    from media.storage import LocalStorage
    from node.bootstrap import node_context
    from node.models import Track, new_uuid
    from node.services.accounts import create_account

    storage = LocalStorage(settings.data_dir / "media")
    r = random.Random(7)
    out = []
    async with node_context(settings) as ctx, ctx.db.transaction() as s:
        account = await create_account(ctx, s, "artist", "correct horse battery", "artist")
        rows = []
        for i in range(n_tracks):
            u = new_uuid()
            key = f"audio/artist/{u}/mp3_128.mp3"
            await storage.put_bytes(key, r.randbytes(FILE_BYTES), "audio/mpeg")
            rows.append(
                dict(
                    uuid=u,
                    uri=f"{settings.base_url}/tracks/{u}",
                    artist_id=account.actor_id,
                    title=f"Track {i + 1}",
                    duration_ms=120_000,
                    genres=[],
                    state="ready",
                    media={"files": {"mp3_128": {"key": key, "mime": "audio/mpeg"}}},
                    local=True,
                    created_at=datetime.now(UTC),
                    updated_at=datetime.now(UTC),
                )
            )
            out.append((u, key))
        await s.execute(insert(Track), rows)
    return out


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )


def start_nginx(
    binary: str, root: Path, work: Path, front_of: int | None = None
) -> tuple[Server, int | None]:
    """nginx with one worker (the node is one process too), sendfile on, no logs.

    Serves `root` on its port; with `front_of` it also proxies a second port
    to the node there, sending files itself when the node answers with
    X-Accel-Redirect (the production setup, deploy/ and docs/api.md).
    Returns the server and that second port.
    """
    port = free_port()
    front = free_port() if front_of else None
    front_conf = (
        f"""
  upstream node {{ server 127.0.0.1:{front_of}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{front};
    location /_media/ {{ internal; alias {root}/; }}
    location / {{
      proxy_pass http://node;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}"""
        if front_of
        else ""
    )
    work.mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = work / "nginx.conf"
    conf.write_text(
        f"""{user}worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type audio/mpeg;
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi;
  scgi_temp_path {work}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    location / {{ add_header Cache-Control "public, max-age=31536000, immutable"; }}
  }}{front_conf}
}}
"""
    )
    proc = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=open(work / "stderr.log", "wb"),  # noqa: SIM115
    )
    server = Server(proc=proc, port=port, name="nginx", log_path=work / "error.log")
    deadline = time.monotonic() + 20
    import socket

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {(work / 'stderr.log').read_text()[-1000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server, front
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("nginx did not start")


def worker_pids(master: int) -> list[int]:
    """nginx's workers (its children), whose CPU is the work done."""
    try:
        with open(f"/proc/{master}/task/{master}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def cpu_of(pids: list[int]) -> float | None:
    values = [proc_cpu_seconds(p) for p in pids]
    return sum(v for v in values if v is not None) if values and None not in values else None


@dataclass
class StreamResult:
    requests: int = 0
    bytes: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    first_byte: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)

    def add(self, other: StreamResult) -> None:
        self.requests += other.requests
        self.bytes += other.bytes
        self.seconds += other.seconds
        self.statuses.update(other.statuses)
        self.first_byte += other.first_byte
        self.total += other.total

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "rps": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "mib_per_s": round(self.bytes / self.seconds / 2**20, 1) if self.seconds else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "first_byte_ms": percentiles(self.first_byte),
            "request_ms": percentiles(self.total),
        }


def plan(tracks: list[tuple[str, str]], listeners: int, seed: int) -> list[list[tuple[int, int]]]:
    """Per listener, the (track index, range start) of each request: a listener
    plays a track from a random point, chunk after chunk, then picks another."""
    r = rng(seed)
    out = []
    for n in range(listeners):
        steps = []
        for _ in range(64):
            t = 0 if n < listeners * HOT_SHARE else r.randrange(1, len(tracks))
            start = r.randrange(0, FILE_BYTES // CHUNK) * CHUNK
            for offset in range(start, min(FILE_BYTES, start + 4 * CHUNK), CHUNK):
                steps.append((t, offset))
        out.append(steps)
    return out


def client(base_url: str, listeners: int) -> aiohttp.ClientSession:
    """One connection per listener, kept open from one round to the next."""
    connector = aiohttp.TCPConnector(limit=listeners, force_close=False)
    return aiohttp.ClientSession(
        base_url, connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    )


async def drive(
    base_url: str,
    url_of: Any,
    steps: list[list[tuple[int, int]]],
    seconds: float,
    pace: float = 0.0,
    http: aiohttp.ClientSession | None = None,
) -> StreamResult:
    """Each listener requests its chunks back to back (pace 0: saturation,
    for throughput), or one every `pace` seconds (for latency: a browser
    buffering ahead asks far less often; 256 KiB is 16 s of 128 kbit/s)."""
    if http is None:
        async with client(base_url, len(steps)) as own:
            return await drive(base_url, url_of, steps, seconds, pace, own)
    result = StreamResult()
    stop_at = time.perf_counter() + seconds

    # The listeners share `http`: its connections stay open from one round to the next.
    async def listener(todo: list[tuple[int, int]]) -> None:
        i = 0
        t0 = 0.0
        if pace:
            await asyncio.sleep(random.random() * pace)  # listeners do not start in step
        while time.perf_counter() < stop_at:
            if pace and i:
                await asyncio.sleep(max(0.0, pace - (time.perf_counter() - t0)))
            t, start = todo[i % len(todo)]
            i += 1
            headers = {"Range": f"bytes={start}-{start + CHUNK - 1}"}
            t0 = time.perf_counter()
            try:
                async with http.get(url_of(t), headers=headers) as r:
                    first = await r.content.readany()
                    t1 = time.perf_counter()
                    got = len(first)
                    async for block in r.content.iter_any():
                        got += len(block)
                    result.statuses[r.status] += 1
            except (TimeoutError, aiohttp.ClientError):
                result.statuses[0] += 1
                continue
            t2 = time.perf_counter()
            result.requests += 1
            result.bytes += got
            result.first_byte.append(t1 - t0)
            result.total.append(t2 - t0)

    t_start = time.perf_counter()
    await asyncio.gather(*(listener(s) for s in steps))
    result.seconds = time.perf_counter() - t_start
    return result


async def main_async(quick: bool) -> dict[str, Any]:
    n_tracks = 20 if quick else 100
    seconds = 6.0 if quick else 20.0
    with tempfile.TemporaryDirectory(prefix="nycmg-bench-stream-") as tmp:
        tmp_path = Path(tmp)
        os.chmod(tmp_path, 0o755)
        port = free_port()
        settings = await make_node(tmp_path / "node", port=port)
        tracks = await seed(settings, n_tracks)
        log(f"seeded {n_tracks} tracks of {FILE_BYTES // 1024} KiB; starting the node and nginx")
        node = start_server(
            "node", "--data", str(settings.data_dir), port=port, ready_path="/healthz"
        )
        binary = nginx_binary()
        nginx = front = accel_node = None
        if binary:
            # The same node, told to let nginx send the files.
            accel_node = start_server(
                "node",
                "--data",
                str(settings.data_dir),
                ready_path="/healthz",
                env={"NYCMG_MEDIA_X_ACCEL_PREFIX": "/_media/"},
            )
            nginx, front = start_nginx(
                binary, settings.data_dir / "media", tmp_path / "nginx", front_of=accel_node.port
            )
        steps = plan(tracks, LISTENERS, seed=3)
        node_url = lambda t: f"/tracks/{tracks[t][0]}/stream?format=mp3_128"  # noqa: E731
        file_url = lambda t: "/" + tracks[t][1]  # noqa: E731
        # (name, base URL, URL of a track, processes whose CPU is the work done)
        targets: list[tuple[str, str, Any, list[int]]] = [
            ("node", node.base_url, node_url, [node.proc.pid])
        ]
        if nginx is not None and accel_node is not None:
            workers = worker_pids(nginx.proc.pid)
            targets.append(("nginx", nginx.base_url, file_url, workers))
            targets.append(
                ("x_accel", f"http://127.0.0.1:{front}", node_url, [*workers, accel_node.proc.pid])
            )
        saturated = {name: StreamResult() for name, *_ in targets}
        paced = {name: StreamResult() for name, *_ in targets if name != "x_accel"}
        cpu = dict.fromkeys(saturated, 0.0)
        node_only_cpu = 0.0  # the node's own share of the x_accel rounds
        load_before = machine()["loadavg_1m"]
        sessions: dict[str, aiohttp.ClientSession] = {}
        rounds = 3 if quick else ROUNDS
        paced_seconds = max(seconds / rounds, 3.0)
        try:
            for name, base, url, _pids in targets:
                sessions[name] = client(base, LISTENERS)
                # Warm-up: connections opened, caches filled; not counted.
                await drive(base, url, steps, 1.5, http=sessions[name])
            log(
                f"{rounds} rounds of {seconds / rounds:.1f}s per server, {LISTENERS} listeners"
                f" back to back, then {rounds} of {paced_seconds:.0f}s paced (one chunk each"
                f" every {PACE:g}s)"
            )
            for _ in range(rounds):
                for name, base, url, pids in targets:
                    c0 = cpu_of(pids)
                    n0 = proc_cpu_seconds(accel_node.proc.pid) if name == "x_accel" else 0.0
                    saturated[name].add(
                        await drive(base, url, steps, seconds / rounds, http=sessions[name])
                    )
                    c1 = cpu_of(pids)
                    cpu[name] = (
                        None
                        if c0 is None or c1 is None or cpu[name] is None
                        else (cpu[name] + c1 - c0)
                    )
                    if name == "x_accel":
                        n1 = proc_cpu_seconds(accel_node.proc.pid)
                        node_only_cpu += (n1 or 0.0) - (n0 or 0.0)
            for _ in range(rounds):
                for name, base, url, _pids in targets:
                    if name in paced:
                        paced[name].add(
                            await drive(
                                base, url, steps, paced_seconds, pace=PACE, http=sessions[name]
                            )
                        )
        finally:
            for session in sessions.values():
                await session.close()
            node.stop()
            if nginx is not None:
                nginx.stop()
            if accel_node is not None:
                accel_node.stop()

    def per_request(name: str) -> float | None:
        n = saturated[name].requests
        return round(cpu[name] / n * 1000, 3) if cpu[name] is not None and n else None

    def per_cpu(name: str) -> float | None:
        return round(saturated[name].bytes / cpu[name] / 2**20, 1) if cpu[name] else None

    fb = percentiles(paced["node"].first_byte)
    on_node = saturated["node"]
    result: dict[str, Any] = {
        "bench": "stream",
        "quick": quick,
        "listeners": LISTENERS,
        "tracks": n_tracks,
        "range_bytes": CHUNK,
        "processes": {
            "node": 1,
            "nginx_workers": 1,
            "cpus": os.cpu_count(),
            "note": "like with like: one node process (serve has no --workers) against one"
            " nginx worker; rounds alternate between the servers",
        },
        "rounds": 3 if quick else ROUNDS,
        "loadavg_1m_before": load_before,
        # Latency phase: 200 listeners, each asking for a chunk every PACE s.
        "first_byte_p99_ms_at_200_listeners": fb["p99"],
        "first_byte_ms": fb,
        "first_byte_p99_target_ms": 50,
        "first_byte_p99_ok": fb["p99"] < 50,
        "paced": {**paced["node"].summary(), "pace_seconds": PACE},
        "nginx_paced_first_byte_ms": (
            percentiles(paced["nginx"].first_byte) if "nginx" in paced else None
        ),
        "nginx_first_byte_p99_ms_at_200_listeners": (
            percentiles(paced["nginx"].first_byte)["p99"] if "nginx" in paced else None
        ),
        # Throughput phase: the same listeners back to back (saturation).
        "node": {
            **on_node.summary(),
            "server_cpu_ms_per_request": per_request("node"),
            "mib_per_cpu_second": per_cpu("node"),
        },
    }
    if "nginx" in saturated:
        on_nginx = saturated["nginx"]
        ratio = (on_node.bytes / on_node.seconds) / (on_nginx.bytes / on_nginx.seconds)
        node_cpu, nginx_cpu = per_request("node"), per_request("nginx")
        cpu_ratio = (
            round(per_cpu("node") / per_cpu("nginx"), 3)
            if per_cpu("node") and per_cpu("nginx")
            else None
        )
        result.update(
            {
                "throughput_ratio": round(ratio, 3),
                "throughput_ratio_target": 0.6,
                "throughput_ratio_ok": ratio >= 0.6,
                # Bytes per server CPU second, node over nginx: the ratio when each
                # had a CPU of its own, whatever else ran on the machine.
                "throughput_ratio_per_cpu": cpu_ratio,
                "ratio_by_server_cpu": (
                    round(nginx_cpu / node_cpu, 3) if nginx_cpu and node_cpu else None
                ),
                "nginx": {
                    **on_nginx.summary(),
                    "server_cpu_ms_per_request": nginx_cpu,
                    "mib_per_cpu_second": per_cpu("nginx"),
                },
                "nginx_first_byte_ms": percentiles(on_nginx.first_byte),
            }
        )
        via_accel = saturated["x_accel"]
        accel_ratio = (via_accel.bytes / via_accel.seconds) / (on_nginx.bytes / on_nginx.seconds)
        n = via_accel.requests
        result["x_accel"] = {
            "what": "nginx in front of the node; the node checks and answers X-Accel-Redirect",
            "throughput_ratio": round(accel_ratio, 3),
            "throughput_ratio_per_cpu": (
                round(per_cpu("x_accel") / per_cpu("nginx"), 3)
                if per_cpu("x_accel") and per_cpu("nginx")
                else None
            ),
            "first_byte_ms": percentiles(via_accel.first_byte),
            **via_accel.summary(),
            "server_cpu_ms_per_request": {
                "nginx": round((cpu["x_accel"] - node_only_cpu) / n * 1000, 3)
                if cpu["x_accel"] is not None and n
                else None,
                "node": round(node_only_cpu / n * 1000, 3) if n else None,
            },
        }
    else:
        result["note_anchor"] = "nginx not installed: no anchor measured (make bench installs it)"
    result["machine"] = machine()
    if quick:
        result["note"] = f"--quick: {n_tracks} tracks, {seconds:.0f} s per server"
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer tracks, shorter runs")
    args = p.parse_args()
    emit(asyncio.run(main_async(args.quick)))


if __name__ == "__main__":
    main()
