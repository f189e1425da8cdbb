"""Seeding steps across nodes: fans follow artists on the other nodes, a new
release crosses over to them, and their plays are reported to its origin.

Everything goes the way it would for real people: the fans use the JSON API
with their own tokens, so their node finds `@handle@127.0.0.1:PORT` by
WebFinger and sends a signed Follow; the artist's node accepts it; a release
published afterwards reaches the followers' nodes as a Create; a play of a
remote track is recorded at home and sent to the track's node as a Listen.
Each step waits (bounded) for federation to deliver what it started, and
notes on the network what did not arrive in time instead of failing the demo.

Every step is idempotent, so a re-run over the same `--data` changes nothing
that is already there: a follow that exists is returned as it is, the new
release is found by its title, and plays carry stable ids.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp

from .data import SEED, follow_picks, headliner, node_fans, release_title
from .model import DemoError, DemoNetwork, DemoNode, run_all

TOKEN_NAME = "nycmg demo seeding"
BANNER_TOKEN_NAME = "nycmg demo banner"


# ---- helpers ---------------------------------------------------------------


def _client() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))


async def _account(node: DemoNode, username: str) -> Any:
    from sqlalchemy import select

    from ..models import Account

    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(Account).where(Account.username == username))


async def fan_token(node: DemoNode, username: str) -> str:
    """An API token for one of the node's demo fans, good for an hour (seeding only)."""
    if username not in node.tokens:
        from ..auth import issue_token
        from ..models import Account

        account = await _account(node, username)
        async with node.ctx.db.transaction() as s:
            secret, _ = await issue_token(
                s, await s.get(Account, account.id), "api", TOKEN_NAME, timedelta(hours=1)
            )
        node.tokens[username] = secret
    return node.tokens[username]


async def banner_token(node: DemoNode, username: str) -> str:
    """A token for the banner's "things to try", good for a month; the one an
    earlier run printed for the same account is revoked."""
    from sqlalchemy import update

    from ..auth import issue_token
    from ..models import Account, Token, utcnow

    account = await _account(node, username)
    async with node.ctx.db.transaction() as s:
        await s.execute(
            update(Token)
            .where(
                Token.account_id == account.id,
                Token.name == BANNER_TOKEN_NAME,
                Token.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
        secret, _ = await issue_token(
            s, await s.get(Account, account.id), "api", BANNER_TOKEN_NAME, timedelta(days=30)
        )
    return secret


async def _call(
    http: aiohttp.ClientSession,
    node: DemoNode,
    method: str,
    path: str,
    fan: str,
    **kw: Any,
) -> Any:
    """Call the node's JSON API as `fan`; a refusal stops the demo with what it said."""
    headers = {"Authorization": f"Bearer {await fan_token(node, fan)}"}
    async with http.request(method, node.url + path, headers=headers, **kw) as r:
        body = await r.json(content_type=None)
        if r.status >= 400:
            detail = (body.get("detail") or body.get("title")) if isinstance(body, dict) else body
            raise DemoError(
                f"{fan} on {node.spec.name}: {method} {path} answered {r.status}: {detail}"
            )
        return body


async def _until(
    network: DemoNetwork,
    check: Callable[[], Awaitable[list[str]]],
    what: str,
) -> bool:
    """Poll `check` (it returns what is still missing) until nothing is, or the
    network's wait runs out; then note what is missing for the banner."""
    deadline = time.monotonic() + network.wait_seconds
    while True:
        missing = await check()
        if not missing:
            return True
        if time.monotonic() > deadline:
            shown = ", ".join(missing[:3]) + (
                f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            )
            network.notes.append(f"{what} still on the way: {shown}.")
            return False
        await asyncio.sleep(0.2)


def _fans(network: DemoNetwork) -> list[tuple[DemoNode, str]]:
    return [(node, handle) for node in network.nodes for handle, _ in node_fans(node.spec)]


def _others(network: DemoNetwork, node: DemoNode) -> list[DemoNode]:
    return [n for n in network.nodes if n is not node]


# ---- follows ---------------------------------------------------------------


async def follow_across(network: DemoNetwork) -> None:
    """Each fan follows two or three artists on every other node, by handle."""

    async def follow(http: aiohttp.ClientSession, node: DemoNode, fan: str, target: str) -> None:
        await _call(http, node, "POST", "/api/v1/follows", fan, json={"target": target})

    async def pending() -> list[str]:
        waiting = []
        for node, fan in _fans(network):
            ours = {
                f"{artist.handle}@{other.domain}"
                for other in _others(network, node)
                for artist in follow_picks(node.spec, fan, other.spec)
            }
            accepted = {
                f["target"]["acct"]
                for f in await _call(http, node, "GET", "/api/v1/follows", fan)
                if f["state"] == "accepted"
            }
            waiting += [f"{fan}@{node.domain} -> {acct}" for acct in sorted(ours - accepted)]
        return waiting

    async with _client() as http:
        await run_all(
            [
                follow(http, node, fan, f"@{artist.handle}@{other.domain}")
                for node, fan in _fans(network)
                for other in _others(network, node)
                for artist in follow_picks(node.spec, fan, other.spec)
            ],
            limit=8,
        )
        await _until(network, pending, "Follows")


# ---- a new release crosses over ----------------------------------------------


def crossover_release(node: DemoNode) -> dict[str, Any]:
    """What the node's headliner releases once fans elsewhere follow them."""
    rng = node.rng("crossover")
    artist = headliner(node.spec)
    long_form = any(g in ("ambient", "jazz", "experimental", "chamber") for g in artist.genres)
    # Three tracks (the demo gives them audio, and transcoding is what costs):
    # the draw of a fourth title stays, so the EP's title is the same as before.
    titles = list(dict.fromkeys(release_title(rng) for _ in range(rng.randint(3, 4))))[:3]
    return {
        "artist": artist,
        "title": release_title(rng),
        "tracks": [
            {
                "title": t,
                "duration_ms": (rng.randint(240, 480) if long_form else rng.randint(150, 300))
                * 1000
                + rng.randrange(1000),
                "genres": list(artist.genres),
            }
            for t in titles
        ],
    }


async def publish_crossover(network: DemoNetwork) -> None:
    """The headliner of each node publishes a new EP; it reaches the fans who
    follow them on the other nodes (a Create from the artist's outbox)."""
    from sqlalchemy import select

    from ..models import Account, Release
    from ..services.catalog import create_release, create_track, publish_release, update_release

    uris: dict[str, str] = {}  # node key -> the new release's URI
    for node in network.nodes:
        plan = crossover_release(node)
        artist = plan["artist"]
        account_id = (await _account(node, artist.handle)).id
        async with node.ctx.db.transaction() as s:
            account = await s.get(Account, account_id)
            release = await s.scalar(
                select(Release).where(
                    Release.artist_id == account.actor_id, Release.title == plan["title"]
                )
            )
            if release is None:
                tracks = [
                    (await create_track(node.ctx, s, account, t)).uuid for t in plan["tracks"]
                ]
                release = await create_release(
                    node.ctx,
                    s,
                    account,
                    {
                        "title": plan["title"],
                        "kind": "ep",
                        "tracks": tracks,
                        "genres": list(artist.genres),
                        "description": f"New EP by {artist.name}, out today: the first release "
                        "their followers on the other nodes hear about.",
                        "release_date": date.today(),
                    },
                )
                await publish_release(node.ctx, s, account, release)
            elif release.state == "published":
                # Already out (an earlier run): send it again as an Update, so that
                # followers who arrived since (a node added to the demo) have it too.
                await s.refresh(release, ["tracks", "artist"])
                await update_release(node.ctx, s, account, release, {})
            uris[node.spec.key] = release.uri

    async def missing() -> list[str]:
        absent = []
        for node, fan in _fans(network):
            feed = await _call(http, node, "GET", "/api/v1/feed", fan, params={"limit": "100"})
            seen = {i["release"]["uri"] for i in feed["items"] if i["kind"] == "release"}
            absent += [
                f"{other.spec.name}'s new release for {fan}@{node.domain}"
                for other in _others(network, node)
                if uris[other.spec.key] not in seen
            ]
        return absent

    async with _client() as http:
        await _until(network, missing, "Releases")


# ---- plays -------------------------------------------------------------------


def play_id(node: DemoNode, fan: str, artist: str, release: str, position: int) -> str:
    """Stable across runs (it names the track by artist, release and position, not
    by URI), so a re-run reports the same play, which is never counted twice."""
    key = f"{SEED}:play:{node.spec.key}:{fan}:{artist}:{release}:{position}"
    return "demo-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def listening_session(
    node: DemoNode, fan: str, releases: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """One sitting, a few hours ago: some tracks of each remote release in the
    fan's feed, one after another, mostly heard through, now and then skipped.
    What is played of a release depends on that release alone, so a feed that
    has grown since (a node added) does not change the plays of the others."""
    at = timedelta(0)  # from the start of the sitting; placed in time at the end
    plays = []
    for release in sorted(releases, key=lambda r: (r["artist"]["handle"], r["title"])):
        artist, title = release["artist"]["handle"], release["title"]
        rng = node.rng(f"plays:{fan}:{artist}:{title}")
        tracks = sorted(release["tracks"], key=lambda t: t["position"] or 0)
        heard = rng.sample(tracks, rng.randint(min(2, len(tracks)), len(tracks)))
        for t in sorted(heard, key=lambda t: t["position"] or 0):
            duration = t["duration_ms"] or 180_000
            if rng.random() < 0.2:
                ms = rng.randint(min(20_000, duration), min(70_000, duration))  # skipped
            else:
                ms = int(duration * rng.uniform(0.92, 1.0))
            plays.append(
                {
                    "id": play_id(node, fan, artist, title, t["position"] or 0),
                    "track": t["uri"],
                    "started_at": at,
                    "ms_listened": ms,
                }
            )
            at += timedelta(milliseconds=ms + rng.randint(500, 15_000))
    # It ended between a few minutes and a few hours ago.
    start = now - at - timedelta(minutes=node.rng(f"plays:{fan}").randint(5, 4 * 60))
    for play in plays:
        play["started_at"] = (start + play["started_at"]).isoformat()
    return plays


async def play_remote_tracks(network: DemoNetwork) -> None:
    """Fans play the remote releases in their feeds; each play is recorded on
    the fan's node and reported to the track's node, where it is counted."""
    from sqlalchemy import func, select

    from ..models import Play

    expected: dict[str, set[str]] = {node.spec.key: set() for node in network.nodes}
    by_host = {node.domain: node for node in network.nodes}
    now = datetime.now(UTC)

    async def play_as(http: aiohttp.ClientSession, node: DemoNode, fan: str) -> None:
        feed = await _call(http, node, "GET", "/api/v1/feed", fan, params={"limit": "100"})
        remote = [
            i["release"]
            for i in feed["items"]
            if i["kind"] == "release" and not i["release"]["local"]
        ]
        for body in listening_session(node, fan, remote, now):
            play = await _call(http, node, "POST", "/api/v1/plays", fan, json=body)
            origin = by_host.get(body["track"].split("/")[2])
            if origin is not None:
                expected[origin.spec.key].add(play["uri"])

    async def uncounted() -> list[str]:
        missing = []
        for node in network.nodes:
            uris = expected[node.spec.key]
            if not uris:
                continue
            async with node.ctx.db.read_session() as s:
                counted = await s.scalar(
                    select(func.count())
                    .select_from(Play)
                    .where(Play.origin == "remote", Play.uri.in_(sorted(uris)))
                )
            if counted < len(uris):
                missing.append(f"{len(uris) - counted} plays for {node.spec.name}")
        return missing

    async with _client() as http:
        await run_all([play_as(http, node, fan) for node, fan in _fans(network)], limit=4)
        await _until(network, uncounted, "Plays")
