"""Seeding steps: each one a function, run in order on every node, then across nodes."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

from .across import follow_across, play_remote_tracks, publish_crossover
from .data import ADJ, NOUN, node_fans, release_title
from .model import (
    ADMIN,
    DEMO_PASSWORD,
    DemoNetwork,
    DemoNode,
    NetworkStep,
    NodeStep,
    run_all,
)

__all__ = [
    "ADMIN",
    "DEMO_PASSWORD",
    "NETWORK_STEPS",
    "NODE_STEPS",
    "DemoNetwork",
    "DemoNode",
    "seed",
]


# ---- seeding steps: each node ----------------------------------------------


async def seed_admin(node: DemoNode) -> None:
    from ..services.accounts import create_account

    async with node.ctx.db.transaction() as s:
        node.accounts[ADMIN] = await create_account(
            node.ctx, s, ADMIN, DEMO_PASSWORD, "admin", name=f"{node.spec.name} admin"
        )


async def seed_artists(node: DemoNode) -> None:
    """Artists with borough, genres, a bio and links, as their own accounts."""
    from ..services.accounts import create_account
    from ..services.catalog import get_artist, update_artist

    for a in node.spec.artists:
        async with node.ctx.db.transaction() as s:
            account = await create_account(
                node.ctx,
                s,
                a.handle,
                DEMO_PASSWORD,
                "artist",
                name=a.name,
                kind=a.kind,
                borough=node.spec.borough,
                genres=list(a.genres),
            )
            actor = await get_artist(node.ctx, s, a.handle)
            slug = a.handle.replace("_", "")
            await update_artist(
                node.ctx,
                s,
                account,
                actor,
                {
                    "summary": f"{a.bio} From {a.neighbourhood}, {node.spec.borough}.",
                    "location": f"{a.neighbourhood}, {node.spec.borough}",
                    "links": [f"https://{slug}.example/", f"https://video.example/@{slug}"],
                },
            )
        node.accounts[a.handle] = account


RELEASE_SHAPES = (("album", 6, 9), ("ep", 3, 5), ("single", 1, 2))


async def seed_releases(node: DemoNode) -> None:
    """Two or three published releases per artist: tracks (metadata only), then the release."""
    from ..services.catalog import create_release, create_track, publish_release

    rng = node.rng("releases")
    for account in node.artists():
        spec = next(a for a in node.spec.artists if a.handle == account.username)
        kinds = ["album", *rng.sample(["ep", "single", "single"], rng.randint(1, 2))]
        for kind in kinds:
            _, low, high = next(k for k in RELEASE_SHAPES if k[0] == kind)
            titles = list(dict.fromkeys(release_title(rng) for _ in range(rng.randint(low, high))))
            long_form = any(
                g in ("ambient", "jazz", "experimental", "chamber") for g in spec.genres
            )
            async with node.ctx.db.transaction() as s:
                tracks = []
                for t in titles:
                    seconds = rng.randint(240, 540) if long_form else rng.randint(130, 330)
                    track = await create_track(
                        node.ctx,
                        s,
                        account,
                        {
                            "title": t,
                            "duration_ms": seconds * 1000 + rng.randrange(1000),
                            "genres": list(spec.genres),
                        },
                    )
                    tracks.append(track.uuid)
                release = await create_release(
                    node.ctx,
                    s,
                    account,
                    {
                        "title": titles[0] if kind == "single" else release_title(rng),
                        "kind": kind,
                        "tracks": tracks,
                        "genres": list(spec.genres),
                        "description": f"{kind.upper() if kind == 'ep' else kind.capitalize()} by {spec.name}, "
                        f"recorded in {spec.neighbourhood}.",
                        "release_date": date(
                            rng.randint(2019, 2024), rng.randint(1, 12), rng.randint(1, 28)
                        ),
                    },
                )
                await publish_release(node.ctx, s, account, release)
            node.releases.append(release)


async def seed_venues(node: DemoNode) -> None:
    """The borough's rooms, managed by the collective's admin."""
    from ..services.gigs import create_venue

    async with node.ctx.db.transaction() as s:
        for v in node.spec.venues:
            node.venues.append(
                await create_venue(
                    node.ctx,
                    s,
                    node.accounts[ADMIN],
                    {
                        "name": v.name,
                        "address": v.address,
                        "borough": node.spec.borough,
                        "lat": v.lat,
                        "lon": v.lon,
                        "capacity": v.capacity,
                        "website": "https://"
                        + "".join(c for c in v.name.lower() if c.isalnum())
                        + ".example/",
                    },
                )
            )


def _new_york() -> tzinfo:
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo("America/New_York")
    except Exception:  # noqa: BLE001 - no tz database: EST is close enough for a demo
        return timezone(timedelta(hours=-5))


def _evening(days_ahead: int, hour: int) -> datetime:
    """`hour` o'clock New York time, `days_ahead` days from today, in UTC."""
    tz = _new_york()
    day = datetime.now(tz).date() + timedelta(days=days_ahead)
    return datetime(day.year, day.month, day.day, hour, tzinfo=tz).astimezone(UTC)


async def seed_events(node: DemoNode) -> None:
    """Upcoming shows over the next weeks: a headliner, support from the node, a price."""
    from ..services.gigs import create_event

    rng = node.rng("events")
    artists = node.artists()
    names = {a.handle: a.name for a in node.spec.artists}
    days = sorted(rng.sample(range(2, 45), 5))
    for i, day in enumerate(days):
        host = artists[i % len(artists)]
        support = [names[a.username] for a in rng.sample([a for a in artists if a is not host], 2)]
        venue = node.venues[i % len(node.venues)]
        starts = _evening(day, rng.choice((19, 20, 21)))
        title = rng.choice(
            (
                f"{names[host.username]} live",
                f"{names[host.username]} with {support[0]}",
                f"{rng.choice(ADJ)} {rng.choice(NOUN)} Night",
                f"{node.spec.borough} Showcase",
            )
        )
        price = rng.choice((0, 1000, 1500, 2000, 2500))
        async with node.ctx.db.transaction() as s:
            node.events.append(
                await create_event(
                    node.ctx,
                    s,
                    host,
                    {
                        "title": title,
                        "starts_at": starts,
                        "ends_at": starts + timedelta(hours=rng.choice((3, 4))),
                        "venue": venue.uuid,
                        "description": f"Doors at {(starts.astimezone(_new_york()).hour - 1) % 12 or 12} pm. "
                        f"{'Free entry.' if not price else 'Tickets at the door.'} All ages.",
                        "price_amount": price,
                        "price_currency": "USD",
                        "genres": list(
                            next(a.genres for a in node.spec.artists if a.handle == host.username)
                        ),
                        "lineup": [names[host.username], *support],
                    },
                )
            )


async def seed_fans(node: DemoNode) -> None:
    """A couple of listeners with accounts on this node (following comes later)."""
    from ..services.accounts import create_account

    for handle, name in node_fans(node.spec):
        async with node.ctx.db.transaction() as s:
            node.accounts[handle] = await create_account(
                node.ctx, s, handle, DEMO_PASSWORD, "fan", name=name
            )


NODE_STEPS: list[tuple[str, NodeStep]] = [
    ("admin", seed_admin),
    ("artists", seed_artists),
    ("releases", seed_releases),
    ("venues", seed_venues),
    ("events", seed_events),
    ("fans", seed_fans),
]
# Steps across nodes, run once every node is seeded and serving. Each is
# idempotent: a re-run over the same --data does not follow or play twice.
# These are the core's; the composition root (node/cli.py) adds the
# subsystems' own steps after them (a venue device, a royalty close).
NETWORK_STEPS: list[tuple[str, NetworkStep]] = [
    ("follows", follow_across),
    ("crossover", publish_crossover),
    ("plays", play_remote_tracks),
]
NETWORK_MARKER = "network.json"


@contextlib.contextmanager
def _one_password_hash() -> Iterator[None]:
    """Every demo account has the same password, so hash it once: argon2 is
    deliberately slow (a quarter of a second here), and paying that for each
    of two dozen accounts would double the demo's start-up. Only while seeding."""
    from .. import auth

    real = auth.hash_password
    auth.hash_password = functools.lru_cache(maxsize=4)(real)
    try:
        yield
    finally:
        auth.hash_password = real


async def _seed_node(node: DemoNode) -> None:
    for _name, step in NODE_STEPS:
        await step(node)
    node.seeded = True


def _network_done(network: DemoNetwork) -> bool:
    """True when an earlier run finished the cross-node steps for these nodes (or more)."""
    try:
        done = json.loads((network.data_dir / NETWORK_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(done, dict) and {n.spec.key for n in network.nodes} <= set(
        done.get("nodes", [])
    )


async def seed(network: DemoNetwork) -> None:
    """Run every step on the nodes not seeded yet, then the steps across nodes
    unless an earlier run finished them for these nodes (they are idempotent,
    so running them again after a stop half-way, or for a new node, adds only
    what is missing). A reopened `--data` folder is otherwise left as it was:
    its nodes keep what an earlier run, or a visitor, made."""
    fresh = [node for node in network.nodes if not node.seeded]
    with _one_password_hash():
        await run_all([_seed_node(node) for node in fresh])
    if len(network.nodes) < 2 or (not fresh and _network_done(network)):
        return
    for _name, step in network.steps:
        await step(network)
    if network.notes:  # something was late: check again next time
        return
    (network.data_dir / NETWORK_MARKER).write_text(
        json.dumps({"nodes": sorted(n.spec.key for n in network.nodes)}) + "\n"
    )
