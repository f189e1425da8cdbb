"""The dashboard: how big the node is, whether its job queue keeps up, and
what it runs on. Read-only, for curators and admins.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.jobs import queue_health
from node.models import ROLES, Account, Actor, AuditEntry, Event, Job, Release, Track, Venue, utcnow
from node.validation import iso

from .audit import audit_json
from .console import CONSOLE, Section, View

CONSOLE.section(Section("dashboard", "Dashboard", "admin.dashboard", role="curator", order=10))


def node_version() -> str:
    try:
        return version("nycmg")
    except PackageNotFoundError:  # running from a checkout that was never installed
        return "unknown"


async def _count(session: AsyncSession, model: Any, *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _grouped(session: AsyncSession, column: Any, *where: Any) -> dict[str, int]:
    rows = await session.execute(select(column, func.count()).where(*where).group_by(column))
    return {key: int(n) for key, n in rows.all()}


async def node_counts(session: AsyncSession) -> dict[str, Any]:
    """The figures on the dashboard, local objects apart from those learned by federation."""
    now = utcnow()
    roles = {role: 0 for role in ROLES}
    roles.update(await _grouped(session, Account.role))
    releases = {"draft": 0, "published": 0}
    releases.update(await _grouped(session, Release.state, Release.local.is_(True)))
    return {
        "accounts": {
            "total": sum(roles.values()),
            "by_role": roles,
            "disabled": await _count(session, Account, Account.disabled.is_(True)),
        },
        "artists": {
            "local": await _count(session, Actor, Actor.local.is_(True), Actor.is_artist.is_(True)),
            "remote": await _count(
                session, Actor, Actor.local.is_(False), Actor.is_artist.is_(True)
            ),
        },
        "releases": {
            **releases,
            "remote": await _count(session, Release, Release.local.is_(False)),
        },
        "tracks": {
            "local": await _count(session, Track, Track.local.is_(True)),
            "remote": await _count(session, Track, Track.local.is_(False)),
        },
        "events": {
            "upcoming": await _count(
                session, Event, Event.state == "scheduled", Event.starts_at >= now
            ),
            "total": await _count(session, Event),
        },
        "venues": await _count(session, Venue),
        "remote_actors": await _count(session, Actor, Actor.local.is_(False)),
    }


@CONSOLE.page(
    "/dashboard",
    name="admin.dashboard",
    template="dashboard.html",
    role="curator",
    section="dashboard",
)
async def dashboard(view: View) -> dict[str, Any]:
    ctx = view.ctx
    async with ctx.db.read_session() as s:
        counts = await node_counts(s)
        health = await queue_health(s)
        dead = (
            await s.scalars(
                select(Job)
                .where(Job.state == "dead")
                .order_by(Job.state_changed_at.desc())
                .limit(5)
            )
        ).all()
        recent = (
            await s.scalars(
                select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(5)
            )
        ).all()
    return {
        "node": {
            "name": ctx.settings.node.name,
            "domain": ctx.domain,
            "base_url": ctx.settings.base_url,
            "version": node_version(),
            "database": ctx.db.dialect,
            "python": platform.python_version(),
            "open_registration": ctx.settings.node.open_registration,
        },
        "counts": counts,
        "jobs": {
            **health,
            "dead": health["counts"].get("dead", 0),
            # Curators see that jobs are dying; what they were is for admins.
            "recent_dead": [
                {
                    "id": j.id,
                    "kind": j.kind,
                    "died_at": iso(j.state_changed_at),
                    "last_error": j.last_error,
                }
                for j in dead
            ]
            if view.is_admin
            else [],
        },
        "recent_audit": [audit_json(e) for e in recent],
    }
