"""Page and search throughput: `python -m bench.pages [--quick]`.

Figures, measured in one run against the anchor of that run:

- `artist_rps`: requests/second for an artist's page, `GET /@HANDLE`
  (HTML), with 32 requests in flight: one artist's page under a burst, the
  issue's "an artist page under concurrent load" (it is served from the
  anonymous page cache after its first view);
- `many_artists`: the same load spread uniformly over every artist of the
  catalog (2,000), so most requests are a first view that reads the
  database and renders the template: the cost of a cold page, reported
  beside the headline, with its own ratio `ratio_many_artists`;
- `bare_rps`: the same load against a bare aiohttp handler returning a
  small fixed HTML page (the anchor), and `ratio` = artist_rps / bare_rps
  (target >= 0.25);
- search latency p50/p95/p99 (target p95 < 20 ms) for `GET /api/v1/search`
  with varied queries (exact names, single words, typos, prefixes, facet
  filters) over 50,000 indexed items (5,000 with `--quick`), one request
  at a time so it is the latency one fan sees, not queueing.

Wall-clock figures move with whatever else the machine runs (see
`machine.loadavg_1m`), so each load also reports the server process's CPU
time per request (`server_cpu_ms_per_request`, from /proc), and the bare
handler is timed one request at a time too (`bare_one_at_a_time_ms`), the
round trip's floor in the same run.

The node is seeded with bulk inserts (no RSA keys, no audio: neither is on
the measured paths) and indexed with `reindex`, the code `nycmg search
reindex` runs. Servers run in their own processes (bench._common).
"""

from __future__ import annotations

import argparse
import asyncio
import string
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ._common import (
    cpu_ms_per_request,
    emit,
    load,
    log,
    machine,
    make_node,
    percentiles,
    proc_cpu_seconds,
    rng,
    start_server,
)

COMMON = (
    "night blue city love dark light river street summer winter gold golden fire rain "
    "dream dreams heart soul sound sounds dance dancing midnight morning sunday moon sun "
    "star stars echo echoes wave waves ghost ghosts train subway bridge tower harbor block "
    "corner avenue empire kings queens bronx brooklyn island ferry rooftop basement party "
    "bass drum drums horn horns piano guitar voice voices song songs tape tapes radio "
    "static signal loop loops motion slow fast high low deep wild free home away back "
    "again forever never always little big young old new last first second third one two "
    "three red black white green silver neon electric velvet glass stone paper smoke"
).split()
CONSONANTS = "bcdfghjklmnprstvz"
VOWELS = "aeiou"
GENRES = (
    "hip hop",
    "jazz",
    "house",
    "techno",
    "salsa",
    "punk",
    "soul",
    "r&b",
    "drill",
    "reggaeton",
    "indie rock",
    "afrobeats",
    "dancehall",
    "folk",
    "ambient",
    "disco",
    "funk",
    "gospel",
    "metal",
    "bachata",
    "cumbia",
    "dub",
    "grime",
    "latin jazz",
    "noise",
    "experimental",
    "boom bap",
    "bossa nova",
    "emo",
    "shoegaze",
)
KINDS = ("album", "ep", "single", "mixtape")


def invented_word(r: Any) -> str:
    n = r.choice((2, 2, 3, 3, 4))
    return "".join(r.choice(CONSONANTS) + r.choice(VOWELS) for _ in range(n)) + r.choice(
        ("", "", "n", "s", "r")
    )


class Catalog:
    """A deterministic synthetic catalog: invented names plus common English words."""

    def __init__(self, total: int, seed: int = 1729) -> None:
        self.r = rng(seed)
        self.vocab = sorted({invented_word(self.r) for _ in range(max(2000, total // 4))})
        self.n_artists = max(20, total * 4 // 100)
        self.n_events = max(10, total * 4 // 100)
        self.n_releases = max(20, total * 12 // 100)
        self.n_tracks = total - self.n_artists - self.n_events - self.n_releases

    def word(self) -> str:
        r = self.r
        if r.random() < 0.3:
            return r.choice(COMMON)
        # Zipf-ish: some invented words are far more common than others.
        i = int(len(self.vocab) * (r.random() ** 2.2))
        return self.vocab[min(i, len(self.vocab) - 1)]

    def title(self) -> str:
        n = self.r.choice((1, 2, 2, 2, 3, 3, 4))
        return " ".join(self.word() for _ in range(n)).title()

    def person(self) -> str:
        r = self.r
        first = invented_word(r).title()
        return first if r.random() < 0.25 else f"{first} {invented_word(r).title()}"


async def seed(settings: Any, total: int) -> dict[str, Any]:
    """Bulk-insert a public catalog of `total` indexable items; returns names for queries."""
    from sqlalchemy import insert

    from node.db import open_database
    from node.models import Actor, ArtistProfile, Event, Release, Track, Venue, new_uuid

    cat = Catalog(total)
    r = cat.r
    base, domain = settings.base_url, settings.node.domain
    boroughs = list(settings.node.boroughs)
    now = datetime.now(UTC)
    db = open_database(settings.database_url)
    names: dict[str, list[str]] = {"artists": [], "handles": [], "titles": []}
    try:
        async with db.transaction() as s:
            actors, profiles, handles = [], [], set()
            for i in range(cat.n_artists):
                name = cat.person()
                handle = "".join(
                    c for c in name.lower() if c in string.ascii_lowercase + string.digits
                )[:24]
                handle = f"{handle}{i}" if handle in handles or len(handle) < 2 else handle
                handles.add(handle)
                uri = f"{base}/actors/{handle}"
                actors.append(
                    dict(
                        id=i + 1,
                        uri=uri,
                        handle=handle,
                        domain=domain,
                        kind="Group",
                        local=True,
                        is_artist=True,
                        name=name,
                        summary=f"{cat.title()} from {r.choice(boroughs)}",
                        url=f"{base}/@{handle}",
                        inbox_url=f"{uri}/inbox",
                        outbox_url=f"{uri}/outbox",
                        followers_url=f"{uri}/followers",
                        following_url=f"{uri}/following",
                        created_at=now - timedelta(days=r.randint(1, 900)),
                    )
                )
                profiles.append(
                    dict(
                        actor_id=i + 1,
                        borough=r.choice(boroughs),
                        genres=r.sample(GENRES, r.choice((1, 2, 3))),
                        links=[],
                    )
                )
                names["artists"].append(name)
                names["handles"].append(handle)
            await s.execute(insert(Actor), actors)
            await s.execute(insert(ArtistProfile), profiles)

            releases = []
            for i in range(cat.n_releases):
                u = new_uuid()
                title = cat.title()
                published = now - timedelta(days=r.randint(0, 800), seconds=r.randint(0, 86400))
                releases.append(
                    dict(
                        id=i + 1,
                        uuid=u,
                        uri=f"{base}/releases/{u}",
                        artist_id=r.randint(1, cat.n_artists),
                        title=title,
                        kind=r.choice(KINDS),
                        description=cat.title(),
                        genres=[],
                        state="published",
                        published_at=published,
                        local=True,
                    )
                )
                names["titles"].append(title)
            await s.execute(insert(Release), releases)

            for start in range(0, cat.n_tracks, 5000):
                tracks = []
                for i in range(start, min(cat.n_tracks, start + 5000)):
                    u = new_uuid()
                    rel = releases[r.randrange(len(releases))]
                    title = cat.title()
                    tracks.append(
                        dict(
                            uuid=u,
                            uri=f"{base}/tracks/{u}",
                            artist_id=rel["artist_id"],
                            release_id=rel["id"],
                            position=i % 12 + 1,
                            title=title,
                            duration_ms=r.randint(90_000, 420_000),
                            genres=[],
                            state="ready",
                            media={},
                            local=True,
                        )
                    )
                    if i % 20 == 0:
                        names["titles"].append(title)
                await s.execute(insert(Track), tracks)

            venues = []
            for i in range(max(5, cat.n_events // 10)):
                u = new_uuid()
                venues.append(
                    dict(
                        id=i + 1,
                        uuid=u,
                        uri=f"{base}/venues/{u}",
                        name=f"The {cat.word().title()} Room",
                        borough=r.choice(boroughs),
                        address="",
                        local=True,
                    )
                )
            await s.execute(insert(Venue), venues)
            events = []
            for _ in range(cat.n_events):
                u = new_uuid()
                title = cat.title()
                events.append(
                    dict(
                        uuid=u,
                        uri=f"{base}/events/{u}",
                        organizer_id=r.randint(1, cat.n_artists),
                        venue_id=r.randint(1, len(venues)),
                        title=title,
                        description=cat.title(),
                        starts_at=now + timedelta(days=r.randint(-200, 200)),
                        genres=r.sample(GENRES, 1),
                        lineup=[],
                        state="scheduled",
                        local=True,
                    )
                )
                names["titles"].append(title)
            await s.execute(insert(Event), events)
    finally:
        await db.dispose()
    return {
        "names": names,
        "counts": {
            "artists": cat.n_artists,
            "releases": cat.n_releases,
            "tracks": cat.n_tracks,
            "events": cat.n_events,
        },
        "boroughs": boroughs,
        "vocab": cat.vocab,
    }


def typo(word: str, r: Any) -> str:
    """One plausible slip: a swapped pair, a wrong letter, a missing or a doubled one."""
    if len(word) < 4:
        return word
    i = r.randrange(1, len(word) - 1)
    kind = r.choice(("swap", "sub", "drop", "double"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "sub":
        return word[:i] + r.choice(string.ascii_lowercase) + word[i + 1 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def search_queries(seeded: dict[str, Any], n: int, seed: int = 7) -> list[str]:
    """Varied queries as fans type them, drawn from the seeded names."""
    from urllib.parse import urlencode

    r = rng(seed)
    names = seeded["names"]
    out = []
    for _ in range(n):
        roll = r.random()
        params: dict[str, Any] = {}
        if roll < 0.25:  # an artist's name
            q = r.choice(names["artists"])
        elif roll < 0.45:  # a title
            q = r.choice(names["titles"])
        elif roll < 0.60:  # one word
            q = r.choice(r.choice(names["titles"]).split())
        elif roll < 0.75:  # a typo in a name
            words = r.choice(names["artists"] + names["titles"]).split()
            j = r.randrange(len(words))
            words[j] = typo(words[j].lower(), r)
            q = " ".join(words)
        elif roll < 0.90:  # still typing: the last word cut short
            words = r.choice(names["titles"]).split()
            last = words[-1]
            q = " ".join([*words[:-1], last[: max(2, len(last) // 2 + 1)]])
        else:  # a word within a borough or a genre
            q = r.choice(r.choice(names["titles"]).split())
            if r.random() < 0.5:
                params["borough"] = r.choice(seeded["boroughs"])
            else:
                params["genre"] = r.choice(GENRES)
        out.append("/api/v1/search?" + urlencode({"q": q, **params}))
    return out


async def main_async(quick: bool) -> dict[str, Any]:
    from node.config import load_settings
    from node.search.reindex import reindex

    items = 5_000 if quick else 50_000
    requests = 2_000 if quick else 6_000
    search_n = 300 if quick else 1_000
    concurrency = 32
    with tempfile.TemporaryDirectory(prefix="nycmg-bench-") as tmp:
        tmp_path = Path(tmp)
        from ._common import free_port

        port = free_port()
        settings = await make_node(tmp_path / "node", port=port)
        t0 = time.perf_counter()
        seeded = await seed(settings, items)
        seed_s = time.perf_counter() - t0
        log(f"seeded {items} items in {seed_s:.1f}s; indexing")

        from node.bootstrap import node_context

        t0 = time.perf_counter()
        async with node_context(load_settings(settings.data_dir)) as ctx:
            indexed = await reindex(ctx, ctx.settings.search_dir)
        index_s = time.perf_counter() - t0
        log(f"indexed {indexed} documents in {index_s:.1f}s; starting servers")

        node = start_server(
            "node",
            "--data",
            str(settings.data_dir),
            port=port,
            ready_path="/healthz",
            log_dir=tmp_path,
        )
        bare = start_server("bare", log_dir=tmp_path)
        try:
            handles = seeded["names"]["handles"]
            r = rng(11)
            picks = [handles[r.randrange(len(handles))] for _ in range(requests)]
            html = {"Accept": "text/html"}
            probe = await load(
                node.base_url, [f"/@{handles[0]}"], requests=1, concurrency=1, headers=html
            )
            page = "/@HANDLE" if probe.statuses.get(200) == 1 else "/api/v1/artists/HANDLE"
            if page == "/@HANDLE":
                paths = [f"/@{h}" for h in picks]
            else:
                paths = [f"/api/v1/artists/{h}" for h in picks]
            log(
                f"measuring {page} and the bare handler, {requests} requests each, {concurrency} in flight"
            )
            npid, bpid = node.proc.pid, bare.proc.pid
            c0 = proc_cpu_seconds(npid)
            artist = await load(
                node.base_url,
                paths[:1],
                requests=requests,
                concurrency=concurrency,
                warmup=300,
                headers=html,
            )
            artist_cpu = cpu_ms_per_request(c0, proc_cpu_seconds(npid), artist.requests)
            c0 = proc_cpu_seconds(npid)
            many = await load(
                node.base_url,
                paths[1:],
                requests=requests,
                concurrency=concurrency,
                warmup=300,
                headers=html,
            )
            many_cpu = cpu_ms_per_request(c0, proc_cpu_seconds(npid), many.requests)
            c0 = proc_cpu_seconds(bpid)
            anchor = await load(
                bare.base_url,
                ["/"],
                requests=requests,
                concurrency=concurrency,
                warmup=300,
                headers=html,
            )
            bare_cpu = cpu_ms_per_request(c0, proc_cpu_seconds(bpid), anchor.requests)

            log(f"measuring search latency over {search_n} varied queries")
            queries = search_queries(seeded, search_n)
            await load(node.base_url, queries[:50], requests=50, concurrency=1)  # warm the searcher
            c0 = proc_cpu_seconds(npid)
            searched = await load(node.base_url, queries, requests=search_n, concurrency=1)
            search_cpu = cpu_ms_per_request(c0, proc_cpu_seconds(npid), searched.requests)
            # The same one-at-a-time pattern against the bare handler: what this
            # machine's HTTP round trip costs right now.
            bare_seq = await load(bare.base_url, ["/"], requests=search_n, concurrency=1)
            suggest_paths = [
                "/api/v1/search/suggest?q=" + q.split("q=", 1)[1].split("&")[0][:4]
                for q in queries[:300]
            ]
            suggested = await load(
                node.base_url, suggest_paths, requests=len(suggest_paths), concurrency=1
            )
            loaded = await load(node.base_url, queries, requests=search_n, concurrency=8)
        finally:
            node.stop()
            bare.stop()

    s_lat = percentiles(searched.latencies)
    ratio = artist.rps / anchor.rps if anchor.rps else 0.0
    result: dict[str, Any] = {
        "bench": "pages",
        "quick": quick,
        "items_indexed": indexed,
        "catalog": seeded["counts"],
        "page": page,
        "artist_rps": round(artist.rps, 1),
        "bare_rps": round(anchor.rps, 1),
        "ratio": round(ratio, 3),
        "ratio_target": 0.25,
        "ratio_ok": ratio >= 0.25,
        # The same ratio from server CPU per request: it does not depend on the
        # load generator keeping up (a bare handler can outrun one Python client).
        "ratio_by_server_cpu": round(bare_cpu / artist_cpu, 3) if artist_cpu and bare_cpu else None,
        "artist": {**artist.summary(), "server_cpu_ms_per_request": artist_cpu},
        "ratio_many_artists": round(many.rps / anchor.rps, 3) if anchor.rps else 0.0,
        "ratio_many_artists_by_server_cpu": (
            round(bare_cpu / many_cpu, 3) if many_cpu and bare_cpu else None
        ),
        "many_artists": {
            **many.summary(),
            "distinct_artists": len(set(paths[1:])),
            "server_cpu_ms_per_request": many_cpu,
        },
        "bare": {**anchor.summary(), "server_cpu_ms_per_request": bare_cpu},
        "concurrency": concurrency,
        "search_ms": s_lat,
        "search_p95_target_ms": 20,
        "search_p95_ok": s_lat["p95"] < 20,
        "search": {**searched.summary(), "server_cpu_ms_per_request": search_cpu},
        "bare_one_at_a_time_ms": percentiles(bare_seq.latencies),
        "suggest_ms": percentiles(suggested.latencies),
        "search_under_load": {**loaded.summary(), "concurrency": 8},
        "seed_seconds": round(seed_s, 1),
        "index_seconds": round(index_s, 1),
        "machine": machine(),
    }
    if quick:
        result["note"] = (
            f"--quick: {items} indexed items instead of 50,000, {requests} page requests"
        )
    if page != "/@HANDLE":
        result["note_page"] = (
            "GET /@HANDLE did not answer 200; measured the JSON API artist instead"
        )
    return result


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.pages", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="5,000 items and fewer requests")
    args = p.parse_args()
    emit(asyncio.run(main_async(args.quick)))


if __name__ == "__main__":
    main()
