"""Release fan-out: `python -m bench.fanout [--quick]`.

One artist with 10,000 remote followers on 200 receiving nodes (50 each,
every one behind its node's shared inbox) publishes a release. Measured in
one run:

- the sender: a real node (SQLite, embedded: the job worker on the server's
  loop) in its own process, seeded in bulk (followers and accepted follows
  straight into its database), and the release published through the real
  API (`POST /api/v1/releases/UUID/publish`);
- the receivers: one process serving 200 distinct hosts, 127.0.1.1 ..
  127.0.1.200 on one port (all of 127.0.0.0/8 is loopback on Linux), each
  VERIFYING every signature (`federation.signatures.verify_request` with the
  artist's public key) and counting what arrives;
- figures: requests sent (target 200 — one per shared inbox, not 10,000),
  verified deliveries (target 200/200 hosts), and the wall time from the
  publish request to the last verified delivery (target: within 3 s);
- the anchor: the same 200 signed POSTs of the same activity, signed and sent
  by a bare aiohttp client loop in this process to the same receivers.

`--quick`: 2,000 followers on 40 receiving nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ._common import (
    emit,
    free_port,
    log,
    machine,
    make_node,
    percentiles,
    proc_cpu_seconds,
    start_server,
)

ACTIVITY_JSON = "application/activity+json"
TARGET_SECONDS = 3.0


def receiver_address(i: int) -> str:
    """The i-th receiving node's address (0-based): 127.0.1.1, 127.0.1.2, ..."""
    return f"127.0.1.{i + 1}"


# ---- the receivers: a separate process (python -m bench.fanout --receivers ...) -----


class Receivers:
    """200 small inboxes: verify each request's signature, count, remember when."""

    def __init__(self, keys: dict[str, dict[str, str]]) -> None:
        self.keys = keys  # key_id -> {"owner", "pem"}
        self.reset()

    def reset(self) -> None:
        self.received = 0
        self.verified: Counter[str] = Counter()  # host -> verified deliveries
        self.refused: Counter[str] = Counter()  # reason -> count
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.activity_ids: Counter[str] = Counter()
        self.sample: bytes = b""

    async def lookup(self, key_id: str, refresh: bool) -> Any:
        from federation.signatures import PublicKey

        known = self.keys.get(key_id)
        return PublicKey(key_id, known["owner"], known["pem"]) if known else None

    async def inbox(self, request: web.Request) -> web.Response:
        from federation.signatures import SignatureError, verify_request

        body = await request.read()
        self.received += 1
        try:
            verified = await verify_request(
                request.method,
                request.raw_path,
                request.headers,
                body,
                self.lookup,
                scheme="http",
            )
            activity = json.loads(body)
            if activity.get("actor") != verified.owner:
                raise ValueError("the activity's actor is not the signer")
        except (SignatureError, ValueError) as e:
            self.refused[type(e).__name__] += 1
            return web.json_response({"error": str(e)}, status=401)
        now = time.time()
        self.first_at = self.first_at or now
        self.last_at = now
        self.verified[request.host] += 1
        self.activity_ids[activity.get("id", "")] += 1
        self.sample = self.sample or body
        return web.json_response({"status": "accepted"}, status=202)

    async def stats(self, request: web.Request) -> web.Response:
        out = {
            "received": self.received,
            "verified": sum(self.verified.values()),
            "hosts_verified": len(self.verified),
            "max_per_host": max(self.verified.values(), default=0),
            "refused": dict(self.refused),
            "first_at": self.first_at,
            "last_at": self.last_at,
            "activities": len(self.activity_ids),
        }
        if request.query.get("sample"):
            out["sample"] = self.sample.decode()
        return web.json_response(out)

    async def do_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"status": "reset"})


async def serve_receivers(port: int, hosts: int, keys: dict[str, dict[str, str]]) -> None:
    import federation.signatures  # noqa: F401 - imported now, not on the first delivery

    receivers = Receivers(keys)
    app = web.Application()
    app.router.add_post("/inbox", receivers.inbox)
    app.router.add_get("/stats", receivers.stats)
    app.router.add_post("/reset", receivers.do_reset)

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", ready)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for i in range(hosts):
        await web.TCPSite(runner, receiver_address(i), port, backlog=1024).start()
    await web.TCPSite(runner, "127.0.0.1", port).start()  # for start_server's readiness probe
    await asyncio.Event().wait()


def start_receivers(port: int, hosts: int, keys_file: Path, log_dir: Path) -> Any:
    """The receivers in their own process, so verifying does not share the sender's core."""
    import os
    import subprocess

    from ._common import ROOT, Server

    cmd = [sys.executable, "-m", "bench.fanout", "--receivers", str(port)]
    cmd += ["--hosts", str(hosts), "--keys", str(keys_file)]
    out = open(log_dir / "receivers.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ), stdout=out, stderr=out)
    server = Server(proc=proc, port=port, name="receivers", log_path=log_dir / "receivers.log")
    deadline = time.monotonic() + 60
    import urllib.request

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"receivers exited: {server.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                r.read()
            return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("receivers did not start")


# ---- the sender's data --------------------------------------------------------------


async def seed_sender(
    settings: Any, hosts: int, per_host: int, receiver_port: int
) -> dict[str, Any]:
    """The artist (through the account service: a real RSA key) and, in bulk,
    `hosts * per_host` remote followers with accepted follows."""
    from sqlalchemy import insert, select

    from node.bootstrap import node_context
    from node.models import Actor, Follow, new_uuid, utcnow
    from node.services.accounts import create_account

    now = utcnow()
    async with node_context(settings) as ctx:
        async with ctx.db.transaction() as s:
            account = await create_account(
                ctx, s, "headliner", "correct horse battery", "artist", borough="Queens"
            )
            artist = await s.get(Actor, account.actor_id)
            actors = []
            for h in range(hosts):
                domain = f"{receiver_address(h)}:{receiver_port}"
                for n in range(per_host):
                    uri = f"http://{domain}/users/fan{n}"
                    actors.append(
                        dict(
                            uri=uri,
                            handle=f"fan{n}",
                            domain=domain,
                            kind="Person",
                            local=False,
                            name=f"Fan {n}",
                            summary="",
                            url=uri,
                            inbox_url=f"{uri}/inbox",
                            outbox_url=f"{uri}/outbox",
                            shared_inbox_url=f"http://{domain}/inbox",
                            followers_url=f"{uri}/followers",
                            following_url=f"{uri}/following",
                            key_id=f"{uri}#main-key",
                            fetched_at=now,
                            created_at=now,
                            updated_at=now,
                        )
                    )
            await s.execute(insert(Actor), actors)
            ids = (await s.scalars(select(Actor.id).where(Actor.local.is_(False)))).all()
            await s.execute(
                insert(Follow),
                [
                    dict(
                        uri=ctx.urls.obj("follows", new_uuid()),
                        follower_id=i,
                        target_id=artist.id,
                        state="accepted",
                        created_at=now,
                        accepted_at=now,
                    )
                    for i in ids
                ],
            )
            return {
                "key_id": artist.key_id,
                "owner": artist.uri,
                "public_pem": artist.public_key_pem,
                "private_pem": artist.private_key_pem,
                "followers": len(ids),
            }


def delivery_jobs(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT state, count(*) FROM jobs WHERE kind = 'federation.deliver' GROUP BY state"
        ).fetchall()
    return dict(rows)


# ---- the run ------------------------------------------------------------------------


async def api(http: aiohttp.ClientSession, method: str, path: str, **kw: Any) -> Any:
    async with http.request(method, path, **kw) as r:
        body = await r.json(content_type=None)
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {body}")
        return body


async def wait_for(
    http: aiohttp.ClientSession, stats_url: str, want: int, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(stats_url) as r:
            stats = await r.json()
        if stats["verified"] >= want or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.01)


async def anchor_run(
    stats_url: str,
    body: bytes,
    inboxes: list[str],
    key_id: str,
    private_pem: str,
    concurrency: int,
) -> dict[str, Any]:
    """The same signed POSTs from a bare client loop: sign, send, done."""
    from federation.signatures import sign_request

    todo = iter(inboxes)
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        await http.post(stats_url.replace("/stats", "/reset"))
        t0 = time.time()

        async def worker() -> None:
            for inbox in todo:
                s0 = time.perf_counter()
                headers = sign_request(
                    "POST", inbox, {"Content-Type": ACTIVITY_JSON}, body, key_id, private_pem
                )
                async with http.post(inbox, data=body, headers=headers) as r:
                    await r.read()
                    statuses[r.status] += 1
                latencies.append(time.perf_counter() - s0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.time() - t0
        stats = await wait_for(http, stats_url, len(inboxes), 5)
    return {
        "requests": len(latencies),
        "concurrency": concurrency,
        "statuses": {str(k): v for k, v in statuses.items()},
        "verified": stats["verified"],
        "hosts_verified": stats["hosts_verified"],
        "seconds": round(elapsed, 3),
        "latency_ms": percentiles(latencies),
    }


async def main_async(quick: bool, anchor_concurrency: int) -> dict[str, Any]:
    hosts = 40 if quick else 200
    per_host = 50
    with tempfile.TemporaryDirectory(prefix="nycmg-bench-fanout-") as tmp:
        tmp_path = Path(tmp)
        port, receiver_port = free_port(), free_port()
        settings = await make_node(
            tmp_path / "node",
            port=port,
            extra={"federation.allow_private_addresses": True, "log.format": "text"},
        )
        t0 = time.perf_counter()
        sender = await seed_sender(settings, hosts, per_host, receiver_port)
        seed_s = time.perf_counter() - t0
        log(f"seeded {sender['followers']} followers on {hosts} hosts in {seed_s:.1f}s")

        keys_file = tmp_path / "keys.json"
        keys_file.write_text(
            json.dumps({sender["key_id"]: {"owner": sender["owner"], "pem": sender["public_pem"]}})
        )
        receivers = start_receivers(receiver_port, hosts, keys_file, tmp_path)
        node = start_server(
            "node",
            "--data",
            str(settings.data_dir),
            "--worker",
            port=port,
            ready_path="/healthz",
            log_dir=tmp_path,
        )
        stats_url = f"http://127.0.0.1:{receiver_port}/stats"
        try:
            async with aiohttp.ClientSession(node.base_url) as http:
                token = (
                    await api(
                        http,
                        "POST",
                        "/api/v1/auth/token",
                        json={"username": "headliner", "password": "correct horse battery"},
                    )
                )["token"]
                auth = {"Authorization": f"Bearer {token}"}
                tracks = [
                    (
                        await api(
                            http,
                            "POST",
                            "/api/v1/tracks",
                            headers=auth,
                            json={"title": f"Side A {i + 1}", "duration_ms": 200_000 + i},
                        )
                    )["uuid"]
                    for i in range(3)
                ]
                release = await api(
                    http,
                    "POST",
                    "/api/v1/releases",
                    headers=auth,
                    json={"title": "Five Boroughs", "kind": "ep", "tracks": tracks},
                )
                await asyncio.sleep(1.0)  # let the worker finish what creating them queued
                async with aiohttp.ClientSession() as plain:
                    await plain.post(stats_url.replace("/stats", "/reset"))

                log(f"publishing to {sender['followers']} followers on {hosts} hosts")
                cpu0 = proc_cpu_seconds(node.proc.pid)
                published_at = time.time()
                await api(http, "POST", f"/api/v1/releases/{release['uuid']}/publish", headers=auth)
                publish_ms = (time.time() - published_at) * 1000
                async with aiohttp.ClientSession() as plain:
                    stats = await wait_for(plain, stats_url, hosts, 60)
                    await asyncio.sleep(0.5)  # anything beyond one per host would show up now
                    async with plain.get(stats_url + "?sample=1") as r:
                        stats = await r.json()
                node_cpu = proc_cpu_seconds(node.proc.pid)
                jobs = delivery_jobs(settings.data_dir / "nycmg.db")
            log(f"anchor: {hosts} signed POSTs from a bare client loop")
            inboxes = [f"http://{receiver_address(h)}:{receiver_port}/inbox" for h in range(hosts)]
            anchor = await anchor_run(
                stats_url,
                stats["sample"].encode(),
                inboxes,
                sender["key_id"],
                sender["private_pem"],
                anchor_concurrency,
            )
        finally:
            node.stop()
            receivers.stop()

    wall = (stats["last_at"] - published_at) if stats["last_at"] else None
    first = (stats["first_at"] - published_at) if stats["first_at"] else None
    result: dict[str, Any] = {
        "bench": "fanout",
        "quick": quick,
        "database": "sqlite",
        "followers": sender["followers"],
        "receiving_hosts": hosts,
        "requests_sent": stats["received"],
        "requests_target": hosts,
        "verified": stats["verified"],
        "hosts_verified": f"{stats['hosts_verified']}/{hosts}",
        "max_deliveries_per_host": stats["max_per_host"],
        "refused_by_receivers": stats["refused"],
        "publish_to_last_delivery_s": round(wall, 3) if wall is not None else None,
        "publish_to_first_delivery_s": round(first, 3) if first is not None else None,
        "publish_request_ms": round(publish_ms, 1),
        "target_s": TARGET_SECONDS,
        "targets_met": (
            stats["received"] == hosts
            and stats["hosts_verified"] == hosts
            and wall is not None
            and wall <= TARGET_SECONDS
        ),
        "sender_cpu_s": round(node_cpu - cpu0, 3) if node_cpu and cpu0 else None,
        "delivery_jobs": jobs,
        "anchor": anchor,
        "ratio": round(anchor["seconds"] / wall, 3) if wall else None,
        "seed_seconds": round(seed_s, 1),
        "machine": machine(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if quick:
        result["note"] = (
            f"--quick: {sender['followers']} followers on {hosts} hosts instead of 10,000 on 200"
        )
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2,000 followers on 40 hosts")
    p.add_argument(
        "--anchor-concurrency", type=int, default=16, help="the bare client's requests in flight"
    )
    p.add_argument("--receivers", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--hosts", type=int, default=200, help=argparse.SUPPRESS)
    p.add_argument("--keys", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.receivers:
        asyncio.run(serve_receivers(args.receivers, args.hosts, json.loads(args.keys.read_text())))
        return
    emit(asyncio.run(main_async(args.quick, args.anchor_concurrency)))


if __name__ == "__main__":
    main()
