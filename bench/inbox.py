"""Inbox throughput: `python -m bench.inbox [--quick]`.

A real node (SQLite, embedded: the job worker on the server's event loop)
runs in its own process; this process is the fediverse around it:

- a "remote hosts" server on loopback (127.0.2.1 .. 127.0.2.4, one port)
  serving the documents of 200 remote actors (50 with `--quick`), each with
  its own RSA-2048 key, so the node looks keys up the way it does in life;
- N distinct activities (80 % `Listen` of the node's tracks, 20 % `Like`),
  each signed by its actor (draft-cavage rsa-sha256, `sign_request`) before
  anything is timed: signing is the sender's cost, not the inbox's.

Phases, in one run:

1. anchor: the same POSTs against a bare aiohttp handler that reads the body
   and answers 202 (`bench._serve accept`), same concurrency;
2. cold: each actor's first activity, the node fetching its key (actor
   document) once: the cold path, reported on its own;
3. load: every other activity, `--concurrency` in flight (64): accepted/s,
   p50/p95/p99 latency, errors;
4. drain: until the worker has processed every stored activity (inbox_items
   state and the job table, read from the node's database): processed
   count and drain time, and a check that none was lost;
5. checks: redelivered activities are acknowledged as duplicates and not
   stored again; tampered bodies and foreign keys get 401 and store nothing.

Targets (DESIGN.md 12, the federation brief): >= 1,500 accepted/s on
SQLite with p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from ._common import (
    Post,
    cpu_ms_per_request,
    emit,
    free_port,
    log,
    machine,
    make_node,
    percentiles,
    post_load,
    proc_cpu_seconds,
    rng,
    start_server,
)

REMOTE_ADDRESSES = [f"127.0.2.{i}" for i in range(1, 5)]
TARGET_RPS = 1500
TARGET_P99_MS = 100
ACTIVITY_JSON = "application/activity+json"


# ---- the remote side: actors, keys, signed activities --------------------------------


def actor_uri(host: str, n: int) -> str:
    return f"http://{host}/users/fan{n}"


def actor_document(uri: str, host: str, public_pem: str) -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": uri,
        "type": "Person",
        "preferredUsername": uri.rsplit("/", 1)[-1],
        "name": uri.rsplit("/", 1)[-1].title(),
        "inbox": f"{uri}/inbox",
        "outbox": f"{uri}/outbox",
        "endpoints": {"sharedInbox": f"http://{host}/inbox"},
        "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": public_pem},
    }


def make_actor(job: dict[str, Any]) -> dict[str, Any]:
    """In a pool process: one actor's key and its activities, signed for the node's inbox.

    Returns the public PEM (for the actor document), the signed POSTs, and a
    few deliberately wrong ones for the checks (a tampered body, and an
    activity signed with this actor's key but claiming another actor).
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from federation.signatures import sign_request

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    uri, inbox_url = job["uri"], job["inbox_url"]
    key_id = f"{uri}#main-key"

    def signed(activity: dict[str, Any], sign_as: str = key_id) -> Post:
        body = json.dumps(activity, separators=(",", ":")).encode()
        headers = sign_request(
            "POST", inbox_url, {"Content-Type": ACTIVITY_JSON}, body, sign_as, pem
        )
        return Post("/inbox", headers, body)

    posts = [signed(a) for a in job["activities"]]
    tampered = posts[0]
    bad = [
        Post(tampered.path, tampered.headers, tampered.body.replace(b"Listen", b"Like!!")),
        signed({**job["activities"][0], "id": f"{uri}/forged/1", "actor": job["other_uri"]}),
    ]
    return {"uri": uri, "public_pem": public_pem, "posts": posts, "bad": bad}


def plan_activities(
    n_actors: int, n_activities: int, node_base: str, track_uris: list[str], remote_port: int
) -> list[dict[str, Any]]:
    """Which actor sends what: ids are unique, times recent, objects our tracks."""
    r = rng(23)
    now = datetime.now(UTC)
    jobs = []
    hosts = [f"{a}:{remote_port}" for a in REMOTE_ADDRESSES]
    uris = [actor_uri(hosts[i % len(hosts)], i) for i in range(n_actors)]
    for i, uri in enumerate(uris):
        count = n_activities // n_actors + (1 if i < n_activities % n_actors else 0)
        acts = []
        for k in range(count):
            track = track_uris[r.randrange(len(track_uris))]
            started = (now - timedelta(minutes=r.randint(5, 50))).isoformat().replace("+00:00", "Z")
            if r.random() < 0.8 or k == 0:
                acts.append(
                    {
                        "@context": "https://www.w3.org/ns/activitystreams",
                        "id": f"{uri}/listens/{k}",
                        "type": "Listen",
                        "actor": uri,
                        "object": track,
                        "to": [f"{node_base}/actors/artist"],
                        "published": started,
                        "startTime": started,
                        "msListened": r.randint(31_000, 240_000),
                        "source": "stream",
                    }
                )
            else:
                acts.append(
                    {
                        "@context": "https://www.w3.org/ns/activitystreams",
                        "id": f"{uri}/likes/{k}",
                        "type": "Like",
                        "actor": uri,
                        "object": track,
                        "to": [f"{node_base}/actors/artist"],
                    }
                )
        jobs.append(
            {
                "uri": uri,
                "other_uri": uris[(i + 1) % len(uris)],
                "inbox_url": f"{node_base}/inbox",
                "activities": acts,
            }
        )
    return jobs


class RemoteHosts:
    """A few fake remote servers on 127.0.2.x serving actor documents (the key lookups)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.docs: dict[str, dict[str, Any]] = {}
        self.fetches = 0
        self.runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def actor(request: web.Request) -> web.Response:
            uri = f"http://{request.host}{request.path}"
            doc = self.docs.get(uri)
            if doc is None:
                raise web.HTTPNotFound()
            self.fetches += 1
            return web.json_response(doc, content_type=ACTIVITY_JSON)

        app = web.Application()
        app.router.add_get("/users/{name}", actor)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        for address in REMOTE_ADDRESSES:
            await web.TCPSite(self.runner, address, self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


# ---- the node --------------------------------------------------------------------------


async def seed_node(settings: Any, n_tracks: int) -> list[str]:
    """One local artist (made by the real account service) and `n_tracks` ready tracks."""
    from sqlalchemy import insert

    from node.bootstrap import node_context
    from node.models import Release, Track, new_uuid
    from node.services.accounts import create_account

    base = settings.base_url
    async with node_context(settings) as ctx:
        async with ctx.db.transaction() as s:
            account = await create_account(ctx, s, "artist", "correct horse battery", "artist")
            artist_id = account.actor_id
            u = new_uuid()
            await s.execute(
                insert(Release),
                [
                    dict(
                        id=1,
                        uuid=u,
                        uri=f"{base}/releases/{u}",
                        artist_id=artist_id,
                        title="Bench",
                        kind="album",
                        description="",
                        genres=[],
                        state="published",
                        published_at=datetime.now(UTC),
                        local=True,
                    )
                ],
            )
            tracks = []
            for i in range(n_tracks):
                u = new_uuid()
                tracks.append(
                    dict(
                        uuid=u,
                        uri=f"{base}/tracks/{u}",
                        artist_id=artist_id,
                        release_id=1,
                        position=i + 1,
                        title=f"Track {i + 1}",
                        duration_ms=240_000,
                        genres=[],
                        state="ready",
                        media={},
                        local=True,
                    )
                )
            await s.execute(insert(Track), tracks)
    return [t["uri"] for t in tracks]


class NodeDB:
    """Read-only peeks at the node's SQLite file from this process (the drain check)."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)

    def states(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT state, count(*) FROM inbox_items GROUP BY state")
        return dict(rows.fetchall())

    def pending_jobs(self) -> int:
        row = self.conn.execute(
            "SELECT count(*) FROM jobs WHERE kind = 'federation.inbox'"
            " AND state IN ('queued', 'running')"
        ).fetchone()
        return row[0]

    def count(self, table: str) -> int:
        return self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608

    def close(self) -> None:
        self.conn.close()


async def wait_drained(db: NodeDB, expected: int, timeout: float) -> tuple[float, dict[str, int]]:
    """Seconds until every stored item left `received` and no inbox job is pending."""
    t0 = time.perf_counter()
    deadline = t0 + timeout
    states: dict[str, int] = {}
    while time.perf_counter() < deadline:
        states = db.states()
        if (
            sum(states.values()) >= expected
            and states.get("received", 0) == 0
            and db.pending_jobs() == 0
        ):
            return time.perf_counter() - t0, states
        await asyncio.sleep(0.05)
    return -1.0, states


def classify(status: int, body: bytes) -> str:
    if status != 202:
        return f"http {status}"
    try:
        return str(json.loads(body).get("status", "?"))
    except ValueError:
        return "?"


# ---- the run ---------------------------------------------------------------------------


async def main_async(quick: bool, concurrency: int, worker: bool = True) -> dict[str, Any]:
    n_actors = 50 if quick else 200
    n_activities = 3_000 if quick else 20_000
    warmup = 4 * concurrency  # sent first on the same connections, not counted
    with tempfile.TemporaryDirectory(prefix="nycmg-bench-inbox-") as tmp:
        tmp_path = Path(tmp)
        port, remote_port = free_port(), free_port()
        settings = await make_node(
            tmp_path / "node",
            port=port,
            extra={"federation.allow_private_addresses": True, "log.format": "text"},
        )
        track_uris = await seed_node(settings, 20)

        t0 = time.perf_counter()
        jobs = plan_activities(n_actors, n_activities, settings.base_url, track_uris, remote_port)
        with ProcessPoolExecutor(max_workers=2) as pool:
            actors = list(pool.map(make_actor, jobs, chunksize=4))
        sign_s = time.perf_counter() - t0
        log(f"{n_actors} actors, {n_activities} activities signed in {sign_s:.1f}s")

        remote = RemoteHosts(remote_port)
        for job, made in zip(jobs, actors, strict=True):
            host = job["uri"].split("/")[2]
            remote.docs[made["uri"]] = actor_document(made["uri"], host, made["public_pem"])
        await remote.start()

        first = [a["posts"][0] for a in actors]
        rest = [p for a in actors for p in a["posts"][1:]]
        rng(5).shuffle(rest)  # actors interleaved, as many remote servers would send

        node = start_server(
            "node",
            "--data",
            str(settings.data_dir),
            *(["--worker"] if worker else []),
            port=port,
            ready_path="/healthz",
            log_dir=tmp_path,
        )
        accept = start_server("accept", log_dir=tmp_path)
        db = NodeDB(settings.data_dir / "nycmg.db")
        try:
            log(f"anchor: {len(rest)} POSTs to a bare 202 handler, {concurrency} in flight")
            cpu0 = proc_cpu_seconds(accept.proc.pid)
            anchor = await post_load(accept.base_url, rest, concurrency=concurrency, warmup=warmup)
            anchor_cpu = cpu_ms_per_request(
                cpu0, proc_cpu_seconds(accept.proc.pid), anchor.requests
            )

            log(f"cold path: {len(first)} first contacts (the node fetches each actor's key)")
            cold = await post_load(
                node.base_url, first, concurrency=min(16, concurrency), classify=classify
            )
            cold_drain, _ = await wait_drained(db, cold.answers.get("accepted", 0), 60)

            log(f"load: {len(rest)} activities, {concurrency} in flight")
            cpu0 = proc_cpu_seconds(node.proc.pid)
            loaded = await post_load(
                node.base_url,
                rest,
                concurrency=concurrency,
                max_seconds=120,
                classify=classify,
                warmup=warmup,
            )
            node_cpu = cpu_ms_per_request(cpu0, proc_cpu_seconds(node.proc.pid), loaded.requests)
            assert loaded.warmup is not None
            accepted = sum(r.answers.get("accepted", 0) for r in (cold, loaded.warmup, loaded))
            log(f"draining: {accepted} stored activities")
            drain_s, states = await wait_drained(db, accepted, 300 if worker else 0)

            stored_before = sum(db.states().values())
            r = rng(9)
            again = r.sample(rest, min(100, len(rest)))
            redelivered = await post_load(node.base_url, again, concurrency=8, classify=classify)
            bad = [b for a in actors[:10] for b in a["bad"]]
            refused = await post_load(node.base_url, bad, concurrency=8, classify=classify)
            stored_after = sum(db.states().values())
            plays, likes = db.count("plays"), db.count("likes")
        finally:
            db.close()
            node.stop()
            accept.stop()
            await remote.stop()

    errors = loaded.requests - loaded.statuses.get(202, 0)
    rps = loaded.answers.get("accepted", 0) / loaded.seconds if loaded.seconds else 0.0
    lat = percentiles(loaded.latencies)
    listens = sum(1 for a in actors for p in a["posts"] if b'"type":"Listen"' in p.body)
    result: dict[str, Any] = {
        "bench": "inbox",
        "quick": quick,
        "database": "sqlite",
        "actors": n_actors,
        "remote_hosts": len(REMOTE_ADDRESSES),
        "activities": n_activities,
        "concurrency": concurrency,
        "warmup_requests": warmup,
        "worker": "on the server's event loop (embedded)" if worker else "off (intake alone)",
        "accepted_per_s": round(rps, 1),
        "latency_ms": lat,
        "errors": errors,
        "node_cpu_ms_per_request": node_cpu,
        "anchor_rps": round(anchor.rps, 1),
        "anchor_latency_ms": percentiles(anchor.latencies),
        "anchor_cpu_ms_per_request": anchor_cpu,
        "ratio": round(rps / anchor.rps, 3) if anchor.rps else 0.0,
        "targets": {"accepted_per_s": TARGET_RPS, "p99_ms": TARGET_P99_MS},
        "targets_met": rps >= TARGET_RPS and lat["p99"] < TARGET_P99_MS and errors == 0,
        "load": loaded.summary() | {"answers": loaded.answers},
        "anchor": anchor.summary(),
        "cold": cold.summary()
        | {
            "answers": cold.answers,
            "key_fetches": remote.fetches,
            "drain_seconds": round(cold_drain, 3),
        },
        "drain": {
            "stored": accepted,
            "processed": states.get("processed", 0),
            "states": states,
            "drain_seconds": round(drain_s, 3),
            "lost": accepted - sum(states.values()),
            "plays_recorded": plays,
            "listens_sent": listens,
            "likes_recorded": likes,
            "all_processed": states.get("processed", 0) == accepted,
        },
        "checks": {
            "redelivered": redelivered.answers,
            "refused": refused.answers,
            "stored_by_redelivery_or_refusal": stored_after - stored_before,
        },
        "signing_seconds": round(sign_s, 1),
        "machine": machine(),
    }
    if quick:
        result["note"] = (
            f"--quick: {n_actors} actors and {n_activities} activities instead of 200 and 20,000"
        )
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.inbox", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="50 actors, 3,000 activities")
    p.add_argument("--concurrency", type=int, default=64, help="requests in flight (64)")
    p.add_argument(
        "--no-worker",
        action="store_true",
        help="run the node without its job worker: the intake alone (nothing is drained)",
    )
    args = p.parse_args()
    emit(asyncio.run(main_async(args.quick, args.concurrency, worker=not args.no_worker)))


if __name__ == "__main__":
    main()
