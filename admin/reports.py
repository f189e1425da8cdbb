"""Reports (ActivityPub `Flag`, or `POST /api/v1/reports` from a local fan):
the moderation queue, for curators and admins.

Open reports come first (the default view); a curator resolves one (it was
acted on) or dismisses it (nothing to do), with a note. The report keeps
only its state and when it was closed; who closed it and the note live in
the audit entry written in the same transaction, which the report's page
shows as its history.

Reporters and targets are shown as links: to the console page of a local
account, and otherwise to the URI itself, but only when it is an http(s)
URL (a `javascript:` "URI" from another node must never become a link).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.errors import BadRequest, Conflict, NotFound
from node.models import Account, Actor, Report, utcnow
from node.pagination import keyset_page, parse_limit
from node.validation import F, Schema, iso

from .audit import entries_for_target, record, register_audit_action
from .console import CONSOLE, Done, Section, View

CONSOLE.section(Section("reports", "Reports", "admin.reports", role="curator", order=35))

for _name, _label in (
    ("report.resolve", "Resolved a report"),
    ("report.dismiss", "Dismissed a report"),
):
    register_audit_action(_name, _label)

REPORT_STATES = ("open", "resolved", "dismissed")
STATE_FILTERS = (*REPORT_STATES, "all")
REPORT = "/reports/{id:\\d+}"

NoteIn = Schema("ConsoleReportNote", F("note", "text", max_len=2000))


def _link(uri: str | None) -> str | None:
    return uri if isinstance(uri, str) and uri.startswith(("https://", "http://")) else None


async def people(session: AsyncSession, uris: set[str]) -> dict[str, dict[str, Any]]:
    """The actors among `uris` that this node knows, with the local account's username."""
    if not uris:
        return {}
    rows = await session.execute(
        select(Actor, Account.username)
        .outerjoin(Account, Account.actor_id == Actor.id)
        .where(Actor.uri.in_(list(uris)))
    )
    return {
        actor.uri: {
            "acct": actor.acct,
            "name": actor.name,
            "local": actor.local,
            "url": actor.url,
            "username": username,
        }
        for actor, username in rows.all()
    }


def ref_json(view: View, uri: str, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A reporter or target: its URI, a safe link, and who it is when we know."""
    out: dict[str, Any] = {"uri": uri, "link": _link(uri)}
    actor = known.get(uri)
    if actor is not None:
        out.update(acct=actor["acct"], name=actor["name"], local=actor["local"])
        out["link"] = _link(actor["url"]) or out["link"]
        if actor["username"]:
            name = "admin.user.json" if view.json else "admin.user"
            out["console"] = view.url(name, username=actor["username"])
    return out


def report_json(view: View, report: Report, known: dict[str, dict[str, Any]]) -> dict[str, Any]:
    targets = report.target_uris if isinstance(report.target_uris, list) else []
    return {
        "id": report.id,
        "uri": report.uri,
        "state": report.state,
        "reporter": ref_json(view, report.reporter_uri, known),
        "targets": [ref_json(view, t, known) for t in targets if isinstance(t, str)],
        "reason": report.reason,
        "origin_host": report.origin_host,
        "created_at": iso(report.created_at),
        "resolved_at": iso(report.resolved_at),
    }


def _uris(reports: list[Report]) -> set[str]:
    out: set[str] = set()
    for r in reports:
        out.add(r.reporter_uri)
        out.update(t for t in (r.target_uris or []) if isinstance(t, str))
    return out


@CONSOLE.page(
    "/reports", name="admin.reports", template="reports.html", role="curator", section="reports"
)
async def reports(view: View) -> dict[str, Any]:
    """Open reports by default, newest first; or resolved, dismissed, all; by origin."""
    q = view.query
    state = q.get("state", "") or "open"
    origin = q.get("origin", "").strip().lower()[:255]
    if state not in STATE_FILTERS:
        raise BadRequest("state must be one of " + ", ".join(STATE_FILTERS))
    limit = parse_limit(q.get("limit"), default=50)
    stmt = select(Report)
    if state != "all":
        stmt = stmt.where(Report.state == state)
    if origin == "local":
        stmt = stmt.where(Report.origin_host.is_(None))
    elif origin:
        stmt = stmt.where(Report.origin_host == origin)
    async with view.ctx.db.read_session() as s:
        page = await keyset_page(
            s,
            stmt,
            Report.created_at,
            Report.id,
            cursor=q.get("cursor") or None,
            limit=limit,
            descending=True,
        )
        counts = dict.fromkeys(REPORT_STATES, 0)
        rows = await s.execute(select(Report.state, func.count()).group_by(Report.state))
        counts.update({st: int(n) for st, n in rows.all()})
        known = await people(s, _uris(page.items))
    filters = {"state": state, "origin": origin}
    name = "admin.reports.json" if view.json else "admin.reports"
    query = {"state": "" if state == "open" else state, "origin": origin, "limit": q.get("limit")}
    return {
        "filters": filters,
        "states": STATE_FILTERS,
        "counts": counts,
        "reports": [report_json(view, r, known) for r in page.items],
        "next": view.url(name, {**query, "cursor": page.next_cursor}) if page.next_cursor else None,
    }


def _target(report_id: int) -> str:
    return f"report:{report_id}"


@CONSOLE.page(
    REPORT, name="admin.report", template="report.html", role="curator", section="reports"
)
async def report_detail(view: View) -> dict[str, Any]:
    report_id = int(view.arg("id"))
    async with view.ctx.db.read_session() as s:
        report = await s.get(Report, report_id)
        if report is None:
            raise NotFound(f"no report {report_id}")
        known = await people(s, _uris([report]))
        audit = await entries_for_target(s, _target(report.id))
    out: dict[str, Any] = {"report": report_json(view, report, known), "audit": audit}
    if report.state == "open":
        out["actions"] = {
            "resolve": view.url("admin.report.resolve.json", id=str(report.id)),
            "dismiss": view.url("admin.report.dismiss.json", id=str(report.id)),
        }
    return out


async def _close(view: View, state: str) -> Done:
    report_id = int(view.arg("id"))
    verb = "resolve" if state == "resolved" else "dismiss"
    note = (view.body.get("note") or "").strip()
    async with view.ctx.db.transaction() as s:
        report = await s.get(Report, report_id, with_for_update=True)
        if report is None:
            raise NotFound(f"no report {report_id}")
        if report.state != "open":
            raise Conflict(f"report {report_id} is already {report.state}", field="note")
        report.state = state
        report.resolved_at = utcnow()
        details: dict[str, Any] = {"before": {"state": "open"}, "after": {"state": state}}
        if note:
            details["reason"] = note  # shown as the entry's reason in the audit log
        await record(s, view, f"report.{verb}", _target(report.id), details)
        data = {"report": report_json(view, report, await people(s, _uris([report])))}
    return Done(data, view.url("admin.reports"), f"Report {report_id} is {state}.")


@CONSOLE.action(
    REPORT + "/resolve",
    name="admin.report.resolve",
    back="admin.report",
    role="curator",
    body=NoteIn,
)
async def resolve_report(view: View) -> Done:
    """It was acted on (the content removed, the account limited, the host blocked ...)."""
    return await _close(view, "resolved")


@CONSOLE.action(
    REPORT + "/dismiss",
    name="admin.report.dismiss",
    back="admin.report",
    role="curator",
    body=NoteIn,
)
async def dismiss_report(view: View) -> Done:
    """Nothing to do about it."""
    return await _close(view, "dismissed")
