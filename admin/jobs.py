"""The job queue as an admin sees it: what is waiting, running and dead,
with each job's last error, and a retry for dead jobs.

Admins only: job payloads and errors carry remote addresses, activity
bodies and stack details that are operations' business, not curation's.
Curators see the queue's health on the dashboard.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from node.errors import BadRequest, Conflict, NotFound
from node.jobs import queue_health
from node.models import JOB_STATES, Job, utcnow
from node.pagination import keyset_page, parse_limit
from node.validation import iso

from .audit import record
from .console import CONSOLE, Done, Section, View

CONSOLE.section(Section("jobs", "Jobs", "admin.jobs", role="admin", order=30))

# "active" (the default view) is everything that still needs attention.
ACTIVE = ("queued", "running", "dead")
STATE_FILTERS = ("active", *JOB_STATES)


def job_json(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "last_error": job.last_error,
        "payload": job.payload,
        "created_at": iso(job.created_at),
        "state_changed_at": iso(job.state_changed_at),
        "next_attempt_at": iso(job.next_attempt_at),
        "locked_by": job.locked_by,
        "locked_until": iso(job.locked_until),
    }


@CONSOLE.page("/jobs", name="admin.jobs", template="jobs.html", role="admin", section="jobs")
async def jobs(view: View) -> dict[str, Any]:
    """Latest state change first, filtered by state (default: not done) and kind."""
    q = view.query
    state = q.get("state", "") or "active"
    kind = q.get("kind", "").strip()[:64]
    if state not in STATE_FILTERS:
        raise BadRequest("state must be one of " + ", ".join(STATE_FILTERS))
    limit = parse_limit(q.get("limit"), default=50)
    stmt = select(Job).where(Job.state.in_(ACTIVE) if state == "active" else Job.state == state)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    async with view.ctx.db.read_session() as s:
        health = await queue_health(s)
        kinds = sorted((await s.scalars(select(Job.kind).distinct())).all())
        page = await keyset_page(
            s,
            stmt,
            Job.state_changed_at,
            Job.id,
            cursor=q.get("cursor") or None,
            limit=limit,
            descending=True,
        )
    filters = {"state": state, "kind": kind}
    name = "admin.jobs.json" if view.json else "admin.jobs"
    query = {"state": "" if state == "active" else state, "kind": kind, "limit": q.get("limit")}
    return {
        "filters": filters,
        "states": STATE_FILTERS,
        "kinds": kinds,
        "health": health,
        "jobs": [job_json(j) for j in page.items],
        "next": view.url(name, {**query, "cursor": page.next_cursor}) if page.next_cursor else None,
    }


@CONSOLE.action("/jobs/{id:\\d+}/retry", name="admin.job.retry", back="admin.jobs", role="admin")
async def retry_job(view: View) -> Done:
    """Give a dead job a fresh set of attempts, due now. Its last error stays
    visible until the next attempt replaces or clears it."""
    job_id = int(view.arg("id"))
    async with view.ctx.db.transaction() as s:
        job = await s.get(Job, job_id, with_for_update=True)
        if job is None:
            raise NotFound(f"no job {job_id}")
        if job.state != "dead":
            raise Conflict(f"job {job_id} is {job.state}; only dead jobs can be retried")
        now = utcnow()
        before = {"state": job.state, "attempts": job.attempts, "last_error": job.last_error}
        job.state = "queued"
        job.attempts = 0
        job.next_attempt_at = now
        job.state_changed_at = now
        job.locked_until = None
        job.locked_by = None
        await record(
            s,
            view,
            "job.retry",
            f"job:{job.id}",
            {"kind": job.kind, "before": before, "after": {"state": "queued", "attempts": 0}},
        )
        data = {"job": job_json(job)}
    view.ctx.wake_worker()
    return Done(
        data,
        view.url("admin.jobs", {"state": "dead"}),
        f"Job {job_id} ({job.kind}) is queued again.",
    )
