"""Batches that wait for the database writer are written together, in one
transaction (group commit).

SQLite has one writer, so devices' batches queue for it anyway. A commit
writes every page its transaction dirtied, and a thousand plays dirty more
than a thousand pages of the plays' time-ordered indexes, mostly the same
pages the next device's batch dirties. Writing the queue as one transaction
writes those pages once: at four batches in flight, `bench.detection`'s
declared ingest spends about a third of the commit time it did.

Each batch is written in its own savepoint: a batch that fails rolls back
alone and its caller gets its error, the others commit. A caller that gives
up while queued (the device hung up) is skipped; once its batch is being
written it is committed anyway, and the device's retry is answered
`duplicate`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from node.db import Database

Write = Callable[[AsyncSession], Awaitable[Any]]


@dataclass(eq=False, slots=True)
class _Job:
    write: Write
    size: int
    future: asyncio.Future[Any]


class GroupWriter:
    """Runs writes in shared transactions, at most `max_jobs` writes or
    `max_size` items (as the callers count them) per transaction."""

    def __init__(self, db: Database, *, max_jobs: int = 8, max_size: int = 20_000) -> None:
        self.db = db
        self.max_jobs = max_jobs
        self.max_size = max_size
        self._queue: deque[_Job] = deque()
        self._task: asyncio.Task[None] | None = None

    async def run(self, write: Write, size: int = 1) -> Any:
        """`write(session)` inside a savepoint of a shared transaction, once it commits.

        A write that raises `IntegrityError` is tried once more (in a fresh
        savepoint, which sees what a concurrent transaction committed)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Job(write, size, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain(), name="detection.group_commit")
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                group = self._take()
                if group:
                    await self._write(group)
        finally:
            # Cancelled (the node is stopping): nobody is left to write what waits.
            while self._queue:
                job = self._queue.popleft()
                if not job.future.done():
                    job.future.cancel()

    def _take(self) -> list[_Job]:
        group: list[_Job] = []
        size = 0
        while self._queue and len(group) < self.max_jobs:
            job = self._queue[0]
            if job.future.done():  # its caller gave up while it waited
                self._queue.popleft()
                continue
            if group and size + job.size > self.max_size:
                break
            group.append(self._queue.popleft())
            size += job.size
        return group

    async def _write(self, group: list[_Job]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            async with self.db.transaction() as session:
                for job in group:
                    outcomes.append(await _one(session, job.write))
        except BaseException as e:  # the commit itself failed, or the task was cancelled
            for job in group:
                if not job.future.done():
                    if isinstance(e, Exception):
                        job.future.set_exception(e)
                    else:
                        job.future.cancel()
            if not isinstance(e, Exception):
                raise
            return
        for job, (ok, value) in zip(group, outcomes, strict=True):
            if job.future.done():
                continue
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)


async def _one(session: AsyncSession, write: Write) -> tuple[bool, Any]:
    for attempt in range(2):
        try:
            async with session.begin_nested():
                return True, await write(session)
        except IntegrityError as e:
            if attempt:
                return False, e
        except Exception as e:
            return False, e
    raise AssertionError("unreachable")
