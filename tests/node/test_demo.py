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
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from node.cli import main
from node.demo import ADMIN, DEMO_PASSWORD, DemoError, run_demo
from node.demo.data import node_specs
from node.demo.seed import DemoNetwork


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


async def _get(http: aiohttp.ClientSession, url: str, **params: str) -> dict:
    async with http.get(url, params=params) as r:
        assert r.status == 200, f"{url}: {r.status} {await r.text()}"
        return await r.json()


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

    out = io.StringIO()
    base = free_base_port(3)
    code = await run_demo(
        3,
        base,
        tmp_path / "demo",
        seed_only=True,
        database_url_for=databases.url_for,
        out=out,
        on_ready=look_around,
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
        assert len(node["releases"]) >= 2 * len(spec.artists)
        assert {r["kind"] for r in node["releases"]} >= {"album"}
        for release in node["releases"]:
            assert release["state"] == "published"
            assert release["tracks"]
            assert all(t["duration_ms"] > 60_000 for t in release["tracks"])
        assert any(len(r["tracks"]) >= 6 for r in node["releases"])
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
    assert "In progress" in banner  # it does not pretend federation or royalties exist yet


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
    proc = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "demo", "--nodes", "1", "--base-port", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        while not lines or lines[-1] != "Serving until Ctrl-C.\n":
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready and proc.poll() is None, "".join(lines) + proc.stderr.read()
            lines.append(proc.stdout.readline())
        with urllib.request.urlopen(f"http://127.0.0.1:{base}/healthz", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0, proc.stderr.read()
    assert proc.stdout.read().strip() == "demo stopped."
    where = Path(re.search(r"starting 1 node in (\S+) ", lines[0]).group(1))
    assert where.parent == tmp_path and not where.exists()
