"""Starting the demo nodes, waiting for them, the banner, and `run_demo` itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TextIO

import aiohttp
from aiohttp import web

from .across import banner_token
from .data import MAX_NODES, NodeSpec, follow_picks, node_fans, node_specs
from .model import ADMIN, DEMO_PASSWORD, DemoError, DemoNetwork, DemoNode, NetworkStep
from .seed import NETWORK_STEPS, seed


def _demo_environ() -> dict[str, str]:
    """Only log settings pass through from the environment: a NYCMG_DATABASE_URL
    meant for a real node must not point every demo node at one database."""
    return {k: v for k, v in os.environ.items() if k.startswith("NYCMG_LOG_")}


def _check_ports(ports: list[int]) -> None:
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise DemoError(
                    f"port {port} on 127.0.0.1 is already in use; stop what uses it or pass another --base-port"
                ) from None


async def _open_node(
    spec: NodeSpec, port: int, data_dir: Path, database_url: str | None
) -> tuple[DemoNode, bool]:
    """Create (or reopen) a node's data directory and build its app; True when it is new."""
    from ..bootstrap import init_data_dir
    from ..config import CONFIG_FILE, load_settings

    domain = f"127.0.0.1:{port}"
    fresh = not (data_dir / CONFIG_FILE).exists()
    if fresh:
        init_data_dir(
            data_dir,
            domain=domain,
            scheme="http",
            database_url=database_url,
            extra={
                "node.name": spec.name,
                "node.description": spec.description,
                "federation.allow_private_addresses": True,
                "log.format": "text",
                "jobs.poll_seconds": 0.2,
                # Three nodes share one machine: one transcoding process each.
                "media.transcode_processes": 1,
            },
        )
    settings = load_settings(data_dir, environ=_demo_environ())
    if settings.node.domain != domain:
        raise DemoError(
            f"{data_dir} is a demo node for {settings.node.domain}, not {domain}; "
            "use the same --base-port as before or another --data"
        )
    from ..app import create_app
    from ..db import migrate

    app = create_app(settings, worker=True)
    node = DemoNode(spec=spec, port=port, app=app)
    await migrate(node.ctx.db)
    return node, fresh


async def _start(node: DemoNode) -> None:
    node.runner = web.AppRunner(node.app, access_log=None, handle_signals=False)
    await node.runner.setup()
    try:
        await web.TCPSite(node.runner, "127.0.0.1", node.port).start()
    except OSError as e:
        raise DemoError(f"cannot listen on 127.0.0.1:{node.port}: {e.strerror or e}") from None


async def _already_seeded(node: DemoNode) -> bool:
    from sqlalchemy import select

    from ..models import Account

    async with node.ctx.db.read_session() as s:
        return (await s.scalar(select(Account.id).where(Account.username == ADMIN))) is not None


# ---- waiting, reporting ----------------------------------------------------


async def wait_for_search(
    network: DemoNetwork, http: aiohttp.ClientSession, wait_seconds: float
) -> None:
    """Poll each node's search until a seeded artist shows up: the worker builds
    the index after seeding, and a banner that sends people to an empty search
    would be a poor first impression. Bounded; a slow index is reported, not fatal."""
    deadline = time.monotonic() + wait_seconds
    pending = list(network.nodes)
    while pending and time.monotonic() < deadline:
        for node in list(pending):
            query = node.spec.artists[0].name
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                async with http.get(f"{node.url}/api/v1/search", params={"q": query}) as r:
                    body = await r.json() if r.status == 200 else {}
                if body.get("results"):
                    node.search_ready = True
                    pending.remove(node)
        if pending:
            await asyncio.sleep(0.25)


async def _count(http: aiohttp.ClientSession, url: str) -> int:
    """This node's own items in a listing (remote releases that crossed over are listed too)."""
    async with http.get(url, params={"limit": "100"}) as r:
        r.raise_for_status()
        return sum(1 for item in (await r.json())["items"] if item.get("local", True))


async def federation_counts(node: DemoNode) -> dict[str, int]:
    """What crossed between this node and the others, from its database:
    follows out (its fans of remote artists) and in (remote fans of its
    artists), remote releases it knows, plays of remote tracks its fans made
    (each reported to the track's node) and remote plays of its tracks."""
    from sqlalchemy import func, select

    from ..models import Actor, Follow, Play, Release, Track

    local = select(Actor.id).where(Actor.local.is_(True))
    remote = select(Actor.id).where(Actor.local.is_(False))
    queries = {
        "follows_out": select(func.count())
        .select_from(Follow)
        .where(
            Follow.state == "accepted", Follow.follower_id.in_(local), Follow.target_id.in_(remote)
        ),
        "follows_in": select(func.count())
        .select_from(Follow)
        .where(
            Follow.state == "accepted", Follow.follower_id.in_(remote), Follow.target_id.in_(local)
        ),
        "releases_in": select(func.count())
        .select_from(Release)
        .where(Release.local.is_(False), Release.state == "published"),
        "plays_out": select(func.count())
        .select_from(Play)
        .where(
            Play.origin == "local",
            Play.track_id.in_(select(Track.id).where(Track.local.is_(False))),
        ),
        "plays_in": select(func.count()).select_from(Play).where(Play.origin == "remote"),
    }
    async with node.ctx.db.read_session() as s:
        return {name: await s.scalar(q) or 0 for name, q in queries.items()}


async def _answers(http: aiohttp.ClientSession, url: str) -> bool:
    """True when a page exists (2xx or a redirect to a login), so the banner only lists what works."""
    with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
        async with http.get(url, allow_redirects=False) as r:
            return r.status < 400
    return False


async def playable_release(node: DemoNode) -> tuple[str, str, int] | None:
    """(uuid, title, tracks) of the first artist's release whose every track has
    transcoded audio (the one the audio step gave a master), or None."""
    from sqlalchemy import select
    from sqlalchemy.orm import selectinload

    from ..models import Account, Release

    async with node.ctx.db.read_session() as s:
        actor_id = await s.scalar(
            select(Account.actor_id).where(Account.username == node.spec.artists[0].handle)
        )
        releases = (
            await s.scalars(
                select(Release)
                .options(selectinload(Release.tracks))
                .where(Release.artist_id == actor_id, Release.state == "published")
                .order_by(Release.published_at.desc(), Release.id.desc())
            )
        ).all()
        for release in releases:
            tracks = release.tracks
            if tracks and all(t.state == "ready" and (t.media or {}).get("files") for t in tracks):
                return release.uuid, release.title, len(tracks)
    return None


async def heard_venue(node: DemoNode) -> tuple[str, str, int] | None:
    """(uuid, name, plays) of the node's venue where a listening device reported the most plays."""
    from sqlalchemy import func, select

    from ..models import Play, Venue

    async with node.ctx.db.read_session() as s:
        row = (
            await s.execute(
                select(Venue.uuid, Venue.name, func.count(Play.id))
                .join(Play, Play.venue_id == Venue.id)
                .where(Venue.local.is_(True))
                .group_by(Venue.id, Venue.uuid, Venue.name)
                .order_by(func.count(Play.id).desc(), Venue.id)
                .limit(1)
            )
        ).first()
    return tuple(row) if row else None


def _last_month() -> str:
    from datetime import UTC, datetime, timedelta

    first = datetime.now(UTC).replace(day=1)
    last = first - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


async def _subsystem_lines(
    network: DemoNetwork, http: aiohttp.ClientSession
) -> tuple[list[str], list[str]]:
    """The banner's lines for audio, venues, royalties and live (only pages that
    answer), and what of it the demo did not set up."""
    first = network.nodes[0]
    artist = first.spec.artists[0]
    lines: list[str] = []
    missing: list[str] = []

    def add(label: str, url: str, what: str) -> None:
        lines.append(f"  {label:<16}{url}")
        lines.append(f"  {'':<16}  {what}")

    found = await playable_release(first)
    if found and await _answers(http, f"{first.url}/releases/{found[0]}"):
        uuid, title, n = found
        add(
            "play a track",
            f"{first.url}/releases/{uuid}",
            f"“{title}” by {artist.name}: {n} track{'s' if n > 1 else ''} with transcoded audio",
        )
    else:
        missing.append("audio (the tracks have no audio yet)")
    if await _answers(http, f"{first.url}/studio"):
        add(
            "upload audio",
            f"{first.url}/studio",
            f"log in as {artist.handle}; a master becomes Opus and MP3 in the background",
        )
    venue = await heard_venue(first)
    if venue and await _answers(http, f"{first.url}/venues/{venue[0]}"):
        add(
            "a venue",
            f"{first.url}/venues/{venue[0]}",
            f"{venue[1]}: {venue[2]} plays its listening device reported in signed batches",
        )
    period = _last_month()
    if await _answers(http, f"{first.url}/royalties/{period}"):
        add(
            "royalties",
            f"{first.url}/royalties/{period}",
            f"{period} closed on every node and cleared between them (the ledger provider)",
        )
    elif await _answers(http, f"{first.url}/royalties"):
        add("royalties", f"{first.url}/royalties", "the transparency report (no month closed)")
        missing.append("a closed royalty month")
    if await _answers(http, f"{first.url}/live/go"):
        add(
            "go live",
            f"{first.url}/live/go",
            f"as {artist.handle}: send audio from the browser (WHIP); fans on every node listen",
        )
        missing.append("a live session (nobody is live until you go live)")
    if await _answers(http, f"{first.url}/me/subsonic"):
        add(
            "Subsonic apps",
            f"{first.url}/me/subsonic",
            "set a Subsonic password, then point DSub, Symfonium or Feishin at the node",
        )
    missing.append("Stripe (subscriptions and payouts use the built-in ledger; Stripe needs keys)")
    return lines, missing


async def banner(network: DemoNetwork, http: aiohttp.ClientSession, out: TextIO) -> None:
    first = network.nodes[0]
    lines = [
        "",
        f"nycmg demo: {len(network.nodes)} node{'s' if len(network.nodes) > 1 else ''} on loopback, "
        "each with its own database and worker",
        "",
    ]
    width = max(len(n.spec.name) for n in network.nodes)
    for node in network.nodes:
        counts = [
            await _count(http, f"{node.url}/api/v1/{kind}")
            for kind in ("artists", "releases", "events")
        ]
        lines.append(
            f"  {node.spec.name:<{width}}  {node.url:<22}  "
            f"{counts[0]} artists, {counts[1]} releases, {counts[2]} upcoming events"
        )
    if len(network.nodes) > 1:
        keys = max(len(n.spec.key) for n in network.nodes)
        lines += [
            "",
            "Across the nodes, over signed ActivityPub (out: from this node's fans; in: to this node):",
            f"  {'':<{keys}}  {'follows':<16}  {'releases crossed over':<21}  plays reported to the track's node",
        ]
        for node in network.nodes:
            c = await federation_counts(node)
            follows = f"{c['follows_out']} out, {c['follows_in']} in"
            plays = f"{c['plays_out']} out, {c['plays_in']} in"
            lines.append(
                f"  {node.spec.key:<{keys}}  {follows:<16}  {str(c['releases_in']) + ' in':<21}  {plays}"
            )
    where = f"{network.data_dir} (removed at exit)" if network.temporary else str(network.data_dir)
    lines += [
        "",
        f"  data: {where}",
        "",
        f"Log in on any node as {ADMIN} / {DEMO_PASSWORD} (the admin); every demo account",
        f"uses the same password, e.g. {first.spec.artists[0].handle} (an artist) on {first.url}.",
        "",
        "Things to try:",
    ]
    artist = first.spec.artists[0]
    query = artist.name.split()[-1].lower()
    tries = [
        ("the home page", f"{first.url}/"),
        ("an artist page", f"{first.url}/@{artist.handle}"),
        ("search", f"{first.url}/search?q={query}"),
        ("the console", f"{first.url}/admin/"),
    ]
    for label, url in tries:
        if await _answers(http, url):
            lines.append(f"  {label:<16}{url}")
    lines += [
        f"  {'artists (JSON)':<16}{first.url}/api/v1/artists?borough={first.spec.borough.replace(' ', '+')}",
        f"  {'search (JSON)':<16}{first.url}/api/v1/search?q={query}",
        f"  {'events (JSON)':<16}{first.url}/api/v1/events",
        f"  {'API reference':<16}{first.url}/api/v1/openapi.json",
        f"  {'a token':<16}curl -s -X POST {first.url}/api/v1/auth/token -H 'Content-Type: application/json' \\",
        f'  {"":<16}  -d \'{{"username": "{ADMIN}", "password": "{DEMO_PASSWORD}"}}\'',
        f"  {'WebFinger':<16}{first.url}/.well-known/webfinger?resource=acct:{artist.handle}@{first.domain}",
        f"  {'NodeInfo':<16}{first.url}/nodeinfo/2.1",
    ]
    shows, missing = await _subsystem_lines(network, http)
    if shows:
        lines += ["", "Audio, venues, royalties and live:", *shows]
    if len(network.nodes) > 1:
        second = network.nodes[1]
        fan = node_fans(first.spec)[0][0]
        followed = {a.handle for a in follow_picks(first.spec, fan, second.spec)}
        target = next(a for a in second.spec.artists if a.handle not in followed)
        token = await banner_token(first, fan)
        auth = '-H "Authorization: Bearer $TOKEN"'
        lines += [
            "",
            f"As {fan}, a fan on {first.spec.key} who follows artists on the other nodes:",
            f"  {'the token':<16}export TOKEN={token}",
            f"  {'the feed':<16}curl -s {first.url}/api/v1/feed {auth}",
            f"  {'follow across':<16}curl -s -X POST {first.url}/api/v1/follows {auth} \\",
            f"  {'':<16}  -H 'Content-Type: application/json' "
            f'-d \'{{"target": "@{target.handle}@{second.domain}"}}\'',
        ]
    slow = [n.spec.name for n in network.nodes if not n.search_ready]
    if slow:
        lines += ["", f"Search is still indexing on {', '.join(slow)}; it fills in within moments."]
    if network.notes:
        lines += ["", "Federation is catching up (it delivers in the background):"]
        lines += [f"  {note}" for note in network.notes]
    lines += ["", "Not set up in this demo:", *[f"  {m}" for m in missing], ""]
    out.write("\n".join(lines) + "\n")
    out.flush()


async def _wait_for_stop() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            pass
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


# ---- the command -----------------------------------------------------------


def _remove(root: Path) -> None:
    """Remove the temporary folder; again if a last write (a search commit in its
    thread) put something back while it was being removed."""
    for _ in range(20):
        shutil.rmtree(root, ignore_errors=True)
        if not root.exists():
            return
        time.sleep(0.1)


def _demo_root(data_dir: Path | None) -> Path:
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="nycmg-demo-"))
    return Path(data_dir).expanduser().resolve()


async def run_demo(
    nodes: int = 3,
    base_port: int = 8101,
    data_dir: Path | None = None,
    *,
    seed_only: bool = False,
    search_timeout: float = 20.0,
    federation_timeout: float = 30.0,
    database_url_for: Callable[[Path], str | None] | None = None,
    out: TextIO | None = None,
    on_ready: Callable[[DemoNetwork], Awaitable[None]] | None = None,
    network_steps: list[tuple[str, NetworkStep]] | None = None,
) -> int:
    """Start `nodes` nodes on 127.0.0.1:base_port.., seed them, print how to use
    them, and serve until SIGINT/SIGTERM (or return at once with `seed_only`).

    `database_url_for(dir)` gives a node a database other than its SQLite file
    (the tests use it for fresh PostgreSQL databases); `federation_timeout` is
    how long each cross-node step waits for federation to deliver (what is
    late is noted in the banner, not fatal); `on_ready(network)` runs
    once the banner is out, while the nodes still serve (the tests look at them
    over HTTP there). `network_steps` are the steps across nodes (default: the
    core's; `nycmg demo` adds the subsystems'). Returns the exit code.
    """
    out = out or sys.stdout
    if not 1 <= nodes <= MAX_NODES:
        raise DemoError(f"the demo runs 1 to {MAX_NODES} nodes")
    specs = node_specs(nodes)
    ports = [base_port + i for i in range(len(specs))]
    if ports[-1] > 65535:
        raise DemoError("--base-port is too high for that many nodes")
    _check_ports(ports)
    temporary = data_dir is None
    root = _demo_root(data_dir)
    network = DemoNetwork(
        nodes=[],
        data_dir=root,
        temporary=temporary,
        wait_seconds=federation_timeout,
        steps=list(NETWORK_STEPS if network_steps is None else network_steps),
    )
    try:
        out.write(f"starting {len(specs)} node{'s' if len(specs) > 1 else ''} in {root} ...\n")
        out.flush()
        for spec, port in zip(specs, ports, strict=True):
            node_dir = root / spec.key
            url = database_url_for(node_dir) if database_url_for and not node_dir.exists() else None
            node, fresh = await _open_node(spec, port, node_dir, url)
            network.nodes.append(node)
            await _start(node)
            node.seeded = not fresh and await _already_seeded(node)
        await seed(network)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for node in network.nodes:
                async with http.get(f"{node.url}/healthz") as r:
                    if r.status != 200:
                        raise DemoError(
                            f"{node.spec.name} at {node.url} is not healthy ({r.status})"
                        )
            await wait_for_search(network, http, search_timeout)
            await banner(network, http, out)
        if on_ready is not None:
            await on_ready(network)
        if not seed_only:
            out.write("Serving until Ctrl-C.\n")
            out.flush()
            await _wait_for_stop()
        return 0
    finally:
        for node in reversed(network.nodes):
            if node.runner is not None:
                await node.runner.cleanup()
            else:
                await node.ctx.db.dispose()
        if temporary:
            await asyncio.to_thread(_remove, root)
        if network.nodes and not seed_only:
            out.write("demo stopped.\n")
            out.flush()
