"""Work survives: jobs are rows, retried with backoff, dead-lettered, never run twice at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from node.jobs import PermanentFailure, RetryLater, Worker, backoff, enqueue
from node.models import Job, utcnow


async def _job(node, job_id: int) -> Job:
    async with node.ctx.db.read_session() as s:
        return await s.get(Job, job_id)


async def test_a_job_enqueued_in_a_rolled_back_transaction_never_exists(node):
    with pytest.raises(RuntimeError):
        async with node.ctx.db.transaction() as s:
            await enqueue(s, "test.noop", {"n": 1})
            raise RuntimeError("the change failed")
    async with node.ctx.db.read_session() as s:
        assert (await s.scalars(select(Job).where(Job.kind == "test.noop"))).all() == []


async def test_success_failure_backoff_and_dead_letter(node):
    calls: list[int] = []

    async def flaky(job: Job) -> None:
        calls.append(job.attempts)
        if job.payload["fail"]:
            raise ConnectionError("remote down")

    node.ctx.jobs.register("test.flaky", flaky)
    async with node.ctx.db.transaction() as s:
        ok = await enqueue(s, "test.flaky", {"fail": False})
        bad = await enqueue(s, "test.flaky", {"fail": True}, max_attempts=3)
    worker = Worker(node.ctx.db, node.ctx.jobs)
    await worker.run_until_idle()
    assert (await _job(node, ok.id)).state == "done"
    failed = await _job(node, bad.id)
    assert failed.state == "queued" and failed.attempts == 1
    assert failed.last_error == "ConnectionError: remote down"
    assert failed.next_attempt_at > utcnow() + timedelta(seconds=5)

    for _attempt in (2, 3):
        async with node.ctx.db.transaction() as s:
            await s.execute(update(Job).where(Job.id == bad.id).values(next_attempt_at=utcnow()))
        await worker.run_until_idle()
    dead = await _job(node, bad.id)
    assert dead.state == "dead" and dead.attempts == 3
    assert calls.count(1) == 2 and 3 in calls


async def test_permanent_failures_and_explicit_reschedules(node):
    async def handler(job: Job) -> None:
        if job.payload["kind"] == "gone":
            raise PermanentFailure("the object was deleted")
        raise RetryLater(utcnow() + timedelta(hours=1), "rate limited by the remote")

    node.ctx.jobs.register("test.mixed", handler)
    async with node.ctx.db.transaction() as s:
        gone = await enqueue(s, "test.mixed", {"kind": "gone"})
        later = await enqueue(s, "test.mixed", {"kind": "later"})
        unknown = await enqueue(s, "test.nobody-handles-this", {})
    await Worker(node.ctx.db, node.ctx.jobs).run_until_idle()
    assert (await _job(node, gone.id)).state == "dead"
    rescheduled = await _job(node, later.id)
    assert rescheduled.state == "queued" and rescheduled.attempts == 0
    assert rescheduled.next_attempt_at > utcnow() + timedelta(minutes=50)
    assert "no handler" in (await _job(node, unknown.id)).last_error


async def test_two_workers_never_claim_the_same_job(node):
    async with node.ctx.db.transaction() as s:
        for i in range(40):
            await enqueue(s, "test.count", {"i": i})
    a, b = (
        Worker(node.ctx.db, node.ctx.jobs, name="a"),
        Worker(node.ctx.db, node.ctx.jobs, name="b"),
    )
    claimed = await asyncio.gather(*[w.claim(7) for w in (a, b, a, b, a, b)])
    ids = [j.id for batch in claimed for j in batch]
    assert len(ids) == len(set(ids)) == 40


async def test_a_crashed_workers_job_is_reclaimed_after_its_lock_expires(node):
    seen = []

    async def record(job: Job) -> None:
        seen.append(job.id)

    node.ctx.jobs.register("test.record", record)
    async with node.ctx.db.transaction() as s:
        job = await enqueue(s, "test.record", {})
    crashed = Worker(node.ctx.db, node.ctx.jobs, lock_seconds=300, name="crashed")
    assert [j.id for j in await crashed.claim(1)] == [job.id]
    healthy = Worker(node.ctx.db, node.ctx.jobs, name="healthy")
    assert await healthy.claim(1) == []  # still locked
    async with node.ctx.db.transaction() as s:
        await s.execute(
            update(Job).where(Job.id == job.id).values(locked_until=utcnow() - timedelta(seconds=1))
        )
    await healthy.run_until_idle()
    assert seen == [job.id] and (await _job(node, job.id)).state == "done"


async def test_dedupe_keys_collapse_repeated_work(node):
    async with node.ctx.db.transaction() as s:
        first = await enqueue(s, "test.once", {}, dedupe_key="index:artist:1")
        second = await enqueue(s, "test.once", {}, dedupe_key="index:artist:1")
    assert first is not None and second is None


async def test_the_running_worker_picks_up_new_jobs_at_once(node):
    done = asyncio.Event()

    async def handler(job: Job) -> None:
        done.set()

    node.ctx.jobs.register("test.wake", handler)
    worker = Worker(node.ctx.db, node.ctx.jobs, poll_seconds=30)
    node.ctx.wake_worker = worker.wake
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)  # the worker is now idle, waiting up to 30 s
    async with node.ctx.db.transaction() as s:
        await node.ctx.enqueue(s, "test.wake", {})
    await asyncio.wait_for(done.wait(), 5)
    await worker.stop()
    task.cancel()


def test_backoff_grows_then_caps():
    delays = [backoff(n).total_seconds() for n in range(1, 15)]
    assert delays[0] < 15 and delays[5] > delays[0] * 20
    assert max(delays) <= 6 * 3600 * 1.2
