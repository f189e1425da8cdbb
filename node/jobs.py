"""Durable jobs: enqueue inside a transaction, run by workers (Takahē-style).

A job is a row (see `models/jobs.py`). Workers claim due rows in one
statement (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite serializes writers
with BEGIN IMMEDIATE, so a plain UPDATE ... RETURNING is atomic there), run
the handler registered for the job's kind, and move the row to `done`, back
to `queued` with an exponential backoff, or to `dead`. A job whose worker
died is reclaimed when its lock expires.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, event, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from .db import Database
from .models import Job, utcnow

log = logging.getLogger("nycmg.jobs")


class RetryLater(Exception):
    """Try again at a given time without it counting as a failure."""

    def __init__(self, at: datetime, reason: str = "") -> None:
        super().__init__(reason or f"retry at {at.isoformat()}")
        self.at = at


class PermanentFailure(Exception):
    """No retry can help (bad payload, the object is gone): dead-letter now."""


JobHandler = Callable[[Job], Awaitable[None]]


def backoff(attempts: int, base: float = 10.0, cap: float = 6 * 3600.0) -> timedelta:
    """Exponential backoff with jitter: 10 s, 20 s, 40 s ... capped at 6 h.

    With the default 12 attempts a job keeps trying for about two days.
    """
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


@dataclass
class JobRegistry:
    handlers: dict[str, JobHandler] = field(default_factory=dict)

    def register(self, kind: str, handler: JobHandler) -> None:
        if kind in self.handlers:
            raise ValueError(f"job kind {kind!r} registered twice")
        self.handlers[kind] = handler

    def handler(self, kind: str) -> Callable[[JobHandler], JobHandler]:
        def deco(fn: JobHandler) -> JobHandler:
            self.register(kind, fn)
            return fn

        return deco


_WAKE_KEY = "nycmg.jobs.wake"


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    wake = session.info.pop(_WAKE_KEY, None)
    if wake is not None:
        wake()


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    run_at: datetime | None = None,
    priority: int = 100,
    dedupe_key: str | None = None,
    max_attempts: int = 12,
    wake: Callable[[], None] | None = None,
) -> Job | None:
    """Add a job in the caller's transaction. With `dedupe_key`, a second
    enqueue of the same key while the first exists is a no-op (returns None)."""
    if dedupe_key is not None:
        existing = await session.scalar(select(Job.id).where(Job.dedupe_key == dedupe_key))
        if existing is not None:
            return None
    now = utcnow()
    job = Job(
        kind=kind,
        payload=payload or {},
        state="queued",
        state_changed_at=now,
        next_attempt_at=run_at or now,
        priority=priority,
        dedupe_key=dedupe_key,
        max_attempts=max_attempts,
        created_at=now,
    )
    if dedupe_key is not None:
        try:
            async with session.begin_nested():
                session.add(job)
        except IntegrityError:
            return None
    else:
        session.add(job)
    if wake is not None:
        session.sync_session.info[_WAKE_KEY] = wake
    return job


class Worker:
    """Claims and runs jobs until stopped. Several may run, in one process or many."""

    def __init__(
        self,
        db: Database,
        registry: JobRegistry,
        *,
        concurrency: int = 4,
        poll_seconds: float = 1.0,
        lock_seconds: int = 300,
        backoff_base: float = 10.0,
        name: str | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.lock_seconds = lock_seconds
        self.backoff_base = backoff_base
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._wake = asyncio.Event()
        self._stopping = False
        self._running: set[asyncio.Task] = set()
        self.processed = 0

    def wake(self) -> None:
        """Called after a commit that enqueued work, so idle workers start at once."""
        self._wake.set()

    async def claim(self, limit: int) -> list[Job]:
        now = utcnow()
        due = or_(
            and_(Job.state == "queued", Job.next_attempt_at <= now),
            and_(Job.state == "running", Job.locked_until < now),
        )
        ids = (
            select(Job.id)
            .where(due)
            .order_by(Job.priority, Job.next_attempt_at, Job.id)
            .limit(limit)
        )
        if not self.db.is_sqlite:
            ids = ids.with_for_update(skip_locked=True)
        stmt = (
            update(Job)
            .where(Job.id.in_(ids.scalar_subquery()))
            .values(
                state="running",
                state_changed_at=now,
                locked_until=now + timedelta(seconds=self.lock_seconds),
                locked_by=self.name,
                attempts=Job.attempts + 1,
            )
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        async with self.db.transaction() as s:
            return list((await s.scalars(stmt)).all())

    async def recover_orphans(self) -> int:
        """Requeue every running job (only safe when this is the only worker)."""
        async with self.db.transaction() as s:
            result = await s.execute(
                update(Job)
                .where(Job.state == "running")
                .values(state="queued", locked_until=None, locked_by=None, next_attempt_at=utcnow())
            )
            return result.rowcount or 0

    async def _finish(self, job: Job, **values: Any) -> None:
        values.setdefault("state_changed_at", utcnow())
        async with self.db.transaction() as s:
            await s.execute(
                update(Job)
                .where(Job.id == job.id, Job.locked_by == self.name)
                .values(locked_until=None, locked_by=None, **values)
            )

    async def run_one(self, job: Job) -> None:
        handler = self.registry.handlers.get(job.kind)
        try:
            if handler is None:
                raise PermanentFailure(f"no handler for job kind {job.kind!r}")
            await handler(job)
        except RetryLater as e:
            await self._finish(job, state="queued", next_attempt_at=e.at, attempts=job.attempts - 1)
        except PermanentFailure as e:
            log.warning("job dead", extra={"job": job.id, "kind": job.kind, "error": str(e)})
            await self._finish(job, state="dead", last_error=str(e)[:2000])
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any handler failure is a retry
            error = f"{type(e).__name__}: {e}"[:2000]
            if job.attempts >= job.max_attempts:
                log.warning("job dead", extra={"job": job.id, "kind": job.kind, "error": error})
                await self._finish(job, state="dead", last_error=error)
            else:
                log.info("job retry", extra={"job": job.id, "kind": job.kind, "error": error})
                await self._finish(
                    job,
                    state="queued",
                    last_error=error,
                    next_attempt_at=utcnow() + backoff(job.attempts, self.backoff_base),
                )
        else:
            await self._finish(job, state="done", last_error=None)
        finally:
            self.processed += 1

    async def run_until_idle(self, timeout: float = 30.0) -> int:
        """Run due jobs until none are left (tests and CLI commands); returns how many ran."""
        ran = 0
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            jobs = await self.claim(self.concurrency)
            if not jobs:
                return ran
            await asyncio.gather(*(self.run_one(j) for j in jobs))
            ran += len(jobs)
        return ran

    async def run(self) -> None:
        sem = asyncio.Semaphore(self.concurrency)
        last_prune = 0.0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            free = self.concurrency - len(self._running)
            jobs: list[Job] = []
            if free > 0:
                try:
                    jobs = await self.claim(free)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - database hiccup: wait and retry
                    log.exception("claim failed")
            for job in jobs:
                await sem.acquire()
                task = asyncio.create_task(self.run_one(job))
                self._running.add(task)
                task.add_done_callback(lambda t: (self._running.discard(t), sem.release()))
            if loop.time() - last_prune > 3600:
                last_prune = loop.time()
                await self.prune()
            if not jobs:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                except TimeoutError:
                    pass
            elif len(self._running) >= self.concurrency:
                await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._running:
            await asyncio.wait(self._running, timeout=10)

    async def prune(self, older_than: timedelta = timedelta(days=7)) -> int:
        """Forget finished jobs after a week; dead ones stay for the admin."""
        async with self.db.transaction() as s:
            result = await s.execute(
                delete(Job).where(Job.state == "done", Job.state_changed_at < utcnow() - older_than)
            )
            return result.rowcount or 0


async def queue_health(session: AsyncSession) -> dict[str, Any]:
    """Counts by state and the age of the oldest due job: the console's dashboard figures."""
    rows = (await session.execute(select(Job.state, func.count()).group_by(Job.state))).all()
    counts = {state: 0 for state in ("queued", "running", "done", "dead")}
    counts.update({state: n for state, n in rows})
    oldest = await session.scalar(
        select(func.min(Job.next_attempt_at)).where(
            Job.state == "queued", Job.next_attempt_at <= utcnow()
        )
    )
    lag = (utcnow() - oldest).total_seconds() if oldest else 0.0
    return {"counts": counts, "oldest_due_seconds": round(lag, 1)}
