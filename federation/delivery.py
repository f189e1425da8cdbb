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
from datetime import timedelta
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

    sem = fed.host_limits.setdefault(host, asyncio.Semaphore(HOST_CONCURRENCY))
    async with sem:
        try:
            status, text = await fed.client.post_activity(
                inbox, outgoing.payload, outgoing.key_id, outgoing.private_pem
            )
        except FetchFailed as e:
            await _record(ctx, host, ok=False, error=e.detail)
            raise
    if 200 <= status < 300:
        await _record(ctx, host, ok=True)
        return
    if status == 410:
        await _record(ctx, host, ok=True)
        await _forget_inbox_owner(ctx, inbox)
        return
    error = f"HTTP {status}: {text[:300]}"
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        await _record(ctx, host, ok=True)  # the host is up; it refused this one
        raise PermanentFailure(error)
    await _record(ctx, host, ok=False, error=error)
    raise RuntimeError(error)


async def _record(ctx: NodeContext, host: str, *, ok: bool, error: str | None = None) -> None:
    """How delivery to `host` is going, for the circuit breaker and the console.

    Atomic statements, not read-modify-write: several deliveries to one host
    (and, on PostgreSQL, several workers) finish at once. A success is one
    upsert, since it is what almost every delivery ends with."""
    now = utcnow()
    t = Instance.__table__
    async with ctx.db.transaction() as s:
        if ok:
            insert_ = postgresql.insert if s.bind.dialect.name == "postgresql" else sqlite.insert
            await s.execute(
                insert_(t)
                .values(
                    host=host.lower(),
                    policy="default",
                    policy_reason="",
                    first_seen_at=now,
                    last_success_at=now,
                    delivered=1,
                )
                .on_conflict_do_update(
                    index_elements=["host"],
                    set_=dict(
                        last_success_at=now,
                        consecutive_failures=0,
                        circuit_open_until=None,
                        delivered=t.c.delivered + 1,
                    ),
                )
            )
            return
        inst = await get_instance(s, host)
        failures = await s.scalar(
            update(t)
            .where(t.c.id == inst.id)
            .values(
                last_failure_at=now,
                last_error=(error or "")[:2000],
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


async def _forget_inbox_owner(ctx: NodeContext, inbox: str) -> None:
    """410 on a personal inbox: that actor is gone for good. A shared inbox's 410 says nothing about anyone."""
    async with ctx.db.transaction() as s:
        actor = await s.scalar(
            select(Actor).where(Actor.inbox_url == inbox, Actor.local.is_(False))
        )
        if actor is not None:
            log.info("remote actor gone", extra={"actor": actor.uri})
            await forget_remote_actor(s, actor)
