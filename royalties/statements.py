"""Statements: what this node owes each creditor node for a closed period (DESIGN.md 7.1).

At close (`royalties.period_closed`, in the close transaction) the node
issues one statement per creditor node and currency from the period's
payables: lines per artist (plays, listeners, amount), the total, the hash
of its previous statement to that node (a chain each side can check), signed
over its RFC 8785 form with the node's Ed25519 key. Lines a creditor
disputed last time and that were never reissued are carried forward.

Statements travel as `Create` activities from the node actor to the
creditor and the clearing house (the federation outbox, so they are retried
for days). This module also owns the small plumbing the rest of the protocol
shares: the node actor, period bounds, sending to other nodes' actors, and
verifying a signed document against its signer's published key.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.context import NodeContext
from node.events import DomainEvent
from node.jobs import PermanentFailure
from node.models import Actor, Job, new_uuid, utcnow

from . import canonical
from .clearing_models import ClearingKey, ClearingStatement
from .models import RoyaltyPayable

log = logging.getLogger("nycmg.royalties.clearing")
MAX_LINES = 50_000  # a statement with more lines than this is refused


# ---- shared plumbing -------------------------------------------------------------


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a calendar month in UTC; ValueError for anything but YYYY-MM."""
    if not isinstance(period, str) or len(period) != 7 or period[4] != "-":
        raise ValueError(f"not a period (YYYY-MM): {period!r}")
    year, month = int(period[:4]), int(period[5:])
    if not 2000 <= year <= 9999 or not 1 <= month <= 12:
        raise ValueError(f"not a period (YYYY-MM): {period!r}")
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def node_uri(ctx: NodeContext) -> str:
    return ctx.urls.node_actor()


def house_uri(ctx: NodeContext) -> str:
    """The clearing house's actor URI from the settings ('' when there is none)."""
    return (ctx.settings.royalties.clearing_house or "").strip()


def is_house(ctx: NodeContext) -> bool:
    return house_uri(ctx) == node_uri(ctx)


def now_iso() -> str:
    return utcnow().isoformat().replace("+00:00", "Z")


def new_id(ctx: NodeContext, kind: str) -> str:
    return ctx.urls.obj(f"clearing/{kind}", new_uuid())


async def send_to_nodes(
    ctx: NodeContext, session: AsyncSession, activity: dict[str, Any], recipients: list[str]
) -> None:
    """Deliver a node activity to other nodes' actors, in the caller's transaction.

    A job resolves each recipient's inbox first (an HTTP fetch, so never
    inside this transaction), then hands the activity to the federation
    outbox, which signs and retries it."""
    targets = sorted({r for r in recipients if r and r != node_uri(ctx)})
    if targets:
        await ctx.enqueue(
            session, "clearing.send", {"activity": activity, "to": targets}, priority=70
        )


async def send_job(ctx: NodeContext, job: Job) -> None:
    from federation.outbox import send

    inboxes = []
    for uri in job.payload["to"]:
        actor = await ctx.directory.fetch_actor(uri)  # type: ignore[union-attr]
        inbox = actor.shared_inbox_url or actor.inbox_url
        if not inbox:
            raise PermanentFailure(f"{uri} has no inbox")
        inboxes.append(inbox)
    async with ctx.db.transaction() as s:
        me = await s.scalar(select(Actor).where(Actor.uri == node_uri(ctx)))
        if me is None:
            raise PermanentFailure("the node actor does not exist yet")
        await send(ctx, s, me, job.payload["activity"], inboxes, public=False)


def sign(ctx: NodeContext, doc: dict[str, Any]) -> dict[str, Any]:
    return canonical.sign(doc, canonical.node_private_key(ctx.settings), node_uri(ctx))


async def _fetch_key(ctx: NodeContext, session: AsyncSession, actor_uri: str) -> str:
    doc = await ctx.directory.client.get_json(actor_uri)  # type: ignore[union-attr]
    want = canonical.key_id(actor_uri)
    methods = doc.get("assertionMethod")
    for m in methods if isinstance(methods, list) else [methods]:
        if (
            isinstance(m, dict)
            and m.get("id") == want
            and m.get("controller") in (None, actor_uri)
            and isinstance(m.get("publicKeyMultibase"), str)
        ):
            canonical.key_from_multibase(m["publicKeyMultibase"])  # valid, or ValueError
            row = await session.scalar(
                select(ClearingKey).where(ClearingKey.actor_uri == actor_uri)
            )
            if row is None:
                row = ClearingKey(actor_uri=actor_uri, key_id=want, multibase="")
                session.add(row)
            row.multibase = m["publicKeyMultibase"]
            row.fetched_at = utcnow()
            await session.flush()
            return row.multibase
    raise canonical.SignatureInvalid(f"{actor_uri} publishes no clearing key")


async def verify_signed(ctx: NodeContext, session: AsyncSession, doc: Any, signer_uri: str) -> None:
    """Raise SignatureInvalid unless `doc` is signed by `signer_uri`'s published clearing key.

    Keys are cached per node and refetched once when a signature fails
    (the node may have rotated its key)."""
    if not isinstance(doc, dict):
        raise canonical.SignatureInvalid("not a signed document")
    if canonical.signer_of(doc) != canonical.key_id(signer_uri):
        raise canonical.SignatureInvalid(f"the document is not signed by {signer_uri}")
    if signer_uri == node_uri(ctx):
        canonical.verify(doc, canonical.node_private_key(ctx.settings).public_key())
        return
    row = await session.scalar(select(ClearingKey).where(ClearingKey.actor_uri == signer_uri))
    if row is not None:
        try:
            canonical.verify(doc, canonical.key_from_multibase(row.multibase))
            return
        except canonical.SignatureInvalid:
            pass
    fresh = await _fetch_key(ctx, session, signer_uri)
    canonical.verify(doc, canonical.key_from_multibase(fresh))


# ---- issuing -----------------------------------------------------------------------


async def previous_hash(
    session: AsyncSession, issuer: str, recipient: str, currency: str
) -> str | None:
    """The hash of the issuer's latest statement to the recipient in this currency."""
    return await session.scalar(
        select(ClearingStatement.hash)
        .where(
            ClearingStatement.issuer_uri == issuer,
            ClearingStatement.recipient_uri == recipient,
            ClearingStatement.currency == currency,
        )
        .order_by(ClearingStatement.id.desc())
        .limit(1)
    )


async def issue(
    ctx: NodeContext,
    session: AsyncSession,
    *,
    period: str,
    recipient: str,
    currency: str,
    lines: list[dict[str, Any]],
    supersedes: ClearingStatement | None = None,
) -> ClearingStatement:
    """Sign, store and send one statement."""
    me = node_uri(ctx)
    lines = sorted(lines, key=lambda ln: (ln.get("carriedFrom", ""), ln["artist"]))
    doc = {
        "id": new_id(ctx, "statements"),
        "type": "nycmg:Statement",
        "period": period,
        "issuer": me,
        "recipient": recipient,
        "currency": currency,
        "version": (supersedes.version + 1) if supersedes else 1,
        "supersedes": supersedes.uri if supersedes else None,
        "previous": await previous_hash(session, me, recipient, currency),
        "lines": lines,
        "total": sum(ln["amount"] for ln in lines),
        "issued": now_iso(),
    }
    signed = sign(ctx, doc)
    row = ClearingStatement(
        uri=doc["id"],
        role="out",
        period=period,
        issuer_uri=me,
        recipient_uri=recipient,
        currency=currency,
        version=doc["version"],
        supersedes_uri=doc["supersedes"],
        prev_hash=doc["previous"],
        hash=canonical.doc_hash(signed),
        total_minor=doc["total"],
        document=signed,
        state="issued",
        disputed=[],
    )
    session.add(row)
    if supersedes is not None:
        supersedes.state = "superseded"
    await session.flush()
    activity = {
        "id": doc["id"] + "/create",
        "type": "Create",
        "actor": me,
        "to": [recipient],
        "cc": [house_uri(ctx)] if house_uri(ctx) else [],
        "object": signed,
    }
    await send_to_nodes(ctx, session, activity, [recipient, house_uri(ctx)])
    return row


async def carried_lines(
    session: AsyncSession, issuer: str, recipient: str, currency: str, before: str
) -> tuple[list[dict[str, Any]], list[ClearingStatement]]:
    """Lines of earlier statements the recipient disputed and nobody reissued."""
    rows = (
        await session.scalars(
            select(ClearingStatement).where(
                ClearingStatement.role == "out",
                ClearingStatement.issuer_uri == issuer,
                ClearingStatement.recipient_uri == recipient,
                ClearingStatement.currency == currency,
                ClearingStatement.state == "rejected",
                ClearingStatement.carried_into.is_(None),
                ClearingStatement.period < before,
            )
        )
    ).all()
    lines: list[dict[str, Any]] = []
    for row in rows:
        for ln in row.document["lines"]:
            if ln["artist"] in row.disputed:
                lines.append({**ln, "carriedFrom": ln.get("carriedFrom", row.period)})
    return lines, list(rows)


async def issue_for_period(
    ctx: NodeContext, session: AsyncSession, period: str, currency: str
) -> list[ClearingStatement]:
    """One statement per creditor node for a closed period (idempotent per period)."""
    me = node_uri(ctx)
    done = await session.scalar(
        select(func.count())
        .select_from(ClearingStatement)
        .where(
            ClearingStatement.role == "out",
            ClearingStatement.period == period,
            ClearingStatement.currency == currency,
        )
    )
    if done:
        return []
    payables = (
        await session.scalars(
            select(RoyaltyPayable)
            .where(RoyaltyPayable.period == period, RoyaltyPayable.currency == currency)
            .order_by(RoyaltyPayable.node_uri, RoyaltyPayable.artist_uri)
        )
    ).all()
    by_node: dict[str, list[dict[str, Any]]] = {}
    for p in payables:
        if p.amount_minor <= 0 and p.plays <= 0:
            continue
        by_node.setdefault(p.node_uri, []).append(
            {
                "artist": p.artist_uri,
                "plays": int(p.plays),
                "listeners": int(p.listeners),
                "amount": int(p.amount_minor),
            }
        )
    earlier = await session.scalars(
        select(ClearingStatement.recipient_uri)
        .where(
            ClearingStatement.role == "out",
            ClearingStatement.state == "rejected",
            ClearingStatement.carried_into.is_(None),
            ClearingStatement.currency == currency,
        )
        .distinct()
    )
    for recipient in earlier.all():
        by_node.setdefault(recipient, [])
    out = []
    for recipient, lines in sorted(by_node.items()):
        if recipient == me:
            continue
        extra, carried_from = await carried_lines(session, me, recipient, currency, period)
        if not lines and not extra:
            continue
        for old in carried_from:  # the Listens behind carried lines go again too
            await resend_listens(ctx, session, old)
        row = await issue(
            ctx, session, period=period, recipient=recipient, currency=currency, lines=lines + extra
        )
        for old in carried_from:
            old.carried_into = row.uri
        out.append(row)
    return out


async def reissue(ctx: NodeContext, session: AsyncSession, uri: str) -> ClearingStatement:
    """Reissue a rejected statement: the same lines, superseding it, and the
    Listens behind the disputed lines sent again (a lost Listen is the usual
    cause of a dispute; the receiver counts each Listen once, however often
    it arrives)."""
    from .errors import BadPeriod

    old = await session.scalar(
        select(ClearingStatement).where(
            ClearingStatement.uri == uri, ClearingStatement.role == "out"
        )
    )
    if old is None:
        raise BadPeriod(f"no statement of ours {uri}")
    if old.state != "rejected":
        raise BadPeriod(f"only a rejected statement can be reissued (this one is {old.state})")
    if old.carried_into:
        raise BadPeriod(f"its disputed lines were already carried into {old.carried_into}")
    await resend_listens(ctx, session, old)
    return await issue(
        ctx,
        session,
        period=old.period,
        recipient=old.recipient_uri,
        currency=old.currency,
        lines=list(old.document["lines"]),
        supersedes=old,
    )


async def resend_listens(
    ctx: NodeContext, session: AsyncSession, statement: ClearingStatement
) -> int:
    """Queue the Listen activities of the disputed artists' plays to the recipient again."""
    from federation.models import OutboxItem
    from node.models import Play

    disputed = set(statement.disputed) or {ln["artist"] for ln in statement.document["lines"]}
    start, end = period_bounds(statement.period)
    play_uris = (
        await session.scalars(
            select(Play.uri).where(
                Play.artist_uri.in_(disputed),
                Play.started_at >= start,
                Play.started_at < end,
                Play.origin == "local",
            )
        )
    ).all()
    if not play_uris:
        return 0
    items = (
        await session.scalars(
            select(OutboxItem).where(
                OutboxItem.activity_id.in_([u for u in play_uris if u]), OutboxItem.type == "Listen"
            )
        )
    ).all()
    inboxes = dict(
        (
            await session.execute(
                select(Actor.uri, Actor.inbox_url).where(Actor.uri.in_(sorted(disputed)))
            )
        ).all()
    )
    count = 0
    for item in items:
        to = item.payload.get("to")
        inbox = inboxes.get(to[0]) if isinstance(to, list) and len(to) == 1 else None
        if inbox:
            await ctx.enqueue(
                session,
                "federation.deliver",
                {"item": item.id, "inbox": inbox},
                max_attempts=16,
                priority=75,
            )
            count += 1
    return count


def subscribe(ctx: NodeContext) -> None:
    """Issue statements in the close transaction (the transactional outbox)."""

    @ctx.bus.on("royalties.period_closed")
    async def on_closed(session: AsyncSession, e: DomainEvent) -> None:
        await issue_for_period(ctx, session, e.payload["period"], e.payload["currency"])
