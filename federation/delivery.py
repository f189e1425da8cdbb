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
from datetime import timedelta

from sqlalchemy import select

from node.context import NodeContext
from node.jobs import PermanentFailure, RetryLater
from node.models import Actor, Job, utcnow

from .actors import forget_remote_actor
from .appkeys import Federation
from .errors import FetchFailed
from .models import OutboxItem
from .policy import allows, get_instance
from .vocab import host_of

log = logging.getLogger("nycmg.federation.delivery")
HOST_CONCURRENCY = 4
CIRCUIT_THRESHOLD = 5  # consecutive failures before a host's circuit opens
CIRCUIT_MAX = timedelta(hours=1)
RETRYABLE_4XX = {401, 408, 425, 429}


def circuit_delay(failures: int) -> timedelta:
    """Open for 1 min after the threshold, doubling per further failure, capped at 1 h."""
    return min(CIRCUIT_MAX, timedelta(minutes=2 ** max(0, failures - CIRCUIT_THRESHOLD)))


async def deliver(ctx: NodeContext, fed: Federation, job: Job) -> None:
    inbox = job.payload["inbox"]
    host = host_of(inbox)
    async with ctx.db.read_session() as s:
        item = await s.get(OutboxItem, job.payload["item"])
        if item is None:
            raise PermanentFailure("the activity is gone")
        actor = await s.get(Actor, item.actor_id)
        instance = await get_instance(s, host, create=False)
    if actor is None or not actor.private_key_pem:
        raise PermanentFailure("the sending actor is gone")
    if not allows(ctx, instance):
        raise PermanentFailure(f"{host} is blocked by instance policy")
    now = utcnow()
    if instance is not None and instance.circuit_open_until and instance.circuit_open_until > now:
        raise RetryLater(instance.circuit_open_until, f"circuit open for {host}")

    sem = fed.host_limits.setdefault(host, asyncio.Semaphore(HOST_CONCURRENCY))
    async with sem:
        try:
            status, text = await fed.client.post_activity(
                inbox, item.payload, actor.key_id, actor.private_key_pem
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
    async with ctx.db.transaction() as s:
        inst = await get_instance(s, host)
        now = utcnow()
        if ok:
            inst.last_success_at = now
            inst.consecutive_failures = 0
            inst.circuit_open_until = None
            inst.delivered += 1
        else:
            inst.last_failure_at = now
            inst.last_error = (error or "")[:2000]
            inst.consecutive_failures += 1
            if inst.consecutive_failures >= CIRCUIT_THRESHOLD:
                inst.circuit_open_until = now + circuit_delay(inst.consecutive_failures)


async def _forget_inbox_owner(ctx: NodeContext, inbox: str) -> None:
    """410 on a personal inbox: that actor is gone for good. A shared inbox's 410 says nothing about anyone."""
    async with ctx.db.transaction() as s:
        actor = await s.scalar(
            select(Actor).where(Actor.inbox_url == inbox, Actor.local.is_(False))
        )
        if actor is not None:
            log.info("remote actor gone", extra={"actor": actor.uri})
            await forget_remote_actor(s, actor)
