"""Federation in the console (DESIGN.md 5): the instances this node talks to
and its policy for each, the delivery queue with its dead letters, and the
log of inbound activities.

Who sees what. Curators and admins see every page here: which nodes we talk
to, how delivery to them is going, and what they sent us, including the raw
payload of an inbound activity. That payload is what the other node chose
to send us, signed by its actor, and it is what a curator needs when judging
a report about it; it holds nothing of this node's (signatures and keys
travel in headers, which are not stored). Activities that were not
addressed to the public are marked as such on the page. Delivery errors are
the remote's HTTP status and the start of its answer, or a network error:
nothing from inside this node. Only admins change an instance's policy,
close its circuit or retry deliveries, because those decide whom the node
talks to and how hard it tries.

Deliveries are jobs of kind `federation.deliver` with the payload
`{"item": OUTBOX_ITEM_ID, "inbox": URL}`; the host of a delivery is the host
of its inbox URL, as `federation.vocab.host_of` reads it (lowercase, with
the port when there is one), which is how `Instance.host` is written too.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import String, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from federation.delivery import CIRCUIT_THRESHOLD
from federation.handlers import HANDLERS
from federation.models import INSTANCE_POLICIES, InboxItem, Instance, OutboxItem
from federation.policy import allows, get_instance
from federation.vocab import host_of, is_public
from node.context import NodeContext
from node.errors import BadRequest, Conflict, NotFound, ValidationFailed
from node.models import JOB_STATES, Actor, Job, utcnow
from node.pagination import keyset_page, parse_limit
from node.validation import F, Schema, iso

from .audit import entries_for_target, record, register_audit_action
from .console import CONSOLE, Done, Section, View

CONSOLE.section(Section("federation", "Federation", "admin.instances", role="curator", order=40))

for _name, _label in (
    ("instance.add", "Set a policy for a new host"),
    ("instance.policy", "Changed an instance's policy"),
    ("instance.circuit", "Closed an instance's circuit"),
    ("delivery.retry", "Retried a dead delivery"),
    ("delivery.retry_host", "Retried every dead delivery to a host"),
):
    register_audit_action(_name, _label)

DELIVER = "federation.deliver"
# A host in a path: anything but a slash, not ending in ".json", so that
# `/instances/queens.example.json` is the twin of `/instances/queens.example`
# (".json" is no top-level domain, so no real host is lost).
INSTANCE = "/federation/instances/{host:[^{}/]+(?<!\\.json)}"
INSTANCE_STATES = ("ok", "failing", "circuit_open")
DELIVERY_STATES = ("active", *JOB_STATES)
ACTIVE = ("queued", "running", "dead")
INBOUND_STATES = ("received", "processed", "ignored", "failed")
RECENT = 20

PolicyIn = Schema(
    "ConsoleInstancePolicy",
    F("policy", required=True, choices=INSTANCE_POLICIES),
    F("reason", max_len=500),
)
AddIn = Schema(
    "ConsoleInstanceAdd",
    F("host", required=True, max_len=300),
    F("policy", required=True, choices=INSTANCE_POLICIES),
    F("reason", max_len=500),
)
ReasonIn = Schema("ConsoleFederationReason", F("reason", max_len=500))


# ---- hosts ---------------------------------------------------------------------

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
HOST_HINT = "a host name such as queens.example or queens.example:8443, without https:// or a path"


def parse_host(raw: str) -> str:
    """A host as an admin types it, in the form `host_of` stores it: lowercase
    `name[:port]` (`queens.example`, `127.0.0.1:8080`, `[::1]:8443`), never a
    scheme, user, path or query. Raises ValueError with what is wrong."""
    value = raw.strip().lower()
    if not value:
        raise ValueError("required")
    if "://" in value or any(c in value for c in "/?#@\\ \t"):
        raise ValueError(HOST_HINT)
    if value.startswith("["):  # an IPv6 literal, as in a URL
        end = value.find("]")
        if end < 0:
            raise ValueError("an IPv6 address is written in brackets: [2001:db8::1]")
        try:
            ipaddress.IPv6Address(value[1:end])
        except ValueError:
            raise ValueError(f"{value[1:end]} is not an IPv6 address") from None
        name, port = value[: end + 1], value[end + 1 :]
        if port and not port.startswith(":"):
            raise ValueError(HOST_HINT)
        port = port[1:]
    else:
        name, _, port = value.partition(":")
        if not name.isascii():
            try:  # an internationalized name: stored as the URL carries it, in punycode
                name = name.encode("idna").decode("ascii")
            except UnicodeError:
                raise ValueError(f"{name} is not a valid host name") from None
        labels = name.split(".")
        if not all(_LABEL.match(label) for label in labels):
            raise ValueError(HOST_HINT)
        if all(label.isdigit() for label in labels):
            try:
                ipaddress.IPv4Address(name)
            except ValueError:
                raise ValueError(f"{name} is not an IPv4 address") from None
    if port or value.endswith(":"):
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError("the port must be a number from 1 to 65535")
        name = f"{name}:{int(port)}"
    if len(name) > 255:
        raise ValueError("at most 255 characters")
    return name


def _inbox_url() -> Any:
    return func.lower(Job.payload["inbox"].as_string(), type_=String)


def to_host(host: str) -> Any:
    """Deliveries whose inbox is on `host` (the payload's inbox URL)."""
    inbox = _inbox_url()
    return or_(
        *(inbox.startswith(f"{scheme}://{host}/", autoescape=True) for scheme in ("https", "http"))
    )


# ---- serialization -------------------------------------------------------------


def circuit_open(inst: Instance, now: datetime) -> bool:
    return inst.circuit_open_until is not None and inst.circuit_open_until > now


def instance_state(inst: Instance, now: datetime) -> str:
    """The worst of: `circuit_open` (deliveries wait), `failing` (the last tries failed), `ok`."""
    if circuit_open(inst, now):
        return "circuit_open"
    return "failing" if inst.consecutive_failures else "ok"


def instance_json(ctx: NodeContext, inst: Instance, now: datetime, dead: int = 0) -> dict:
    return {
        "host": inst.host,
        "software": inst.software,
        "version": inst.version,
        "policy": inst.policy,
        "policy_reason": inst.policy_reason,
        # What the policy means under the node's mode (an allow-list refuses "default").
        "federates": allows(ctx, inst),
        "state": instance_state(inst, now),
        "first_seen_at": iso(inst.first_seen_at),
        "last_success_at": iso(inst.last_success_at),
        "last_failure_at": iso(inst.last_failure_at),
        "last_error": inst.last_error,
        "consecutive_failures": inst.consecutive_failures,
        "circuit_open_until": iso(inst.circuit_open_until) if circuit_open(inst, now) else None,
        "delivered": inst.delivered,
        "received": inst.received,
        "dead_deliveries": dead,
    }


def delivery_json(job: Job, activities: dict[int, dict[str, Any]]) -> dict[str, Any]:
    payload = job.payload if isinstance(job.payload, dict) else {}
    inbox = payload.get("inbox") if isinstance(payload.get("inbox"), str) else None
    item = payload.get("item")
    return {
        "id": job.id,
        "state": job.state,
        "host": host_of(inbox) if inbox else None,
        "inbox": inbox,
        "activity": activities.get(item) if isinstance(item, int) else None,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "last_error": job.last_error,
        "created_at": iso(job.created_at),
        "state_changed_at": iso(job.state_changed_at),
        "next_attempt_at": iso(job.next_attempt_at) if job.state == "queued" else None,
    }


def inbound_json(item: InboxItem, *, full: bool = False) -> dict[str, Any]:
    out = {
        "id": item.id,
        "activity_id": item.activity_id,
        "type": item.type,
        "object_type": item.object_type,
        "actor_uri": item.actor_uri,
        "host": item.host,
        "state": item.state,
        "error": item.error,
        "received_at": iso(item.received_at),
        "processed_at": iso(item.processed_at),
    }
    if full:
        payload = item.payload if isinstance(item.payload, dict) else {}
        out.update(key_id=item.key_id, public=is_public(payload), payload=item.payload)
    return out


async def activities_of(session: AsyncSession, jobs: list[Job]) -> dict[int, dict[str, Any]]:
    """The outbox activity (id and type) each delivery carries, by outbox item id."""
    ids = {j.payload.get("item") for j in jobs if isinstance(j.payload, dict)}
    ids = {i for i in ids if isinstance(i, int)}
    if not ids:
        return {}
    rows = await session.execute(
        select(OutboxItem.id, OutboxItem.activity_id, OutboxItem.type).where(OutboxItem.id.in_(ids))
    )
    return {i: {"id": activity_id, "type": kind} for i, activity_id, kind in rows.all()}


async def dead_by_host(session: AsyncSession) -> Counter[str]:
    """Dead deliveries per host. Read whole and counted here: the host is inside
    the JSON payload, and dead letters are few (each waits for an admin)."""
    rows = await session.scalars(
        select(Job.payload["inbox"].as_string()).where(Job.kind == DELIVER, Job.state == "dead")
    )
    return Counter(host_of(inbox) for inbox in rows.all() if inbox)


async def _instance(session: AsyncSession, host: str, *, lock: bool = False) -> Instance:
    stmt = select(Instance).where(Instance.host == host.lower())
    if lock:
        stmt = stmt.with_for_update()
    inst = await session.scalar(stmt)
    if inst is None:
        raise NotFound(f"no instance {host}: this node has neither seen it nor set a policy for it")
    return inst


def _refuse_unless_allowed(ctx: NodeContext, host: str, inst: Instance | None) -> None:
    if not allows(ctx, inst):
        policy = inst.policy if inst is not None else "default"
        why = "blocked" if policy == "block" else "not on this node's allow-list"
        raise Conflict(
            f"{host} is {why}; deliveries to it would only die again. Change its policy first"
        )


def _requeue(job: Job, now: datetime) -> None:
    job.state = "queued"
    job.attempts = 0
    job.next_attempt_at = now
    job.state_changed_at = now
    job.locked_until = None
    job.locked_by = None


def _target(host: str) -> str:
    return f"instance:{host}"


# ---- instances -----------------------------------------------------------------


@CONSOLE.page(
    "/federation/instances",
    name="admin.instances",
    template="federation_instances.html",
    role="curator",
    section="federation",
)
async def instances(view: View) -> dict[str, Any]:
    """Every known host, by name; filtered by policy, delivery state and part of the name."""
    q = view.query
    search = q.get("q", "").strip().lower()[:255]
    policy = q.get("policy", "")
    state = q.get("state", "")
    if policy and policy not in INSTANCE_POLICIES:
        raise BadRequest("policy must be one of " + ", ".join(INSTANCE_POLICIES))
    if state and state not in INSTANCE_STATES:
        raise BadRequest("state must be one of " + ", ".join(INSTANCE_STATES))
    limit = parse_limit(q.get("limit"), default=50)
    now = utcnow()
    is_open = Instance.circuit_open_until > now
    stmt = select(Instance)
    if search:
        stmt = stmt.where(Instance.host.contains(search, autoescape=True))
    if policy:
        stmt = stmt.where(Instance.policy == policy)
    if state == "circuit_open":
        stmt = stmt.where(is_open)
    elif state == "failing":
        stmt = stmt.where(Instance.consecutive_failures > 0)
    elif state == "ok":
        stmt = stmt.where(
            Instance.consecutive_failures == 0,
            or_(Instance.circuit_open_until.is_(None), Instance.circuit_open_until <= now),
        )
    async with view.ctx.db.read_session() as s:
        page = await keyset_page(
            s, stmt, Instance.host, Instance.id, cursor=q.get("cursor") or None, limit=limit
        )
        dead = await dead_by_host(s)
        by_policy = dict.fromkeys(INSTANCE_POLICIES, 0)
        rows = await s.execute(select(Instance.policy, func.count()).group_by(Instance.policy))
        by_policy.update({p: int(n) for p, n in rows.all()})
        failing = await s.scalar(
            select(func.count()).select_from(Instance).where(Instance.consecutive_failures > 0)
        )
        opened = await s.scalar(select(func.count()).select_from(Instance).where(is_open))
    filters = {"q": search, "policy": policy, "state": state}
    name = "admin.instances.json" if view.json else "admin.instances"
    return {
        "federation": {
            "mode": view.ctx.settings.federation.policy,
            "circuit_threshold": CIRCUIT_THRESHOLD,
        },
        "filters": filters,
        "policies": INSTANCE_POLICIES,
        "states": INSTANCE_STATES,
        "summary": {
            "by_policy": by_policy,
            "failing": int(failing or 0),
            "circuit_open": int(opened or 0),
            "dead_deliveries": sum(dead.values()),
        },
        "instances": [instance_json(view.ctx, i, now, dead.get(i.host, 0)) for i in page.items],
        "next": view.url(name, {**filters, "cursor": page.next_cursor, "limit": q.get("limit")})
        if page.next_cursor
        else None,
    }


@CONSOLE.page(
    INSTANCE,
    name="admin.instance",
    template="federation_instance.html",
    role="curator",
    section="federation",
)
async def instance_detail(view: View) -> dict[str, Any]:
    """One host: its figures and policy, its latest deliveries and inbound activities."""
    now = utcnow()
    async with view.ctx.db.read_session() as s:
        inst = await _instance(s, view.arg("host"))
        host = inst.host
        jobs = list(
            (
                await s.scalars(
                    select(Job)
                    .where(Job.kind == DELIVER, to_host(host))
                    .order_by(Job.state_changed_at.desc(), Job.id.desc())
                    .limit(RECENT)
                )
            ).all()
        )
        dead = await s.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.kind == DELIVER, Job.state == "dead", to_host(host))
        )
        inbound = (
            await s.scalars(
                select(InboxItem)
                .options(defer(InboxItem.payload))
                .where(InboxItem.host == host)
                .order_by(InboxItem.received_at.desc(), InboxItem.id.desc())
                .limit(RECENT)
            )
        ).all()
        actors = await s.scalar(
            select(func.count())
            .select_from(Actor)
            .where(Actor.domain == host, Actor.local.is_(False))
        )
        activities = await activities_of(s, jobs)
        audit = await entries_for_target(s, _target(host))
    out: dict[str, Any] = {
        "federation": {
            "mode": view.ctx.settings.federation.policy,
            "circuit_threshold": CIRCUIT_THRESHOLD,
        },
        "instance": instance_json(view.ctx, inst, now, int(dead or 0)),
        "remote_actors": int(actors or 0),
        "deliveries": [delivery_json(j, activities) for j in jobs],
        "inbound": [inbound_json(i) for i in inbound],
        "audit": audit,
    }
    if view.is_admin:
        out["actions"] = {
            "policy": view.url("admin.instance.policy.json", host=host),
            "circuit": view.url("admin.instance.circuit.json", host=host),
            "retry": view.url("admin.instance.retry.json", host=host),
        }
    return out


async def _set_policy(
    session: AsyncSession, view: View, inst: Instance, policy: str, reason: str | None
) -> bool:
    """Apply a policy and its reason; audit it when anything changed. A new
    policy without a reason clears the old reason; the same policy keeps it."""
    reason = (reason or "").strip()
    new_reason = reason if reason or policy != inst.policy else inst.policy_reason
    if (policy, new_reason) == (inst.policy, inst.policy_reason):
        return False
    # Only what changed, so the audit log reads "policy: default -> block".
    before = {"policy": inst.policy, "policy_reason": inst.policy_reason}
    after = {"policy": policy, "policy_reason": new_reason}
    for key in [k for k in before if before[k] == after[k]]:
        del before[key], after[key]
    inst.policy, inst.policy_reason = policy, new_reason
    details: dict[str, Any] = {"before": before, "after": after}
    if reason:
        details["reason"] = reason
    await record(session, view, "instance.policy", _target(inst.host), details)
    return True


POLICY_WORDS = {
    "block": "is blocked: nothing is accepted from it or sent to it",
    "limit": "is limited: follow requests from it wait for approval",
    "allow": "is allowed",
    "default": "follows the node's default policy",
}


@CONSOLE.action(
    INSTANCE + "/policy",
    name="admin.instance.policy",
    back="admin.instance",
    role="admin",
    body=PolicyIn,
)
async def set_policy(view: View) -> Done:
    """Block, limit, allow, or reset a known host to the node's default."""
    policy = view.body["policy"]
    now = utcnow()
    async with view.ctx.db.transaction() as s:
        inst = await _instance(s, view.arg("host"), lock=True)
        changed = await _set_policy(s, view, inst, policy, view.body.get("reason"))
        data = {"instance": instance_json(view.ctx, inst, now), "changed": changed}
    word = POLICY_WORDS[policy]
    notice = f"{inst.host} {word}." if changed else f"{inst.host} already {word}."
    return Done(data, view.url("admin.instance", host=inst.host), notice)


@CONSOLE.action(
    "/federation/instances",
    name="admin.instances.add",
    back="admin.instances",
    role="admin",
    body=AddIn,
)
async def add_instance(view: View) -> Done:
    """Set the policy of any host, seen or not (block a known-bad host ahead of time).
    A new host answers 201; a known one has its policy changed, as on its page."""
    try:
        host = parse_host(view.body["host"])
    except ValueError as e:
        raise ValidationFailed([{"field": "host", "message": str(e)}]) from None
    if host == view.ctx.domain.lower():
        raise ValidationFailed([{"field": "host", "message": "that is this node"}])
    policy = view.body["policy"]
    reason = (view.body.get("reason") or "").strip()
    now = utcnow()
    async with view.ctx.db.transaction() as s:
        inst = await get_instance(s, host, create=False)
        created = inst is None
        if created:
            if policy == "default":
                raise ValidationFailed(
                    [{"field": "policy", "message": "a new host needs block, limit or allow"}]
                )
            # Race-safe: an activity from the same host may be creating its row right now.
            inst = await get_instance(s, host)
            assert inst is not None
            inst.policy, inst.policy_reason = policy, reason
            after = {"policy": policy, **({"policy_reason": reason} if reason else {})}
            await record(s, view, "instance.add", _target(host), {"after": after})
            changed = True
        else:
            changed = await _set_policy(s, view, inst, policy, reason)
        data = {
            "instance": instance_json(view.ctx, inst, now),
            "created": created,
            "changed": changed,
        }
    word = POLICY_WORDS[policy]
    notice = f"{host} {word}." if changed else f"{host} already {word}."
    return Done(data, view.url("admin.instance", host=host), notice, status=201 if created else 200)


@CONSOLE.action(
    INSTANCE + "/circuit",
    name="admin.instance.circuit",
    back="admin.instance",
    role="admin",
    body=ReasonIn,
)
async def close_circuit(view: View) -> Done:
    """Forget a host's failures: its circuit closes and its queued deliveries are due now.

    For when the admin knows the host is back; if it is not, the next
    failures open the circuit again."""
    now = utcnow()
    async with view.ctx.db.transaction() as s:
        inst = await _instance(s, view.arg("host"), lock=True)
        changed = inst.circuit_open_until is not None or inst.consecutive_failures > 0
        due = 0
        if changed:
            before = {
                "circuit_open_until": iso(inst.circuit_open_until),
                "consecutive_failures": inst.consecutive_failures,
            }
            inst.circuit_open_until = None
            inst.consecutive_failures = 0
            result = await s.execute(
                update(Job)
                .where(
                    Job.kind == DELIVER,
                    Job.state == "queued",
                    Job.next_attempt_at > now,
                    to_host(inst.host),
                )
                .values(next_attempt_at=now)
                .execution_options(synchronize_session=False)
            )
            due = result.rowcount or 0
            details: dict[str, Any] = {
                "before": before,
                "after": {"circuit_open_until": None, "consecutive_failures": 0},
                "due_now": due,
            }
            if view.body.get("reason"):
                details["reason"] = view.body["reason"]
            await record(s, view, "instance.circuit", _target(inst.host), details)
        data = {"instance": instance_json(view.ctx, inst, now), "changed": changed, "due_now": due}
    if not changed:
        notice = f"{inst.host} has no failures; its circuit was already closed."
    else:
        view.ctx.wake_worker()
        waiting = (
            f"; {due} queued deliver{'y is' if due == 1 else 'ies are'} due now" if due else ""
        )
        notice = f"The circuit for {inst.host} is closed{waiting}."
    return Done(data, view.url("admin.instance", host=inst.host), notice)


# ---- deliveries ----------------------------------------------------------------


@CONSOLE.page(
    "/federation/deliveries",
    name="admin.deliveries",
    template="federation_deliveries.html",
    role="curator",
    section="federation",
)
async def deliveries(view: View) -> dict[str, Any]:
    """The delivery jobs, latest state change first; dead letters grouped by host on top."""
    q = view.query
    state = q.get("state", "") or "active"
    host = q.get("host", "").strip().lower()[:255]
    if state not in DELIVERY_STATES:
        raise BadRequest("state must be one of " + ", ".join(DELIVERY_STATES))
    limit = parse_limit(q.get("limit"), default=50)
    stmt = select(Job).where(
        Job.kind == DELIVER, Job.state.in_(ACTIVE) if state == "active" else Job.state == state
    )
    if host:
        stmt = stmt.where(to_host(host))
    async with view.ctx.db.read_session() as s:
        page = await keyset_page(
            s,
            stmt,
            Job.state_changed_at,
            Job.id,
            cursor=q.get("cursor") or None,
            limit=limit,
            descending=True,
        )
        activities = await activities_of(s, page.items)
        counts = dict.fromkeys(JOB_STATES, 0)
        rows = await s.execute(
            select(Job.state, func.count()).where(Job.kind == DELIVER).group_by(Job.state)
        )
        counts.update({st: int(n) for st, n in rows.all()})
        dead = await dead_by_host(s)
        known = {
            i.host: i
            for i in (await s.scalars(select(Instance).where(Instance.host.in_(list(dead))))).all()
        }
    filters = {"state": state, "host": host}
    name = "admin.deliveries.json" if view.json else "admin.deliveries"
    query = {"state": "" if state == "active" else state, "host": host, "limit": q.get("limit")}
    return {
        "filters": filters,
        "states": DELIVERY_STATES,
        "counts": counts,
        "dead_letters": [
            {
                "host": h,
                "dead": n,
                "known": h in known,
                "policy": known[h].policy if h in known else "default",
                "federates": allows(view.ctx, known.get(h)),
            }
            for h, n in sorted(dead.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "deliveries": [delivery_json(j, activities) for j in page.items],
        "next": view.url(name, {**query, "cursor": page.next_cursor}) if page.next_cursor else None,
    }


def _after_retry(view: View, host: str, known: bool) -> str:
    if known:
        return view.url("admin.instance", host=host)
    return view.url("admin.deliveries", {"host": host})


@CONSOLE.action(
    "/federation/deliveries/{id:\\d+}/retry",
    name="admin.delivery.retry",
    back="admin.deliveries",
    role="admin",
)
async def retry_delivery(view: View) -> Done:
    """A dead delivery goes back in the queue, due now, with a fresh set of attempts."""
    job_id = int(view.arg("id"))
    now = utcnow()
    async with view.ctx.db.transaction() as s:
        job = await s.get(Job, job_id, with_for_update=True)
        if job is None or job.kind != DELIVER:
            raise NotFound(f"no delivery {job_id}")
        if job.state != "dead":
            raise Conflict(f"delivery {job_id} is {job.state}; only dead deliveries can be retried")
        inbox = str(job.payload.get("inbox", "")) if isinstance(job.payload, dict) else ""
        host = host_of(inbox)
        inst = await get_instance(s, host, create=False)
        _refuse_unless_allowed(view.ctx, host, inst)
        before = {"state": job.state, "attempts": job.attempts, "last_error": job.last_error}
        _requeue(job, now)
        await record(
            s,
            view,
            "delivery.retry",
            f"job:{job.id}",
            {
                "host": host,
                "inbox": inbox,
                "before": before,
                "after": {"state": "queued", "attempts": 0},
            },
        )
        data = {"delivery": delivery_json(job, await activities_of(s, [job]))}
        waits = inst is not None and circuit_open(inst, now)
        until = inst.circuit_open_until if inst is not None else None
    view.ctx.wake_worker()
    notice = f"Delivery {job_id} to {host} is queued again."
    if waits and until is not None:
        notice += (
            f" The circuit for {host} is open until {until:%H:%M} UTC;"
            " it goes out then, or close the circuit now."
        )
    return Done(data, _after_retry(view, host, inst is not None), notice)


@CONSOLE.action(
    INSTANCE + "/retry",
    name="admin.instance.retry",
    back="admin.instance",
    role="admin",
    body=ReasonIn,
)
async def retry_host(view: View) -> Done:
    """Every dead delivery to one host, back in the queue (the host came back)."""
    host = view.arg("host").lower()
    now = utcnow()
    async with view.ctx.db.transaction() as s:
        inst = await get_instance(s, host, create=False)
        _refuse_unless_allowed(view.ctx, host, inst)
        jobs = (
            await s.scalars(
                select(Job)
                .where(Job.kind == DELIVER, Job.state == "dead", to_host(host))
                .order_by(Job.id)
                .with_for_update()
            )
        ).all()
        for job in jobs:
            _requeue(job, now)
        ids = [j.id for j in jobs]
        if ids:
            details: dict[str, Any] = {
                "count": len(ids),
                "jobs": ids[:100],
                "before": {"state": "dead"},
                "after": {"state": "queued", "attempts": 0},
            }
            if view.body.get("reason"):
                details["reason"] = view.body["reason"]
            await record(s, view, "delivery.retry_host", _target(host), details)
        data = {"host": host, "retried": len(ids), "jobs": ids}
    if ids:
        view.ctx.wake_worker()
        notice = f"{len(ids)} dead deliver{'y' if len(ids) == 1 else 'ies'} to {host} queued again."
    else:
        notice = f"No dead deliveries to {host}."
    return Done(data, _after_retry(view, host, inst is not None), notice)


# ---- inbound -------------------------------------------------------------------


@CONSOLE.page(
    "/federation/inbound",
    name="admin.inbound",
    template="federation_inbound.html",
    role="curator",
    section="federation",
)
async def inbound(view: View) -> dict[str, Any]:
    """Activities other nodes sent, newest first; by state, type and host."""
    q = view.query
    state = q.get("state", "")
    kind = q.get("type", "").strip()[:64]
    host = q.get("host", "").strip().lower()[:255]
    if state and state not in INBOUND_STATES:
        raise BadRequest("state must be one of " + ", ".join(INBOUND_STATES))
    limit = parse_limit(q.get("limit"), default=50)
    stmt = select(InboxItem).options(defer(InboxItem.payload))
    if state:
        stmt = stmt.where(InboxItem.state == state)
    if kind:
        stmt = stmt.where(InboxItem.type == kind)
    if host:
        stmt = stmt.where(InboxItem.host == host)
    async with view.ctx.db.read_session() as s:
        page = await keyset_page(
            s,
            stmt,
            InboxItem.received_at,
            InboxItem.id,
            cursor=q.get("cursor") or None,
            limit=limit,
            descending=True,
        )
        # Two counts that stay cheap on a big log (the state index): what failed, what waits.
        counts = {
            st: int(
                await s.scalar(
                    select(func.count()).select_from(InboxItem).where(InboxItem.state == st)
                )
                or 0
            )
            for st in ("failed", "received")
        }
    filters = {"state": state, "type": kind, "host": host}
    name = "admin.inbound.json" if view.json else "admin.inbound"
    return {
        "filters": filters,
        "states": INBOUND_STATES,
        "types": sorted({activity for activity, _ in HANDLERS.table}),
        "counts": counts,
        "items": [inbound_json(i) for i in page.items],
        "next": view.url(name, {**filters, "cursor": page.next_cursor, "limit": q.get("limit")})
        if page.next_cursor
        else None,
    }


@CONSOLE.page(
    "/federation/inbound/{id:\\d+}",
    name="admin.inbound.item",
    template="federation_inbound_item.html",
    role="curator",
    section="federation",
)
async def inbound_item(view: View) -> dict[str, Any]:
    """One inbound activity with its raw payload (what the sender signed and sent)."""
    item_id = int(view.arg("id"))
    async with view.ctx.db.read_session() as s:
        item = await s.get(InboxItem, item_id)
        if item is None:
            raise NotFound(f"no inbound activity {item_id}")
        known = await s.scalar(select(Instance.id).where(Instance.host == item.host))
    out: dict[str, Any] = {
        "item": inbound_json(item, full=True),
        "instance_known": known is not None,
    }
    if not view.json:
        # The page shows the payload pretty-printed; autoescape makes it inert text.
        out["payload_text"] = json.dumps(item.payload, indent=2, ensure_ascii=False)
    return out
