"""The fingerprint index lives in the node's database: tracks go in, excerpts
come back out, deleted tracks leave it, and every process sees changes."""

from __future__ import annotations

from sqlalchemy import func, select

from detection import synth
from detection.fingerprint import fingerprint
from detection.index import index_track, lookup_sql, snapshot
from detection.matching import match, match_sql
from detection.models import FingerprintHash, IndexedTrack
from node.models import Account, Track
from node.services.catalog import delete_track


async def test_an_excerpt_of_an_indexed_track_is_recognised_with_its_position(node, catalog, songs):
    ids = await catalog(node)
    query = fingerprint(synth.excerpt(songs[5], 11.0, 5.0))

    async with node.ctx.db.read_session() as s:
        found = await match(s, query)

    assert found is not None
    assert found.track_id == ids[5]
    assert found.track_uri.endswith("/tracks/song-5")
    assert abs(found.offset_ms - 11_000) <= 100
    assert 0 < found.confidence <= 1
    assert found.votes >= 12


async def test_the_sql_lookup_and_the_in_memory_snapshot_agree(node, catalog, songs):
    ids = await catalog(node, seeds=(1, 2, 3))
    query = fingerprint(synth.excerpt(songs[2], 4.0, 5.0))

    async with node.ctx.db.read_session() as s:
        from_sql = await lookup_sql(s, query.hashes)
        snap = await snapshot(s)
        by_sql = await match_sql(s, query)
        by_snapshot = await match(s, query)

    assert by_sql is not None and by_snapshot is not None
    assert by_sql.track_id == by_snapshot.track_id == ids[2]
    _, slots, frames = snap.lookup(query.hashes)
    _, slots_sql, frames_sql = from_sql.lookup(query.hashes)
    tracks, tracks_sql = snap.track_ids[slots], from_sql.track_ids[slots_sql]
    assert sorted(zip(tracks.tolist(), frames.tolist(), strict=True)) == sorted(
        zip(tracks_sql.tolist(), frames_sql.tolist(), strict=True)
    )


async def test_indexing_a_track_again_replaces_its_postings(node, catalog, song_prints):
    ids = await catalog(node, seeds=(1,))
    async with node.ctx.db.transaction() as s:
        stored = await index_track(s, ids[1], song_prints[1])
    async with node.ctx.db.read_session() as s:
        rows = await s.scalar(select(func.count()).select_from(FingerprintHash))
        indexed = (await s.execute(select(IndexedTrack))).scalars().all()
    assert rows == stored > 0
    assert [(t.track_id, t.hashes) for t in indexed] == [(ids[1], stored)]


async def test_a_deleted_track_leaves_the_index_and_is_no_longer_recognised(node, catalog, songs):
    ids = await catalog(node, seeds=(1, 2, 3))
    query = fingerprint(synth.excerpt(songs[3], 2.0, 5.0))
    async with node.ctx.db.read_session() as s:
        assert (await match(s, query)).track_id == ids[3]

    async with node.ctx.db.transaction() as s:
        artist = await s.scalar(select(Account).where(Account.username == "synthband"))
        await delete_track(node.ctx, s, artist, await s.get(Track, ids[3]))

    async with node.ctx.db.read_session() as s:
        left = await s.scalar(
            select(func.count())
            .select_from(FingerprintHash)
            .where(FingerprintHash.track_id == ids[3])
        )
        assert left == 0
        assert await match(s, query) is None


async def test_a_track_indexed_after_the_first_query_is_found_next_time(node, catalog, songs):
    await catalog(node, seeds=(1, 2))
    query = fingerprint(synth.excerpt(songs[4], 6.0, 5.0))
    async with node.ctx.db.read_session() as s:
        assert await match(s, query) is None

    ids = await catalog(node, seeds=(4,))

    async with node.ctx.db.read_session() as s:
        found = await match(s, query)
    assert found is not None and found.track_id == ids[4]
