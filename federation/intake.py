"""The inbox's hot path: host policy without a read per request, and verified
activities stored by group commit.

Why this exists: at a thousand activities a second, the inbox's own work
(parse, one RSA verification) is a fraction of a millisecond, while a write
transaction per request (insert the activity, count it on its instance,
enqueue its job) queued every request behind the one before on SQLite's
single writer.

- `allows(host)`: the cheap pre-check before any crypto or key fetch. An
  "allowed" verdict is remembered for `POLICY_TTL` seconds; a refusal is
  always re-read, so unblocking a host takes effect at once. The exact check
  is made again where it counts, in the transaction that stores the
  activity, so a block also takes effect at once.
- `store(row)`: the request's row joins a queue; one task writes everything
  queued in one transaction (multi-row inserts of the items and their jobs,
  one counter update per host) and then answers every waiting request.
  Nobody waits for a timer: while one batch commits, the next one gathers.
  Durability is unchanged: a request hears 202 only after the commit that
  stored its activity. Dedupe by activity id is unchanged: ids already
  stored, or repeated within the batch, are answered "duplicate".

On SQLite the batch is written synchronously, on the event loop, through a
connection of its own. That is deliberate. Through aiosqlite each statement
is three or four hand-offs to the connection's thread and back, and in a
busy process each hand-off waits for the event loop and the GIL: a batch
that costs 2 ms of work took 30 ms of wall time, with the one writer held
throughout. Done in place it takes its 1-3 ms of CPU and nothing else. The
loop is never blocked on a lock: this connection has no busy timeout, so
when another writer (the worker's transaction, another process) holds the
database, BEGIN fails at once and the batch is retried on a later turn of
the loop. It never runs a WAL checkpoint (that fsyncs); the pooled
connections do. On PostgreSQL, and for an in-memory SQLite database, the
same statements run through the async engine.

A batch that breaks a constraint other than the duplicate id rolls back and
its rows are stored one by one, each in its own transaction, the way a
single request would be, so one bad row fails only its own request.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    literal,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from node.context import NodeContext
from node.models import Job, utcnow
from node.models.base import UTCDateTime

from .models import InboxItem, Instance
from .policy import allows, get_instance

log = logging.getLogger("nycmg.federation.intake")

POLICY_TTL = 30.0
MAX_BATCH = 500
LOCK_PATIENCE = 30.0  # seconds a batch waits for another writer, as the pooled busy timeout
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
        self._verdicts: dict[str, bool] = {}
        self._queue: list[tuple[dict[str, Any], asyncio.Future[Stored]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._sync_engine: Engine | None = None
        self._closing = False
        self.batches = 0  # transactions and the rows they stored: for tests and metrics
        self.rows = 0

    # ---- policy ----------------------------------------------------------------

    def _policy_allows(self, policy: str | None) -> bool:
        """`policy.allows` by policy name, memoized (a handful of names; settings are fixed)."""
        policy = policy or "default"
        verdict = self._verdicts.get(policy)
        if verdict is None:
            verdict = self._verdicts[policy] = allows(self.ctx, Instance(policy=policy))
        return verdict

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
        fut: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._queue.append((row, fut))
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="nycmg-inbox-intake")
        assert self._wake is not None
        self._wake.set()
        return await fut

    async def close(self) -> None:
        """Write what is queued, then stop (the app is shutting down).

        The writer task is asked to finish rather than cancelled: cancelled
        between taking a batch and answering it, it would leave requests
        waiting on rows that were never written."""
        self._closing = True
        if self._task is not None and not self._task.done():
            assert self._wake is not None
            self._wake.set()
            await self._task
        self._task = None
        while self._queue:  # queued with no task to write them (not expected)
            await self._flush()
        if self._sync_engine is not None:
            self._sync_engine.dispose()
            self._sync_engine = None

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
            await self._flush()

    async def _flush(self) -> None:
        batch = self._queue[: self.max_batch]
        del self._queue[: self.max_batch]
        if not batch:
            return
        rows = [row for row, _ in batch]
        results: list[Stored | BaseException]
        try:
            results = list(await self._write(rows))
        except IntegrityError:
            results = []
            for row in rows:
                try:
                    results.append(await self._write_one(row))
                except Exception as e:  # noqa: BLE001 - this request fails, not the others
                    results.append(e)
        except Exception as e:  # noqa: BLE001 - the database failed: every waiter hears it
            log.exception("storing inbox items failed")
            results = [e] * len(batch)
        accepted = 0
        for (_, fut), result in zip(batch, results, strict=True):
            accepted += result == "accepted"
            if fut.done():  # the request was cancelled; its row is stored anyway
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)
        if accepted:
            self.batches += 1
            self.rows += accepted
            self.ctx.wake_worker()

    async def _write(self, rows: list[dict[str, Any]]) -> list[Stored]:
        engine = self._sqlite_engine()
        if engine is None:
            async with self.ctx.db.engine.begin() as conn:
                return await conn.run_sync(self._write_rows, rows)
        deadline = time.monotonic() + LOCK_PATIENCE
        spins = 0
        with engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            # BEGIN IMMEDIATE by hand, on the driver: a refused attempt costs
            # microseconds, so trying again on every turn of the loop is cheap.
            while True:
                try:
                    raw.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as e:
                    if not _is_busy(e) or time.monotonic() > deadline:
                        raise
                # Another writer holds the database: try again on a later turn.
                spins += 1
                await asyncio.sleep(0 if spins < 50 else 0.002)
            try:
                results = self._write_rows(conn, rows)  # SQLAlchemy sees no BEGIN of its own
            except BaseException:
                raw.rollback()
                raise
            raw.commit()
            return results

    def _sqlite_engine(self) -> Engine | None:
        """The loop's own connection to a SQLite file (see the module docstring)."""
        if self._sync_engine is not None:
            return self._sync_engine
        url = self.ctx.db.url
        if not url.startswith("sqlite+aiosqlite:///") or ":memory:" in url or "mode=memory" in url:
            return None
        engine = create_engine(
            url.replace("sqlite+aiosqlite://", "sqlite+pysqlite://", 1),
            connect_args={"timeout": 0, "check_same_thread": False},
            pool_size=1,
            max_overflow=0,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            dbapi_conn.isolation_level = None  # BEGIN is ours, as in node/db.py
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=0")
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        self._sync_engine = engine
        return engine

    def _write_rows(self, conn: Connection, rows: list[dict[str, Any]]) -> list[Stored]:
        """The batch in one transaction and five statements.

        Ids stored before (a redelivery, or another process storing the same
        activity a moment ago) are skipped by `ON CONFLICT DO NOTHING` and
        answered "duplicate"; so are repeats within the batch.
        """
        results: list[Stored] = ["duplicate"] * len(rows)
        first: dict[str, int] = {}
        for i, row in enumerate(rows):
            first.setdefault(row["activity_id"], i)
        hosts = {row["host"] for row in rows}
        now = utcnow()
        items, instances, jobs = InboxItem.__table__, Instance.__table__, Job.__table__
        insert_new = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert

        policies = dict(
            conn.execute(
                select(instances.c.host, instances.c.policy).where(instances.c.host.in_(hosts))
            ).all()
        )
        allowed: list[int] = []
        for i in first.values():
            if self._policy_allows(policies.get(rows[i]["host"])):
                allowed.append(i)
            else:
                results[i] = "refused"
        if not allowed:
            return results
        new_hosts = {rows[i]["host"] for i in allowed} - policies.keys()
        if new_hosts:
            conn.execute(
                insert_new(instances).on_conflict_do_nothing(index_elements=["host"]),
                [
                    dict(host=h, policy="default", policy_reason="", first_seen_at=now)
                    for h in sorted(new_hosts)
                ],
            )
        # One multi-row INSERT ... RETURNING. The rows come back in any order
        # (asking SQLAlchemy to keep the parameters' order makes it insert row
        # by row on SQLite), so they are matched by activity id.
        stored = conn.execute(
            insert_new(items)
            .on_conflict_do_nothing(index_elements=["activity_id"])
            .returning(items.c.id, items.c.activity_id),
            [rows[i] for i in allowed],
        ).all()
        if not stored:
            return results
        per_host: Counter[str] = Counter()
        for _item_id, activity_id in stored:
            i = first[activity_id]
            results[i] = "accepted"
            per_host[rows[i]["host"]] += 1
        # The jobs come from the rows just stored, in one INSERT ... SELECT: the
        # same values `node.jobs.enqueue` writes, with the constants bound once
        # per batch rather than converted once per row.
        conn.execute(
            insert(jobs).from_select(
                [
                    jobs.c.kind,
                    jobs.c.payload,
                    jobs.c.state,
                    jobs.c.state_changed_at,
                    jobs.c.next_attempt_at,
                    jobs.c.priority,
                    jobs.c.max_attempts,
                    jobs.c.attempts,
                    jobs.c.created_at,
                ],
                select(
                    literal(INBOX_JOB),
                    _json_object(conn.dialect.name, "item", items.c.id),
                    literal("queued"),
                    literal(now, UTCDateTime()),
                    literal(now, UTCDateTime()),
                    literal(INBOX_JOB_PRIORITY),
                    literal(INBOX_JOB_ATTEMPTS),
                    literal(0),
                    literal(now, UTCDateTime()),
                ).where(items.c.id.in_([item_id for item_id, _ in stored])),
            )
        )
        conn.execute(
            update(instances)
            .where(instances.c.host == bindparam("h"))
            .values(received=instances.c.received + bindparam("n")),
            [dict(h=host, n=n) for host, n in per_host.items()],
        )
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
                await s.execute(
                    update(Instance)
                    .where(Instance.id == inst.id)
                    .values(received=Instance.received + 1)
                )
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


def _is_busy(err: sqlite3.OperationalError) -> bool:
    code = getattr(err, "sqlite_errorname", "")
    return code.startswith("SQLITE_BUSY") or "database is locked" in str(err)


def _json_object(dialect: str, key: str, value: Any) -> Any:
    """`{"key": value}` built by the database, for a JSON column."""
    build = func.json_build_object if dialect == "postgresql" else func.json_object
    return build(literal_column(f"'{key}'"), value)


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
