"""The creditor's check of a statement (DESIGN.md 7.2), and the answers it sends.

A statement from node A to us says how many plays and listeners each of our
artists had among A's fans. We received a `Listen` for every one of those
plays, so we can check: a line may count fewer plays than we saw (A's fraud
rules hold some back) but never more, nor more listeners than we saw, and
only our own artists. The answer, Accept or Reject with a reason per line,
is itself a signed document (so the clearing house can show it to everyone)
sent to the issuer and the house. Accepted lines are credited to our
artists at once; disputed lines wait for a reissue or are carried forward.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.handlers import HANDLERS, Inbound
from federation.vocab import host_of, id_of
from node.context import NodeContext
from node.jobs import RetryLater
from node.models import Actor, Play, utcnow

from . import canonical, ledger
from .clearing_models import ClearingStatement
from .money import Money, normalize_currency
from .statements import (
    MAX_LINES,
    house_uri,
    is_house,
    new_id,
    node_uri,
    now_iso,
    period_bounds,
    send_to_nodes,
    sign,
    verify_signed,
)

MAX_AMOUNT = 2**53 - 1  # the largest integer RFC 8785 (I-JSON) carries exactly


class NotYet(RetryLater):
    """A message arrived before the one it answers (or before the Listens it
    counts): the inbox job tries it again shortly, without counting a failure."""

    def __init__(self, reason: str, seconds: float = 2.0) -> None:
        super().__init__(utcnow() + timedelta(seconds=seconds), reason)


async def not_yet(
    session: AsyncSession, activity: dict[str, Any], reason: str, patience: float
) -> str:
    """Raise NotYet while the activity is younger than `patience` seconds here;
    after that, give up and return the reason (the item is then ignored)."""
    from federation.models import InboxItem

    received = await session.scalar(
        select(func.min(InboxItem.received_at)).where(
            InboxItem.activity_id == (id_of(activity) or "")[:1024]
        )
    )
    if received is None or utcnow() - received < timedelta(seconds=patience):
        raise NotYet(reason)
    return f"{reason} (gave up waiting)"


@dataclass(frozen=True)
class Received:
    plays: int
    listeners: int


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_shape(doc: dict[str, Any], issuer: str) -> list[str]:
    """Problems with a statement as a document (pure; empty when well-formed)."""
    problems = []
    try:
        period_bounds(doc.get("period"))
    except ValueError as e:
        problems.append(str(e))
    try:
        normalize_currency(doc.get("currency"))
    except (TypeError, ValueError):
        problems.append("the currency is not an ISO 4217 code")
    if doc.get("issuer") != issuer:
        problems.append("the statement's issuer is not the node that sent it")
    lines = doc.get("lines")
    if not isinstance(lines, list) or len(lines) > MAX_LINES:
        return [*problems, "the statement's lines are not a list of bounded size"]
    for ln in lines:
        if not (
            isinstance(ln, dict)
            and isinstance(ln.get("artist"), str)
            and 0 < len(ln["artist"]) <= 512
            and all(
                _int(ln.get(k)) and 0 <= ln[k] <= MAX_AMOUNT
                for k in ("plays", "listeners", "amount")
            )
        ):
            return [*problems, "a line is not {artist, plays, listeners, amount} with counts >= 0"]
    if not _int(doc.get("total")) or doc["total"] != sum(ln["amount"] for ln in lines):
        problems.append("the total is not the sum of the lines")
    return problems


def check_lines(
    lines: Iterable[dict[str, Any]], received: dict[tuple[str, str], Received], ours: set[str]
) -> list[dict[str, Any]]:
    """Disputes per line (pure): [{"artist", "reason"}], empty when every line checks out."""
    out = []
    for ln in lines:
        artist, period = ln["artist"], ln.get("carriedFrom") or ln.get("_period")
        got = received.get((period, artist), Received(0, 0))
        if artist not in ours:
            reason = "not an artist of this node"
        elif ln["plays"] > got.plays:
            reason = f"{ln['plays']} plays stated, {got.plays} Listens received in {period}"
        elif ln["listeners"] > min(ln["plays"], got.listeners):
            reason = f"{ln['listeners']} listeners stated, {got.listeners} seen in {period}"
        else:
            continue
        out.append({"artist": artist, "reason": reason})
    return out


async def received_listens(
    session: AsyncSession, issuer: str, period: str, artists: list[str]
) -> dict[str, Received]:
    """Plays of our artists reported by the issuer's listeners (Listens) in the period."""
    start, end = period_bounds(period)
    scheme = issuer.split("://", 1)[0]
    prefix = f"{scheme}://{host_of(issuer)}/"
    rows = await session.execute(
        select(Play.artist_uri, func.count(), func.count(func.distinct(Play.listener_uri)))
        .where(
            Play.origin == "remote",
            Play.artist_uri.in_(artists),
            Play.listener_uri.startswith(prefix, autoescape=True),
            Play.started_at >= start,
            Play.started_at < end,
        )
        .group_by(Play.artist_uri)
    )
    return {a: Received(int(n), int(ls)) for a, n, ls in rows.all()}


async def reconcile(
    ctx: NodeContext, session: AsyncSession, doc: dict[str, Any], expected_prev: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """(disputes per line, problems with the whole statement) for a statement to us."""
    issuer = doc["issuer"]
    lines = [{**ln, "_period": doc["period"]} for ln in doc["lines"]]
    artists = sorted({ln["artist"] for ln in lines})
    ours = set(
        (
            await session.scalars(
                select(Actor.uri).where(Actor.uri.in_(artists), Actor.local.is_(True))
            )
        ).all()
    )
    received: dict[tuple[str, str], Received] = {}
    for period in sorted({ln.get("carriedFrom") or doc["period"] for ln in lines}):
        try:
            counts = await received_listens(session, issuer, period, artists)
        except ValueError:
            counts = {}
        received.update({(period, a): r for a, r in counts.items()})
    disputes = check_lines(lines, received, ours)
    whole = []
    if doc.get("recipient") != node_uri(ctx):
        whole.append("the statement is addressed to another node")
    if doc.get("previous") != expected_prev and doc.get("supersedes") is None:
        whole.append("the statement does not follow the last one received (hash chain)")
    return disputes, whole


async def answer(
    ctx: NodeContext,
    session: AsyncSession,
    row: ClearingStatement,
    disputes: list[dict[str, Any]],
    whole: list[str],
) -> None:
    """Sign and send Accept or Reject; credit our artists with the undisputed lines."""
    disputed = sorted({d["artist"] for d in disputes})
    if whole:
        disputed = sorted({ln["artist"] for ln in row.document["lines"]})
    reasons = [{"artist": None, "reason": r} for r in whole] + disputes
    decision = "reject" if reasons else "accept"
    doc = sign(
        ctx,
        {
            "id": new_id(ctx, "answers"),
            "type": "nycmg:StatementAnswer",
            "statement": row.uri,
            "statementHash": row.hash,
            "decision": decision,
            "by": node_uri(ctx),
            "reasons": reasons,
            "disputed": disputed,
            "answered": now_iso(),
        },
    )
    row.state = "accepted" if decision == "accept" else "rejected"
    row.answer, row.disputed, row.answered_at = doc, disputed, utcnow()
    credit = [ln for ln in row.document["lines"] if ln["artist"] not in disputed]
    total = sum(ln["amount"] for ln in credit)
    if total:
        cur = row.currency
        lines = [ledger.Line(f"node_receivable:{row.issuer_uri}", debit=Money(total, cur))]
        lines += [
            ledger.Line(ledger.artist_account(ln["artist"]), credit=Money(ln["amount"], cur))
            for ln in credit
            if ln["amount"]
        ]
        await ledger.post(
            session,
            kind="clearing_in",
            memo=f"statement {row.uri} from {row.issuer_uri}",
            ref=f"clearing:in:{row.hash}"[:200],
            lines=lines,
            period=row.period,
        )
    activity = {
        "id": doc["id"] + "/activity",
        "type": "Accept" if decision == "accept" else "Reject",
        "actor": node_uri(ctx),
        "to": [row.issuer_uri],
        "cc": [house_uri(ctx)] if house_uri(ctx) else [],
        "object": {"id": row.uri, "type": "nycmg:Statement"},
        "result": doc,
    }
    await send_to_nodes(ctx, session, activity, [row.issuer_uri, house_uri(ctx)])


async def _last_received_hash(
    session: AsyncSession, issuer: str, me: str, currency: str
) -> str | None:
    return await session.scalar(
        select(ClearingStatement.hash)
        .where(
            ClearingStatement.issuer_uri == issuer,
            ClearingStatement.recipient_uri == me,
            ClearingStatement.currency == currency,
        )
        .order_by(ClearingStatement.id.desc())
        .limit(1)
    )


async def receive_statement(
    ctx: NodeContext, session: AsyncSession, activity: dict[str, Any], sender: str
) -> str | None:
    """Store a statement sent to us (or to us as the clearing house) and answer it."""
    doc = activity.get("object")
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        return "not a statement"
    if host_of(doc["id"]) != host_of(sender):
        return "the statement's id is not on its issuer's host"
    problems = check_shape(doc, sender)
    me = node_uri(ctx)
    if doc.get("recipient") != me and not is_house(ctx):
        return "a statement for another node, and we are not the clearing house"
    try:
        await verify_signed(ctx, session, doc, sender)
    except canonical.SignatureInvalid as e:
        return f"statement refused: {e}"
    if await session.scalar(select(ClearingStatement.id).where(ClearingStatement.uri == doc["id"])):
        return None  # already have it
    if problems:
        return "statement refused: " + "; ".join(problems)
    currency = normalize_currency(doc["currency"])
    expected_prev = await _last_received_hash(session, sender, doc["recipient"], currency)
    row = ClearingStatement(
        uri=doc["id"],
        role="in" if doc["recipient"] == me else "copy",
        period=doc["period"],
        issuer_uri=sender,
        recipient_uri=doc["recipient"],
        currency=currency,
        version=doc.get("version") if _int(doc.get("version")) else 1,
        supersedes_uri=doc.get("supersedes") if isinstance(doc.get("supersedes"), str) else None,
        prev_hash=doc.get("previous") if isinstance(doc.get("previous"), str) else None,
        hash=canonical.doc_hash(doc),
        total_minor=doc["total"],
        document=doc,
        state="issued",
        disputed=[],
    )
    session.add(row)
    if row.supersedes_uri:
        old = await session.scalar(
            select(ClearingStatement).where(ClearingStatement.uri == row.supersedes_uri)
        )
        if old is not None and old.issuer_uri == sender:
            old.state = "superseded"
    await session.flush()
    if row.role == "in":
        disputes, whole = await reconcile(ctx, session, doc, expected_prev)
        if any("Listens received" in d["reason"] for d in disputes):
            # The last Listens may still be on their way (or resent with a
            # reissue): look again shortly before disputing them.
            await not_yet(session, activity, "Listens still missing", grace_seconds(ctx))
        await answer(ctx, session, row, disputes, whole)
    return None


def grace_seconds(ctx: NodeContext) -> float:
    return float(ctx.settings.clearing.listen_grace_seconds)


async def receive_answer(ctx: NodeContext, session: AsyncSession, inb: Inbound) -> str | None:
    """The creditor's Accept or Reject of a statement, at the issuer and the house."""
    doc = inb.activity.get("result")
    uri = id_of(inb.activity.get("object"))
    row = await session.scalar(select(ClearingStatement).where(ClearingStatement.uri == uri))
    if row is None:
        if not is_house(ctx):  # an issuer always has its own statements
            return f"no statement {uri} here"
        # The answer may have overtaken the statement on its way to the house.
        return await not_yet(session, inb.activity, f"no statement {uri} here (yet)", 600)
    if row.recipient_uri != inb.actor.uri:
        return "only the statement's recipient may answer it"
    try:
        await verify_signed(ctx, session, doc, inb.actor.uri)
    except canonical.SignatureInvalid as e:
        return f"answer refused: {e}"
    if doc.get("statement") != row.uri or doc.get("statementHash") != row.hash:
        return "the answer is about another version of the statement"
    decision = doc.get("decision")
    if decision not in ("accept", "reject") or inb.activity.get("type") != decision.title():
        return "the answer's decision does not match the activity"
    disputed = doc.get("disputed") if isinstance(doc.get("disputed"), list) else []
    if row.state != "superseded":
        row.state = "accepted" if decision == "accept" else "rejected"
    row.answer, row.answered_at = doc, utcnow()
    row.disputed = sorted({d for d in disputed if isinstance(d, str)})
    return None


@HANDLERS.on("Create", "Statement")
async def on_statement(inb: Inbound) -> str | None:
    return await receive_statement(inb.ctx, inb.session, inb.activity, inb.actor.uri)


@HANDLERS.on("Accept", "Statement")
@HANDLERS.on("Reject", "Statement")
async def on_statement_answer(inb: Inbound) -> str | None:
    return await receive_answer(inb.ctx, inb.session, inb)
