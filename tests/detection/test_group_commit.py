"""Batches that wait for the database writer are written in one transaction;
each stays its own: one that fails leaves the others committed, and devices
uploading at the same moment each get their own answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text

from detection.client import declared
from detection.group_commit import GroupWriter
from node.models import Play

from .test_batches import _isrc_tracks, device_for, send


async def _probe_writer(node) -> GroupWriter:
    """A group writer for the node's database, and a table for the tests' writes."""
    async with node.ctx.db.transaction() as s:
        await s.execute(text("CREATE TABLE gc_probe (key VARCHAR(20) PRIMARY KEY)"))
    return GroupWriter(node.ctx.db)


async def _labels(node) -> list[str]:
    async with node.ctx.db.read_session() as s:
        rows = await s.execute(text("SELECT key FROM gc_probe ORDER BY key"))
        return [r[0] for r in rows.all()]


async def test_a_failing_write_rolls_back_alone_and_its_caller_gets_the_error(node):
    writer = await _probe_writer(node)

    def insert(key: str, fail: bool = False):
        async def write(session):
            await session.execute(text("INSERT INTO gc_probe (key) VALUES (:k)"), {"k": key})
            if fail:
                raise ValueError(f"{key} refused")
            return key

        return write

    results = await asyncio.gather(
        writer.run(insert("first")),
        writer.run(insert("broken", fail=True)),
        writer.run(insert("third")),
        return_exceptions=True,
    )

    assert results[0] == "first" and results[2] == "third"
    assert isinstance(results[1], ValueError) and str(results[1]) == "broken refused"
    assert await _labels(node) == ["first", "third"]


async def test_a_caller_that_gives_up_while_queued_is_not_written(node):
    writer = await _probe_writer(node)
    release = asyncio.Event()

    async def slow(session):
        await session.execute(text("INSERT INTO gc_probe (key) VALUES ('slow')"))
        await release.wait()

    async def queued(session):
        await session.execute(text("INSERT INTO gc_probe (key) VALUES ('queued')"))

    first = asyncio.create_task(writer.run(slow))
    await asyncio.sleep(0.05)  # `slow` holds the writer; `queued` waits behind it
    second = asyncio.create_task(writer.run(queued))
    await asyncio.sleep(0.05)
    second.cancel()
    release.set()
    await first

    assert second.cancelled()
    assert await _labels(node) == ["slow"]


async def test_devices_uploading_at_once_each_get_their_own_answer(node):
    a, b = await _isrc_tracks(node)
    devices = [await device_for(node, manager=f"venue{k}") for k in range(4)]
    t0 = datetime.now(UTC) - timedelta(hours=2)
    batches = [
        [
            declared(n, t0 + timedelta(minutes=4 * n), 180_000, (a, b)[(n + k) % 2])
            for n in range(20)
        ]
        for k in range(4)
    ]

    # Every device sends its batch, and the first device sends its batch twice, all at once.
    sends = [send(node, client, f"set-{k}", batches[k]) for k, (client, _) in enumerate(devices)]
    sends.append(send(node, devices[0][0], "set-0", batches[0]))
    responses = await asyncio.gather(*sends)

    answers = [await r.json() for r in responses]
    assert [r.status for r in responses] == [200] * 5
    for k, answer in enumerate(answers[:4]):
        assert answer["device"] == devices[k][0].device_url
        assert len(answer["items"]) == 20
    first, again = answers[0]["items"], answers[4]["items"]
    # One of the two copies recorded the plays, the other answers duplicate with the same plays.
    statuses = {first[0]["status"], again[0]["status"]}
    assert statuses == {"matched", "duplicate"}
    recorded = first if first[0]["status"] == "matched" else again
    repeated = again if recorded is first else first
    assert [i["play"] for i in repeated] == [i["play"] for i in recorded]
    async with node.ctx.db.read_session() as s:
        assert await s.scalar(select(func.count()).select_from(Play)) == 80


async def test_stopping_the_node_mid_write_cancels_what_waits_and_commits_nothing(node):
    writer = await _probe_writer(node)
    started = asyncio.Event()

    async def stuck(session):
        await session.execute(text("INSERT INTO gc_probe (key) VALUES ('stuck')"))
        started.set()
        await asyncio.Event().wait()  # never finishes on its own

    async def queued(session):
        await session.execute(text("INSERT INTO gc_probe (key) VALUES ('queued')"))

    first = asyncio.create_task(writer.run(stuck))
    await started.wait()
    second = asyncio.create_task(writer.run(queued))
    await asyncio.sleep(0.05)
    writer._task.cancel()  # what the event loop does to its tasks when the node stops
    results = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 5)

    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert await _labels(node) == []


async def test_a_track_deleted_while_its_batch_waits_for_the_writer_is_answered_unmatched(
    node, monkeypatch
):
    import detection.batches as batches
    from node.models import Track

    a, b = await _isrc_tracks(node)
    client, _ = await device_for(node)
    lookup = batches._tracks
    calls = []

    async def lookup_then_delete(session, items):
        found = await lookup(session, items)
        if not calls:  # the artist deletes track b right after the first lookup
            async with node.ctx.db.transaction() as s:
                await s.delete(await s.scalar(select(Track).where(Track.uri == b)))
        calls.append(len(found))
        return found

    monkeypatch.setattr(batches, "_tracks", lookup_then_delete)
    t0 = datetime.now(UTC) - timedelta(hours=1)

    r = await send(
        node,
        client,
        "late-delete",
        [declared(1, t0, 180_000, a), declared(2, t0 + timedelta(minutes=3), 180_000, b)],
    )

    assert r.status == 200, await r.text()
    assert [i["status"] for i in (await r.json())["items"]] == ["matched", "unmatched"]
    assert calls == [2, 1]  # looked up again after the write found b gone
    async with node.ctx.db.read_session() as s:
        assert list((await s.scalars(select(Play.track_uri))).all()) == [a]
