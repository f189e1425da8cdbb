"""A newcomer runs `nycmg demo` and gets a small scene to look around in.

The demo starts real nodes on loopback ports; these stories look at them
over real HTTP while they run (through `run_demo`'s `on_ready` hook), as a
visitor following the banner would.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
import sqlalchemy as sa

from node.cli import demo_network_steps, main
from node.demo import ADMIN, DEMO_PASSWORD, DemoError, run_demo
from node.demo.data import follow_picks, headliner, node_fans, node_specs
from node.demo.run import federation_counts
from node.demo.seed import DemoNetwork, seed
from node.models import Follow, Job, Play, Release


def free_base_port(n: int) -> int:
    """A port with its next n-1 neighbours free too (the demo numbers its nodes)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65535:
            continue
        try:
            for port in range(base, base + n):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


async def _get(http: aiohttp.ClientSession, url: str, token: str | None = None, **params: str):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, params=params, headers=headers) as r:
        assert r.status == 200, f"{url}: {r.status} {await r.text()}"
        return await r.json(content_type=None)


async def _post(http: aiohttp.ClientSession, url: str, token: str, body: dict) -> tuple[int, dict]:
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json(content_type=None)


async def _login(http: aiohttp.ClientSession, node, username: str) -> str:
    async with http.post(
        f"{node.url}/api/v1/auth/token", json={"username": username, "password": DEMO_PASSWORD}
    ) as r:
        assert r.status == 201, await r.text()
        return (await r.json())["token"]


async def _eventually(check, timeout: float = 20.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        assert asyncio.get_running_loop().time() < deadline, f"{check.__name__} not met in time"
        await asyncio.sleep(0.2)
    return result


async def _db_counts(network: DemoNetwork) -> dict[str, tuple[int, ...]]:
    """(follows, plays, releases, transcodes) on each node, to see that a re-run adds none."""
    counts = {}
    for node in network.nodes:
        async with node.ctx.db.read_session() as s:
            counts[node.spec.key] = (
                *[
                    await s.scalar(sa.select(sa.func.count()).select_from(model))
                    for model in (Follow, Play, Release)
                ],
                await s.scalar(
                    sa.select(sa.func.count()).select_from(Job).where(Job.kind == "media.transcode")
                ),
            )
    return counts


async def _plays_of_tracks_on(network: DemoNetwork, origin) -> tuple[int, int]:
    """(plays the other nodes' fans recorded of `origin`'s tracks, remote plays `origin` counted)."""
    made = 0
    for node in network.nodes:
        if node is origin:
            continue
        async with node.ctx.db.read_session() as s:
            made += await s.scalar(
                sa.select(sa.func.count())
                .select_from(Play)
                .where(Play.origin == "local", Play.track_uri.like(f"{origin.url}/%"))
            )
    async with origin.ctx.db.read_session() as s:
        counted = await s.scalar(
            sa.select(sa.func.count()).select_from(Play).where(Play.origin == "remote")
        )
    return made, counted


@pytest.mark.slow
async def test_three_seeded_nodes_answer_over_http(tmp_path, databases):
    seen: dict[str, dict] = {}

    async def look_around(network: DemoNetwork) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for node in network.nodes:
                spec = node.spec
                artists = (await _get(http, f"{node.url}/api/v1/artists", limit="100"))["items"]
                releases = (await _get(http, f"{node.url}/api/v1/releases", limit="100"))["items"]
                events = (await _get(http, f"{node.url}/api/v1/events", limit="100"))["items"]
                found = await _get(http, f"{node.url}/api/v1/search", q=spec.artists[0].name)
                r = await http.post(
                    f"{node.url}/api/v1/auth/token",
                    json={"username": ADMIN, "password": DEMO_PASSWORD},
                )
                me = None
                token = (await r.json()).get("token") if r.status == 201 else None
                if token:
                    async with http.get(
                        f"{node.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
                    ) as r:
                        me = await r.json()
                seen[spec.key] = {
                    "url": node.url,
                    "artists": artists,
                    "releases": releases,
                    "events": events,
                    "search": found,
                    "me": me,
                }

    async def look_across(network: DemoNetwork) -> None:
        """What crossed between the nodes, as a fan and a visitor see it over HTTP."""
        assert not network.notes, network.notes  # every wait was met in time
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as http:
            fans = {}
            for node in network.nodes:
                fan = node_fans(node.spec)[0][0]
                token = await _login(http, node, fan)
                fans[node.spec.key] = (fan, token)
                # The fan follows two or three artists on each other node, all accepted.
                follows = await _get(http, f"{node.url}/api/v1/follows", token)
                others = [n for n in network.nodes if n is not node]
                assert {f["target"]["acct"] for f in follows} == {
                    f"{a.handle}@{other.domain}"
                    for other in others
                    for a in follow_picks(node.spec, fan, other.spec)
                }
                assert all(f["state"] == "accepted" for f in follows), follows
                assert all(2 <= len(follow_picks(node.spec, fan, o.spec)) <= 3 for o in others)
                # Each other node's new release crossed over into the fan's feed.
                feed = (await _get(http, f"{node.url}/api/v1/feed", token, limit="100"))["items"]
                releases = [i["release"] for i in feed if i["kind"] == "release"]
                for other in others:
                    top = f"{headliner(other.spec).handle}@{other.domain}"
                    crossed = [r for r in releases if r["artist"]["acct"] == top]
                    assert len(crossed) == 1, (node.spec.key, other.spec.key, releases)
                    release = crossed[0]
                    assert release["local"] is False and release["kind"] == "ep"
                    assert release["uri"].startswith(f"{other.url}/releases/")
                    assert len(release["tracks"]) >= 3
                    assert all(t["uri"].startswith(f"{other.url}/") for t in release["tracks"])
                # WebFinger finds the node's artists; NodeInfo describes it.
                artist = node.spec.artists[0]
                jrd = await _get(
                    http,
                    f"{node.url}/.well-known/webfinger",
                    resource=f"acct:{artist.handle}@{node.domain}",
                )
                selves = [link["href"] for link in jrd["links"] if link.get("rel") == "self"]
                listed = await _get(http, f"{node.url}/api/v1/artists/{artist.handle}")
                assert selves == [listed["uri"]]
                info = await _get(http, f"{node.url}/nodeinfo/2.1")
                assert info["software"]["name"] == "nycmg"

            # Every play of a remote track reached its origin and was counted once.
            for node in network.nodes:
                made, counted = await _plays_of_tracks_on(network, node)
                assert made >= 4 and counted == made, (node.spec.key, made, counted)

            # The banner's numbers are the nodes' own.
            for node in network.nodes:
                c = await federation_counts(node)
                assert c["releases_in"] == len(network.nodes) - 1
                assert c["follows_out"] >= 4 and c["follows_in"] >= 2 and c["plays_out"] >= 4
                line = f"  {node.spec.key:<8}  {c['follows_out']} out, {c['follows_in']} in"
                assert line in out.getvalue(), (line, out.getvalue())

            # Running the cross-node steps again (a re-run over the same --data)
            # neither follows, publishes nor plays anything twice.
            before = await _db_counts(network)
            for _name, step in network.steps:
                await step(network)
            assert not network.notes, network.notes
            assert await _db_counts(network) == before

            # A fresh play on Brooklyn of a Queens track is counted at Queens,
            # which NodeInfo shows to anyone.
            brooklyn, queens = network.nodes[0], network.nodes[1]
            fan, token = fans["brooklyn"]
            feed = (await _get(http, f"{brooklyn.url}/api/v1/feed", token, limit="100"))["items"]
            track = next(
                t
                for i in feed
                if i["kind"] == "release" and i["release"]["uri"].startswith(queens.url)
                for t in i["release"]["tracks"]
            )
            info_url = f"{queens.url}/nodeinfo/2.1"
            plays_before = (await _get(http, info_url))["metadata"]["library"]["plays"]
            status, play = await _post(
                http,
                f"{brooklyn.url}/api/v1/plays",
                token,
                {
                    "track": track["uri"],
                    "started_at": datetime.now(UTC).isoformat(),
                    "ms_listened": 61_000,
                    "id": "test-play-0000001",
                },
            )
            assert status == 201 and play["new"], play

            async def counted_at_queens() -> bool:
                info = await _get(http, info_url)
                return info["metadata"]["library"]["plays"] == plays_before + 1

            await _eventually(counted_at_queens)

            # That track has audio: its stream on Brooklyn (the fan's node) leads
            # to the MP3 Queens transcoded, and the bytes are MP3 frames.
            async with http.get(f"{brooklyn.url}/tracks/{track['uuid']}/stream") as r:
                assert r.status == 200, (r.status, await r.text())
                assert r.content_type == "audio/mpeg"
                assert str(r.url).startswith(f"{queens.url}/tracks/")
                head = await r.content.read(4096)
            assert head[:3] == b"ID3" or (head[0] == 0xFF and head[1] & 0xE0 == 0xE0), head[:8]

            # The banner's track to play: its page has play buttons whose stream answers.
            page = re.search(r"  play a track    (\S+)", out.getvalue()).group(1)
            async with http.get(page) as r:
                assert r.status == 200
                src = re.search(r'data-play-src="([^"]+)"', await r.text()).group(1)
            async with http.get(
                brooklyn.url + src.replace("&amp;", "&"), headers={"Range": "bytes=0-1023"}
            ) as r:
                assert r.status == 206 and len(await r.read()) == 1024

            # The banner's follow command works as printed: its token, its target.
            text = out.getvalue()
            banner_token = re.search(r"export TOKEN=(\S+)", text).group(1)
            target = re.search(r'"target": "(@[^"]+)"', text).group(1)
            assert target.endswith(f"@{queens.domain}")
            status, follow = await _post(
                http, f"{brooklyn.url}/api/v1/follows", banner_token, {"target": target}
            )
            assert status == 201 and follow["state"] == "pending", follow

            async def accepted() -> bool:
                follows = await _get(http, f"{brooklyn.url}/api/v1/follows", banner_token)
                return any(
                    f["target"]["acct"] == target[1:] and f["state"] == "accepted" for f in follows
                )

            await _eventually(accepted)

    async def look(network: DemoNetwork) -> None:
        await look_around(network)
        await look_across(network)

    out = io.StringIO()
    base = free_base_port(3)
    code = await run_demo(
        3,
        base,
        tmp_path / "demo",
        seed_only=True,
        database_url_for=databases.url_for,
        out=out,
        on_ready=look,
        network_steps=demo_network_steps(),
    )
    assert code == 0
    assert list(seen) == ["brooklyn", "queens", "bronx"]

    for i, (key, spec) in enumerate(zip(seen, node_specs(3), strict=True)):
        node = seen[key]
        assert node["url"] == f"http://127.0.0.1:{base + i}"
        # Artists of this borough, with genres, a bio and links.
        handles = {a["handle"] for a in node["artists"]}
        assert handles == {a.handle for a in spec.artists}
        for artist in node["artists"]:
            assert artist["borough"] == spec.borough
            assert artist["genres"] and artist["summary"] and artist["links"]
            assert artist["acct"].endswith(f"@127.0.0.1:{base + i}")
        # Published releases of several kinds, each with timed tracks.
        own = [r for r in node["releases"] if r["local"]]
        assert len(own) >= 2 * len(spec.artists)
        assert {r["kind"] for r in own} >= {"album"}
        for release in node["releases"]:
            assert release["state"] == "published"
            assert release["tracks"]
            assert all(t["duration_ms"] > 60_000 for t in release["tracks"])
        assert any(len(r["tracks"]) >= 6 for r in own)
        # The node's own listing shows its own catalogue only; what crossed
        # over from the other nodes is in fans' feeds (checked below).
        assert all(r["local"] for r in node["releases"])
        # Upcoming events at the borough's venues, with a lineup and a price in cents.
        assert len(node["events"]) >= 3
        for event in node["events"]:
            assert event["venue"]["borough"] == spec.borough
            assert event["venue"]["lat"] and event["venue"]["lon"]
            assert len(event["lineup"]) >= 2
            assert event["price"]["currency"] == "USD"
            assert isinstance(event["price"]["amount"], int)
        # Search finds the node's first artist.
        titles = [hit.get("title") for hit in node["search"]["results"]]
        assert spec.artists[0].name in titles, node["search"]
        # The admin login printed in the banner works.
        assert node["me"] and node["me"]["role"] == "admin"

    banner = out.getvalue()
    for key, spec in zip(seen, node_specs(3), strict=True):
        assert spec.name in banner
        assert seen[key]["url"] in banner
    assert f"{ADMIN} / {DEMO_PASSWORD}" in banner
    assert "/api/v1/search?q=" in banner
    assert "Across the nodes, over signed ActivityPub" in banner
    for label in ("the feed", "follow across", "WebFinger", "NodeInfo"):
        assert f"  {label}" in banner
    assert f"{seen['brooklyn']['url']}/.well-known/webfinger?resource=acct:" in banner
    # What the subsystems show, each at a page that answered when the banner was made.
    brooklyn = seen["brooklyn"]["url"]
    assert re.search(rf"  play a track    {brooklyn}/releases/[0-9a-f-]{{36}}\n", banner)
    assert re.search(rf"  a venue         {brooklyn}/venues/[0-9a-f-]{{36}}\n", banner)
    assert re.search(rf"  royalties       {brooklyn}/royalties/\d{{4}}-\d\d\n", banner)
    for label, path in (
        ("upload audio", "/studio"),
        ("go live", "/live/go"),
        ("Subsonic apps", "/me/subsonic"),
    ):
        assert f"  {label:<16}{brooklyn}{path}\n" in banner
    # Only what really is not set up is said to be missing: no one is live.
    missing = banner[banner.index("Not set up in this demo:") :]
    assert "live session" in missing
    for shown in ("audio", "royalt", "venue", "federation", "plays"):
        assert shown not in missing, (shown, missing)


@pytest.mark.slow
async def test_the_demo_is_the_same_every_run_and_reopens_its_data(tmp_path):
    async def catalog(network: DemoNetwork) -> None:
        node = network.nodes[0]
        async with aiohttp.ClientSession() as http:
            releases = (await _get(http, f"{node.url}/api/v1/releases", limit="100"))["items"]
            events = (await _get(http, f"{node.url}/api/v1/events", limit="100"))["items"]
        runs.append(
            (
                sorted((r["artist"]["handle"], r["title"], len(r["tracks"])) for r in releases),
                sorted((e["title"], e["venue"]["name"], e["price"]["amount"]) for e in events),
            )
        )

    runs: list[tuple] = []
    base = free_base_port(1)
    quiet = io.StringIO()
    for where in ("a", "a", "b"):  # the second run reopens "a" and must not seed again
        assert (
            await run_demo(
                1,
                base,
                tmp_path / where,
                seed_only=True,
                search_timeout=0,
                out=quiet,
                on_ready=catalog,
            )
            == 0
        )
    assert runs[0] == runs[1] == runs[2]
    assert len(runs[0][0]) >= 8


async def test_the_steps_across_nodes_run_once_per_set_of_nodes(tmp_path, monkeypatch):
    """A re-run over the same --data skips the cross-node steps once an earlier
    run finished them for these nodes; a new node (or an unfinished run) runs
    them again, and they are idempotent (the three-node story checks that)."""
    calls: list[list[str]] = []

    async def step(network: DemoNetwork) -> None:
        calls.append([n.spec.key for n in network.nodes])

    async def seeded(node) -> None:
        calls.append([f"seed {node.spec.key}"])

    monkeypatch.setattr("node.demo.seed.NODE_STEPS", [("record", seeded)])

    def network(n: int, *, fresh: str | None = None) -> DemoNetwork:
        nodes = [SimpleNamespace(spec=spec, seeded=spec.key != fresh) for spec in node_specs(n)]
        return DemoNetwork(
            nodes=nodes, data_dir=tmp_path, temporary=False, steps=[("record", step)]
        )

    await seed(network(1))  # one node: nothing crosses
    await seed(network(2))  # seeded earlier, but the steps never finished
    await seed(network(2))  # finished: skipped
    await seed(network(3, fresh="bronx"))  # a new node joins
    await seed(network(2))  # a subset of what is done
    assert calls == [["brooklyn", "queens"], ["seed bronx"], ["brooklyn", "queens", "bronx"]]


async def test_a_port_in_use_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("node.logs.setup_logging", lambda *a, **k: None)  # keep pytest's logging
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(DemoError, match=f"port {port} .* in use"):
            await run_demo(1, port, tmp_path / "d", seed_only=True)
        assert not (tmp_path / "d").exists()

        code = await asyncio.to_thread(
            main, ["demo", "--nodes", "1", "--base-port", str(port), "--seed-only"]
        )
        err = capsys.readouterr().err
        assert code == 1
        assert err.strip().count("\n") == 0 and "already in use" in err


@pytest.mark.slow
def test_the_demo_serves_until_ctrl_c_then_cleans_up(tmp_path):
    """`nycmg demo` as a newcomer runs it: it stays up, and Ctrl-C stops it
    cleanly (exit 0) and removes its temporary folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NYCMG_")}
    env["TMPDIR"] = str(tmp_path)
    base = free_base_port(1)
    # stderr to a file (a pipe nobody reads could fill up and stall the demo);
    # stdout read straight from its descriptor with a deadline, so no line can
    # sit in a Python buffer while select() waits on an empty pipe.
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "demo", "--nodes", "1", "--base-port", str(base)],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
        )
    fd, seen = proc.stdout.fileno(), b""
    try:
        deadline = time.monotonic() + 90
        while b"Serving until Ctrl-C.\n" not in seen:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(fd, 65536) if ready else b""
            if not chunk:
                proc.kill()
                proc.wait()
                pytest.fail(f"no banner: {seen.decode()}{(tmp_path / 'stderr.txt').read_text()}")
            seen += chunk
        with urllib.request.urlopen(f"http://127.0.0.1:{base}/healthz", timeout=5) as r:
            assert r.status == 200
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == 0, stderr
    rest = proc.stdout.read().decode()
    assert rest.strip() == "demo stopped.", (rest, stderr)
    lines = seen.decode().splitlines()
    where = Path(re.search(r"starting 1 node in (\S+) ", lines[0]).group(1))
    leftover = sorted(str(p.relative_to(where)) for p in where.rglob("*")) if where.exists() else []
    assert where.parent == tmp_path and not where.exists(), (leftover, stderr)
