"""Fixtures for the fingerprint tests: a catalogue of synthesized songs,
fingerprinted once per test session, and a helper that puts tracks for them
into a node's database and index."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from detection import synth
from detection.fingerprint import fingerprint_track

CATALOG_SEEDS = tuple(range(1, 13))
SONG_SECONDS = 24.0


@pytest.fixture(scope="session")
def songs() -> dict[int, object]:
    """seed -> samples of the catalogue's songs (synthesized once)."""
    return {seed: synth.song(seed, SONG_SECONDS) for seed in CATALOG_SEEDS}


@pytest.fixture(scope="session")
def song_prints(songs):
    return {seed: fingerprint_track(samples) for seed, samples in songs.items()}


@pytest.fixture
def catalog(song_prints):
    """`ids = await catalog(node)`: one indexed track per song, seed -> track id."""
    from detection.index import index_track
    from node.models import Actor, Track
    from node.services.accounts import create_account

    async def make(node, seeds=CATALOG_SEEDS) -> dict[int, int]:
        ctx = node.ctx
        ids = {}
        async with ctx.db.transaction() as s:
            actor = await s.scalar(select(Actor).where(Actor.handle == "synthband"))
            if actor is None:
                account = await create_account(
                    ctx, s, "synthband", "correct horse battery", "artist"
                )
                actor = await s.get(Actor, account.actor_id)
            for seed in seeds:
                track = Track(
                    uri=ctx.urls.obj("tracks", f"song-{seed}"),
                    artist_id=actor.id,
                    title=f"Song {seed}",
                    state="ready",
                    genres=[],
                    media={},
                )
                s.add(track)
                await s.flush()
                await index_track(s, track.id, song_prints[seed])
                ids[seed] = track.id
        return ids

    return make
