"""Delivering one activity to one inbox: the `federation.deliver` job.

The job table gives durability, backoff and dead letters. Here: instance
policy, a per-host concurrency limit (in this process), a per-host circuit
breaker (in the database, so every worker honours it), signing with the
sending actor's key, and what each answer means:
2xx delivered; 410 Gone forgets the remote actor; other 4xx (but 401, 408,
429) will not get better, so dead-letter; 5xx and network errors retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from node.context import NodeContext
from node.jobs import PermanentFailure, RetryLater
from node.models import Actor, Job, utcnow

from .actors import forget_remote_actor
from .appkeys import Federation
from .errors import FetchFailed
from .models import Instance, OutboxItem
from .policy import allows, get_instance
from .vocab import host_of

log = logging.getLogger("nycmg.federation.delivery")
HOST_CONCURRENCY = 4
CIRCUIT_THRESHOLD = 5  # consecutive failures before a host's circuit opens
CIRCUIT_MAX = timedelta(hours=1)
RETRYABLE_4XX = {401, 408, 425, 429}
KEY_TTL = 30.0  # how long a cached activity's signing key is trusted (OutgoingCache)
FLUSH_DELAY = 0.5  # seconds successes to healthy hosts wait to be written together (HostHealth)
MAX_PENDING = 1000  # hosts with unwritten successes before they are written at once


def circuit_delay(failures: int) -> timedelta:
    """Open for 1 min after the threshold, doubling per further failure, capped at 1 h."""
    return min(CIRCUIT_MAX, timedelta(minutes=2 ** max(0, failures - CIRCUIT_THRESHOLD)))


@dataclass(frozen=True)
class Outgoing:
    """What every delivery of one activity shares: the activity and its signer's key."""

    payload: dict[str, Any]
    key_id: str
    private_pem: str


class OutgoingCache:
    """Each activity and its signer, read once per process rather than once per inbox.

    A release to followers on 200 hosts is 200 delivery jobs for one
    OutboxItem; reading the item and its actor for each was two queries a
    job. Both are kept `KEY_TTL` seconds (the few most recent, LRU): an
    activity never changes once stored, and a key rotated by `nycmg keys
    rotate` (another process) or an actor deleted meanwhile is seen within
    that. The per-host policy and circuit are still read for every delivery.
    """

    def __init__(self, size: int = 64, key_ttl: float = KEY_TTL) -> None:
        self.size = size
        self.key_ttl = key_ttl
        self._items: OrderedDict[int, tuple[float, Outgoing]] = OrderedDict()

    async def get(self, ctx: NodeContext, item_id: int) -> Outgoing:
        now = time.monotonic()
        hit = self._items.get(item_id)
        if hit is not None and hit[0] > now:
            self._items.move_to_end(item_id)
            return hit[1]
        async with ctx.db.read_session() as s:
            item = await s.get(OutboxItem, item_id)
            if item is None:
                raise PermanentFailure("the activity is gone")
            actor = await s.get(Actor, item.actor_id)
        if actor is None or not actor.private_key_pem or not actor.key_id:
            raise PermanentFailure("the sending actor is gone")
        out = Outgoing(item.payload, actor.key_id, actor.private_key_pem)
        self._items[item_id] = (now + self.key_ttl, out)
        self._items.move_to_end(item_id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return out


class HostHealth:
    """How delivery to each host is going, for the circuit breaker and the console.

    A failure is written at once (the circuit breaker counts them), and so is
    a success that closes a host's failure streak. A success to a host that
    was already fine changes only statistics (last success, delivered count),
    so those are gathered for `FLUSH_DELAY` seconds and written together: a
    release to 200 hosts is then one transaction of bookkeeping instead of
    200 on the node's one SQLite writer. A crash loses at most that delay's
    worth of counts; a shutdown writes them (`close`).

    Writes are single statements, not read-modify-write, since several
    deliveries to one host (and, on PostgreSQL, several workers) finish at once.
    """

    def __init__(self, ctx: NodeContext, delay: float = FLUSH_DELAY) -> None:
        self.ctx = ctx
        self.delay = delay
        self._pending: dict[str, tuple[datetime, int]] = {}  # host -> (last success, count)
        self._flushing: asyncio.Task | None = None
        self._sleeping = False  # the flush task is still waiting out `delay`

    async def success(self, host: str, *, streak_over: bool) -> None:
        host = host.lower()
        last, count = self._pending.pop(host, (None, 0))
        if streak_over:
            async with self.ctx.db.transaction() as s:
                await s.execute(self._upsert(s), [self._row(host, utcnow(), count + 1)])
            return
        self._pending[host] = (utcnow(), count + 1)
        if len(self._pending) >= MAX_PENDING:
            await self.flush()
        elif self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush_later(), name="nycmg-host-health")

    async def failure(self, host: str, error: str) -> None:
        host = host.lower()
        now = utcnow()
        t = Instance.__table__
        pending = self._pending.pop(host, None)
        async with self.ctx.db.transaction() as s:
            if pending is not None:  # what came first is written first
                await s.execute(self._upsert(s), [self._row(host, *pending)])
            inst = await get_instance(s, host)
            failures = await s.scalar(
                update(t)
                .where(t.c.id == inst.id)
                .values(
                    last_failure_at=now,
                    last_error=error[:2000],
                    consecutive_failures=t.c.consecutive_failures + 1,
                )
                .returning(t.c.consecutive_failures)
            )
            if failures is not None and failures >= CIRCUIT_THRESHOLD:
                await s.execute(
                    update(t)
                    .where(t.c.id == inst.id)
                    .values(circuit_open_until=now + circuit_delay(failures))
                )

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            async with self.ctx.db.transaction() as s:
                await s.execute(
                    self._upsert(s),
                    [self._row(h, at, n) for h, (at, n) in sorted(pending.items())],
                )
        except BaseException:
            for host, (at, n) in pending.items():  # keep them for the next try
                _, later = self._pending.get(host, (at, 0))
                self._pending[host] = (self._pending.get(host, (at, 0))[0], n + later)
            raise

    async def close(self) -> None:
        if self._flushing is not None:
            if self._sleeping:
                self._flushing.cancel()
            # A flush already writing is let finish: cancelled inside its
            # transaction, it could leave the connection holding SQLite's
            # write lock, and the final flush below waited 30 s for it and
            # failed "database is locked" (an intermittent test teardown error).
            await asyncio.gather(self._flushing, return_exceptions=True)
        await self.flush()

    async def _flush_later(self) -> None:
        self._sleeping = True
        try:
            await asyncio.sleep(self.delay)
        finally:
            self._sleeping = False
        try:
            await self.flush()
        except Exception:  # noqa: BLE001 - statistics: log, never fail a delivery
            log.exception("recording delivery successes failed")

    @staticmethod
    def _row(host: str, at: datetime, count: int) -> dict[str, Any]:
        return dict(
            host=host,
            policy="default",
            policy_reason="",
            first_seen_at=at,
            last_success_at=at,
            delivered=count,
        )

    @staticmethod
    def _upsert(s: Any) -> Any:
        """A success: the host's row created if new, its streak over, its count up."""
        t = Instance.__table__
        insert_ = postgresql.insert if s.bind.dialect.name == "postgresql" else sqlite.insert
        stmt = insert_(t)
        return stmt.on_conflict_do_update(
            index_elements=["host"],
            set_=dict(
                last_success_at=stmt.excluded.last_success_at,
                consecutive_failures=0,
                circuit_open_until=None,
                delivered=t.c.delivered + stmt.excluded.delivered,
            ),
        )


async def deliver(ctx: NodeContext, fed: Federation, job: Job) -> None:
    inbox = job.payload["inbox"]
    host = host_of(inbox)
    outgoing = await fed.outgoing.get(ctx, job.payload["item"])
    async with ctx.db.read_session() as s:
        instance = await get_instance(s, host, create=False)
    if not allows(ctx, instance):
        raise PermanentFailure(f"{host} is blocked by instance policy")
    now = utcnow()
    if instance is not None and instance.circuit_open_until and instance.circuit_open_until > now:
        raise RetryLater(instance.circuit_open_until, f"circuit open for {host}")
    streak = instance is not None and (
        instance.consecutive_failures > 0 or instance.circuit_open_until is not None
    )

    sem = fed.host_limits.setdefault(host, asyncio.Semaphore(HOST_CONCURRENCY))
    async with sem:
        try:
            status, text = await fed.client.post_activity(
                inbox, outgoing.payload, outgoing.key_id, outgoing.private_pem
            )
        except FetchFailed as e:
            await fed.health.failure(host, e.detail)
            raise
    if 200 <= status < 300:
        await fed.health.success(host, streak_over=streak)
        return
    if status == 410:
        await fed.health.success(host, streak_over=streak)
        await _forget_inbox_owner(ctx, inbox)
        return
    error = f"HTTP {status}: {text[:300]}"
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        await fed.health.success(host, streak_over=streak)  # the host is up; it refused this one
        raise PermanentFailure(error)
    await fed.health.failure(host, error)
    raise RuntimeError(error)


async def _forget_inbox_owner(ctx: NodeContext, inbox: str) -> None:
    """410 on a personal inbox: that actor is gone for good. A shared inbox's 410 says nothing about anyone."""
    async with ctx.db.transaction() as s:
        actor = await s.scalar(
            select(Actor).where(Actor.inbox_url == inbox, Actor.local.is_(False))
        )
        if actor is not None:
            log.info("remote actor gone", extra={"actor": actor.uri})
            await forget_remote_actor(s, actor)
