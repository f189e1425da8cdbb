"""The inbox's hot path: host policy without a read per request, and verified
activities stored by group commit.

Why this exists: at a thousand activities a second, the inbox's own work
(parse, one RSA verification) is a fraction of a millisecond, while every
database round trip costs about as much again, and on SQLite every write
transaction waits for the one before it. A transaction per request (insert
the activity, count it on its instance, enqueue its job) made the inbox
queue on the database.

- `allows(host)`: the cheap pre-check before any crypto or key fetch. An
  "allowed" verdict is remembered for `POLICY_TTL` seconds; a refusal is
  always re-read, so unblocking a host takes effect at once. The exact check
  is made again where it counts, in the transaction that stores the
  activity, so a block also takes effect at once.
- `store(row)`: the request's row joins a queue; one task writes everything
  queued in one transaction (executemany inserts of the items and their
  jobs, one counter update per host) and then answers every waiting request.
  Nobody waits for a timer: while one batch commits, the next one gathers.
  Durability is unchanged: a request hears 202 only after the commit that
  stored its activity. Dedupe by activity id is unchanged: ids already
  stored, or repeated within the batch, are answered "duplicate".

On PostgreSQL several server processes may race on the same activity or a
new instance row; the batch then rolls back and its rows are stored one by
one, each in its own transaction, the way a single request would be.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from node.context import NodeContext
from node.models import Job, utcnow

from .models import InboxItem, Instance
from .policy import allows, get_instance

log = logging.getLogger("nycmg.federation.intake")

POLICY_TTL = 30.0
MAX_BATCH = 500
INBOX_JOB = "federation.inbox"
INBOX_JOB_PRIORITY = 50
INBOX_JOB_ATTEMPTS = 12  # node.jobs.enqueue's default

Stored = Literal["accepted", "duplicate", "refused"]


class Intake:
    """One per node process, owned by the federation app: its writer task starts
    with the first activity and `close()` (federation's cleanup_ctx) drains it."""

    def __init__(self, ctx: NodeContext, *, max_batch: int = MAX_BATCH) -> None:
        self.ctx = ctx
        self.max_batch = max_batch
        self._allowed_until: dict[str, float] = {}
        self._queue: list[tuple[dict[str, Any], asyncio.Future[Stored]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self.batches = 0  # how many transactions stored how many rows: for tests and metrics
        self.rows = 0

    # ---- policy ----------------------------------------------------------------

    def _policy_allows(self, policy: str | None) -> bool:
        return allows(self.ctx, Instance(policy=policy or "default"))

    async def allows(self, host: str) -> bool:
        """May `host` deliver to us? Read once per `POLICY_TTL` while it may."""
        host = host.lower()
        now = time.monotonic()
        if self._allowed_until.get(host, 0.0) > now:
            return True
        async with self.ctx.db.read_session() as s:
            policy = await s.scalar(select(Instance.policy).where(Instance.host == host))
        ok = self._policy_allows(policy)
        if ok:
            if len(self._allowed_until) > 10_000:
                self._allowed_until.clear()
            self._allowed_until[host] = now + POLICY_TTL
        else:
            self._allowed_until.pop(host, None)
        return ok

    # ---- storing ---------------------------------------------------------------

    async def store(self, row: dict[str, Any]) -> Stored:
        """Store a verified activity (InboxItem columns) and enqueue its job.

        Returns after the commit: "accepted", "duplicate" (its id is known),
        or "refused" (its host's policy changed since the pre-check).
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Stored] = loop.create_future()
        self._queue.append((row, fut))
        self._ensure_running()
        assert self._wake is not None
        self._wake.set()
        return await fut

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="nycmg-inbox-intake")

    async def close(self) -> None:
        """Write what is queued, then stop (the app is shutting down)."""
        while self._queue:
            await self._flush()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            await self._flush()

    async def _flush(self) -> None:
        batch = self._queue[: self.max_batch]
        del self._queue[: self.max_batch]
        if not batch:
            return
        try:
            results = await self._write_batch([row for row, _ in batch])
        except IntegrityError:
            results = []
            for row, _ in batch:
                try:
                    results.append(await self._write_one(row))
                except Exception as e:  # noqa: BLE001 - this request fails, not the others
                    results.append(e)
        except Exception as e:  # noqa: BLE001 - the database failed: every waiter hears it
            log.exception("storing inbox items failed")
            results = [e] * len(batch)
        stored = False
        for (_, fut), result in zip(batch, results, strict=True):
            stored = stored or result == "accepted"
            if fut.done():  # the request was cancelled; its row is stored anyway
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)
        if stored:
            self.ctx.wake_worker()

    async def _write_batch(self, rows: list[dict[str, Any]]) -> list[Stored]:
        """One transaction for the batch; raises IntegrityError when another process raced us."""
        results: list[Stored] = ["duplicate"] * len(rows)
        first: dict[str, int] = {}
        for i, row in enumerate(rows):
            first.setdefault(row["activity_id"], i)
        hosts = {row["host"] for row in rows}
        now = utcnow()
        async with self.ctx.db.transaction() as s:
            known = set(
                (
                    await s.scalars(
                        select(InboxItem.activity_id).where(InboxItem.activity_id.in_(list(first)))
                    )
                ).all()
            )
            policies = dict(
                (
                    await s.execute(
                        select(Instance.host, Instance.policy).where(Instance.host.in_(hosts))
                    )
                ).all()
            )
            fresh: list[int] = []
            for activity_id, i in first.items():
                if not self._policy_allows(policies.get(rows[i]["host"])):
                    results[i] = "refused"
                elif activity_id not in known:
                    results[i] = "accepted"
                    fresh.append(i)
            if not fresh:
                return results
            per_host = Counter(rows[i]["host"] for i in fresh)
            new_hosts = [h for h in per_host if h not in policies]
            if new_hosts:
                await s.execute(
                    insert(Instance),
                    [dict(host=h, policy="default", first_seen_at=now) for h in new_hosts],
                )
            ids = (
                await s.scalars(
                    insert(InboxItem).returning(InboxItem.id, sort_by_parameter_order=True),
                    [rows[i] for i in fresh],
                )
            ).all()
            await s.execute(insert(Job), [_job_row(item_id, now) for item_id in ids])
            for host, n in per_host.items():
                await s.execute(
                    update(Instance)
                    .where(Instance.host == host)
                    .values(received=Instance.received + n)
                )
        self.batches += 1
        self.rows += len(fresh)
        return results

    async def _write_one(self, row: dict[str, Any]) -> Stored:
        """The one-request path: its own transaction, so a race refuses only itself."""
        try:
            async with self.ctx.db.transaction() as s:
                inst = await get_instance(s, row["host"], create=False)
                if not allows(self.ctx, inst):
                    return "refused"  # nothing written: refusals leave no instance row
                inst = inst or await get_instance(s, row["host"])
                item = InboxItem(**row)
                s.add(item)
                await s.flush()
                inst.received += 1
                await s.execute(insert(Job), [_job_row(item.id, utcnow())])
        except IntegrityError:
            async with self.ctx.db.read_session() as s:
                known = await s.scalar(
                    select(InboxItem.id).where(InboxItem.activity_id == row["activity_id"])
                )
            if known is None:
                raise  # not a redelivery: a 500, so the sender retries
            return "duplicate"
        return "accepted"


def _job_row(item_id: int, now: Any) -> dict[str, Any]:
    """The row `node.jobs.enqueue` would write for this item, for an executemany."""
    return dict(
        kind=INBOX_JOB,
        payload={"item": item_id},
        state="queued",
        state_changed_at=now,
        next_attempt_at=now,
        priority=INBOX_JOB_PRIORITY,
        max_attempts=INBOX_JOB_ATTEMPTS,
        attempts=0,
        created_at=now,
    )
