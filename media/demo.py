"""The demo's audio step: a few seeded tracks get real audio, through the upload path.

Run by `nycmg demo` after the core's steps across nodes (node/cli.py
composes it), so the web player, the stream links and Subsonic have
something to play. On every node, the tracks of the EP that crossed over to
the other nodes and of the release on top of the node's first artist's page
(the newest: in the demo the same EP, since its headliner is the first
artist; it is the banner's "play a track" link) get a synthesized master
(media/synth.py: chords, a beat, a little noise; a bit over a minute, as
the demo's tracks must be). Each master goes the way an upload does:
`ctx.upload_inspector` decodes it, the file is kept under DATA/uploads,
`track.uploaded` enqueues the transcode job, and the node's own worker
makes the whole ladder (Opus, MP3 320 and 128, the preview, loudness,
waveform). Once a track is ready, its `Update` carries the stream links to
the followers' nodes; the step waits for both, bounded, and notes what is
late for the banner.

The seeded tracks have metadata only and no API attaches a master to an
existing track, so the master is attached here with the upload's own
pieces rather than through `POST /api/v1/tracks` (which makes a new track).

Masters are mono at 32 kHz: MP3 encodes at that rate, so the ladder is the
real one at about a third of a CD master's CPU (the demo runs under a
test's time limit on small machines). Idempotent: a track that has a master
already (ready, or still processing from an interrupted run) is only
waited for, never uploaded twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from node.demo.across import crossover_release
from node.demo.model import DemoNetwork, DemoNode, run_all
from node.models import Account, Release, Track, utcnow

from . import synth
from .pipeline import in_pool

MASTER_SECONDS = 61.0  # the demo's tracks last more than a minute (a test checks it)
MASTER_RATE = 32_000
# Transcoding a couple of dozen tracks on a busy two-core machine takes a
# while; the federation wait (30 s by default) is too short for it.
TRANSCODE_WAIT_SECONDS = 240.0


def master_flac(seconds: float, seed: int, key: float, title: str, artist: str) -> bytes:
    """A tagged mono FLAC master (runs in the node's process pool)."""
    samples = synth.master(seconds, rate=MASTER_RATE, channels=1, seed=seed, key=key)
    return synth.encode(samples, "flac", rate=MASTER_RATE, tags={"title": title, "artist": artist})


def _seed_of(uuid: str) -> tuple[int, float]:
    """A track's own noise seed and key (a semitone step), stable across runs."""
    h = hashlib.sha256(uuid.encode()).digest()
    return int.from_bytes(h[:4], "big"), 2 ** ((h[4] % 7 - 3) / 12)


async def _releases(node: DemoNode) -> tuple[int | None, int | None]:
    """(the crossover EP, the release on top of the first artist's page: the newest)."""
    plan = crossover_release(node)
    handles = [plan["artist"].handle, node.spec.artists[0].handle]
    async with node.ctx.db.read_session() as s:
        actors = dict(
            (
                await s.execute(
                    select(Account.username, Account.actor_id).where(Account.username.in_(handles))
                )
            ).all()
        )
        crossover = await s.scalar(
            select(Release.id).where(
                Release.artist_id == actors.get(handles[0]),
                Release.title == plan["title"],
                Release.local.is_(True),
            )
        )
        first = await s.scalar(
            select(Release.id)
            .where(
                Release.artist_id == actors.get(handles[1]),
                Release.state == "published",
                Release.local.is_(True),
            )
            .order_by(Release.published_at.desc(), Release.id.desc())
            .limit(1)
        )
    return crossover, first


async def _tracks_of(node: DemoNode, release_ids: list[int | None], column: Any) -> list[str]:
    out: list[str] = []
    async with node.ctx.db.read_session() as s:
        for release_id in dict.fromkeys(r for r in release_ids if r is not None):
            out += (
                await s.scalars(
                    select(column)
                    .where(Track.release_id == release_id)
                    .order_by(Track.position, Track.id)
                )
            ).all()
    return out


async def demo_tracks(node: DemoNode) -> list[str]:
    """UUIDs of the node's tracks that get audio: the crossover EP's, then those
    of the release on top of the first artist's page (in the demo, the same EP)."""
    return await _tracks_of(node, list(await _releases(node)), Track.uuid)


def _keep_master(ctx: Any, data: bytes, uuid: str) -> tuple[str, int]:
    """The master under DATA/uploads, where an upload's is kept until the
    pipeline has stored it; returns (path relative to DATA, size)."""
    digest = hashlib.sha256(data).hexdigest()
    path = ctx.settings.data_dir / "uploads" / digest[:2] / f"{digest}-{uuid}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return str(path.relative_to(ctx.settings.data_dir)), len(data)


async def _needs_master(node: DemoNode, uuid: str) -> tuple[str, str] | None:
    """(title, artist name) when the track has no master yet, else None."""
    async with node.ctx.db.read_session() as s:
        track = await s.scalar(select(Track).where(Track.uuid == uuid))
        if track is None or (track.media or {}).get("source") or track.original_path:
            return None
        if (track.media or {}).get("files"):
            return None
        return track.title, track.artist.name or track.artist.handle


async def attach_master(node: DemoNode, uuid: str) -> bool:
    """Give one metadata-only track a synthesized master, as an upload would;
    False when it has one already."""
    ctx = node.ctx
    names = await _needs_master(node, uuid)
    if names is None:
        return False
    title, artist = names
    seed, key = _seed_of(uuid)
    seconds = MASTER_SECONDS + (seed % 4) / 2  # 61 to 62.5 s
    data = await in_pool(ctx, master_flac, seconds, seed, key, title, artist)
    filename = f"{title}.flac"
    # The same decoding check an upload passes before anything is stored.
    inspected = await ctx.upload_inspector(filename, "audio/flac", data)
    async with ctx.db.transaction() as s:
        track = await s.scalar(select(Track).where(Track.uuid == uuid))
        if track is None or (track.media or {}).get("source") or track.original_path:
            return False
        path, size = await asyncio.to_thread(_keep_master, ctx, data, uuid)
        track.original_path = path
        track.original_mime = (inspected.get("mime") or "audio/flac")[:100]
        track.original_size = size
        track.media = {
            "original_filename": filename[:200],
            "source": {
                k: inspected[k]
                for k in ("ext", "codec", "sample_rate", "channels", "duration_ms", "sha256")
                if k in inspected
            },
        }
        track.duration_ms = inspected.get("duration_ms") or track.duration_ms
        track.state = "processing"
        track.updated_at = utcnow()
        await s.flush()
        # What the pipeline listens for: it enqueues the transcode job in this transaction.
        await ctx.bus.emit(s, "track.uploaded", track_id=track.id, uri=track.uri)
    return True


async def _wait(
    network: DemoNetwork, check: Callable[[], Awaitable[list[str]]], what: str, seconds: float
) -> bool:
    """Poll `check` (what is still missing) until nothing is or `seconds` pass;
    then note what is missing for the banner."""
    deadline = time.monotonic() + seconds
    while missing := await check():
        if time.monotonic() > deadline:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            network.notes.append(f"{what} still on the way: {', '.join(missing[:3])}{more}.")
            return False
        await asyncio.sleep(0.3)
    return True


async def _states(node: DemoNode, uuids: list[str]) -> dict[str, tuple[str, str, bool]]:
    """uuid -> (title, state, has files)."""
    async with node.ctx.db.read_session() as s:
        rows = (
            await s.execute(
                select(Track.uuid, Track.title, Track.state, Track.media).where(
                    Track.uuid.in_(uuids)
                )
            )
        ).all()
    return {r.uuid: (r.title, r.state, bool((r.media or {}).get("files"))) for r in rows}


async def _remote_links(node: DemoNode, uris: list[str]) -> dict[str, bool]:
    """For the copies `node` has of these remote tracks: whether they carry stream links."""
    async with node.ctx.db.read_session() as s:
        rows = (await s.execute(select(Track.uri, Track.media).where(Track.uri.in_(uris)))).all()
    return {r.uri: bool((r.media or {}).get("remote_audio")) for r in rows}


async def give_tracks_audio(network: DemoNetwork) -> None:
    """Masters for a few tracks on every node; wait until they play here and
    until the other nodes' copies of the crossover EP link the audio."""
    chosen = {node.spec.key: await demo_tracks(node) for node in network.nodes}
    await run_all(
        [attach_master(node, uuid) for node in network.nodes for uuid in chosen[node.spec.key]],
        limit=2 * len(network.nodes),
    )
    failed: list[str] = []

    async def processing() -> list[str]:
        waiting = []
        for node in network.nodes:
            for title, state, ready in (await _states(node, chosen[node.spec.key])).values():
                if state == "failed":
                    if f"{title} on {node.spec.name}" not in failed:
                        failed.append(f"{title} on {node.spec.name}")
                elif not (state == "ready" and ready):
                    waiting.append(f"{title} on {node.spec.name}")
        return waiting

    seconds = max(network.wait_seconds, TRANSCODE_WAIT_SECONDS)
    if not await _wait(network, processing, "Audio (transcoding)", seconds):
        return
    if failed:
        network.notes.append(f"Audio could not be processed: {', '.join(failed[:3])}.")

    crossover = {
        node.spec.key: await _tracks_of(node, [(await _releases(node))[0]], Track.uri)
        for node in network.nodes
    }

    async def unlinked() -> list[str]:
        missing = []
        for node in network.nodes:
            for other in network.nodes:
                if other is node:
                    continue
                links = await _remote_links(other, crossover[node.spec.key])
                if not all(links.values()):
                    missing.append(f"{node.spec.name}'s audio links on {other.spec.name}")
        return missing

    await _wait(network, unlinked, "Audio links", network.wait_seconds)
