"""The audit log: every console action, written in the same transaction as
the change it describes (so there is never a change without its entry, nor
an entry for a change that rolled back), and the page that lists it.

Entries are append-only: the console has no action that edits or deletes
them. Refused attempts change nothing and are not logged.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.errors import BadRequest
from node.models import AuditEntry, utcnow
from node.pagination import keyset_page, parse_limit
from node.validation import iso
from node.web_helpers import client_ip

from .console import CONSOLE, Section, View

CONSOLE.section(Section("audit", "Audit log", "admin.audit", role="curator", order=90))

# Every action the console can log, with the label its filter shows. A new
# console action registers here first: `record` refuses names it does not know,
# so the filter list is always complete.
AUDIT_ACTIONS: dict[str, str] = {}


def register_audit_action(name: str, label: str) -> None:
    if name in AUDIT_ACTIONS:
        raise ValueError(f"audit action {name!r} registered twice")
    AUDIT_ACTIONS[name] = label


for _name, _label in (
    ("user.create", "Created an account"),
    ("user.role", "Changed a role"),
    ("user.disable", "Disabled an account"),
    ("user.enable", "Enabled an account"),
    ("job.retry", "Retried a dead job"),
):
    register_audit_action(_name, _label)


async def record(
    session: AsyncSession, view: View, action: str, target: str, details: dict[str, Any]
) -> AuditEntry:
    """Add an entry for `action` by the caller, inside the caller's transaction."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = AuditEntry(
        at=utcnow(),
        account_id=view.account.id,
        username=view.account.username,
        action=action,
        target=target[:512],
        details=details,
        ip=client_ip(view.request),
    )
    session.add(entry)
    await session.flush()
    return entry


def audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": iso(entry.at),
        "username": entry.username,
        "action": entry.action,
        "target": entry.target,
        "details": entry.details,
        "ip": entry.ip,
    }


async def entries_for_target(
    session: AsyncSession, target: str, limit: int = 10
) -> list[dict[str, Any]]:
    """The latest entries about one object, for its detail page."""
    rows = await session.scalars(
        select(AuditEntry)
        .where(AuditEntry.target == target)
        .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        .limit(limit)
    )
    return [audit_json(e) for e in rows]


@CONSOLE.page("/audit", name="admin.audit", template="audit.html", role="curator", section="audit")
async def audit_log(view: View) -> dict[str, Any]:
    """Newest first, filtered by action, by who did it, or by target."""
    q = view.query
    action = q.get("action", "").strip()
    user = q.get("user", "").strip().lower()
    target = q.get("target", "").strip()
    if action and action not in AUDIT_ACTIONS:
        raise BadRequest("unknown action; one of " + ", ".join(AUDIT_ACTIONS))
    limit = parse_limit(q.get("limit"), default=50)
    stmt = select(AuditEntry)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if user:
        stmt = stmt.where(AuditEntry.username == user)
    if target:
        stmt = stmt.where(AuditEntry.target == target)
    async with view.ctx.db.read_session() as s:
        page = await keyset_page(
            s,
            stmt,
            AuditEntry.at,
            AuditEntry.id,
            cursor=q.get("cursor") or None,
            limit=limit,
            descending=True,
        )
    filters = {"action": action, "user": user, "target": target}
    name = "admin.audit.json" if view.json else "admin.audit"
    return {
        "filters": filters,
        "actions": AUDIT_ACTIONS,
        "entries": [audit_json(e) for e in page.items],
        "next": view.url(name, {**filters, "cursor": page.next_cursor, "limit": q.get("limit")})
        if page.next_cursor
        else None,
    }
