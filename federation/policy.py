"""Instance policy: open or allow-list federation, per-host block and limit.

Enforced in two places: the inbox (before anything is stored) and delivery
(before anything is sent).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from node.context import NodeContext
from node.models import utcnow

from .models import Instance


async def get_instance(session: AsyncSession, host: str, *, create: bool = True) -> Instance | None:
    host = host.lower()
    inst = await session.scalar(select(Instance).where(Instance.host == host))
    if inst is None and create:
        # Several requests from a new host arrive at once: on PostgreSQL each may
        # read "absent" and insert. The losers' savepoint rolls back (not their
        # whole transaction, which holds an activity) and they read the winner's row.
        try:
            async with session.begin_nested():
                inst = Instance(host=host, policy="default", first_seen_at=utcnow())
                session.add(inst)
        except IntegrityError:
            inst = await session.scalar(select(Instance).where(Instance.host == host))
    return inst


def allows(ctx: NodeContext, instance: Instance | None) -> bool:
    """May we talk to this host at all?"""
    policy = instance.policy if instance else "default"
    if policy == "block":
        return False
    if ctx.settings.federation.policy == "allowlist":
        return policy in ("allow", "limit")
    return True


def is_limited(instance: Instance | None) -> bool:
    """Limited hosts federate, but their follow requests wait for approval."""
    return instance is not None and instance.policy == "limit"


async def host_allowed(ctx: NodeContext, host: str) -> bool:
    async with ctx.db.read_session() as s:
        return allows(ctx, await get_instance(s, host, create=False))
