"""The clearing house and its members: netting, settlement, transfers (DESIGN.md 7.3, 7.4).

The house (`royalties.clearing_house`) takes a period's answered statements
(the latest of each chain), nets what they oblige per currency, and sends a
signed settlement that carries the statements and their signed answers, so
every member can check each signature and run the same netting itself; a
member rejects a settlement that differs from its own computation or that
misses or alters one of its statements. Lines a creditor disputed are left
out (carried forward by their issuer); the rest settles.

When every member has agreed, the house says so (`Update`), members book the
settlement in their ledgers and the payers pay: each transfer is marked paid
by its payer (the `ledger` provider with an external reference, or a Stripe
Connect transfer) and confirmed by its payee. The period is settled when
every transfer is confirmed.

Ledger: a member moves each settled obligation out of `node_payable:` /
`node_receivable:` into `clearing:{house}`; paying credits cash, receiving
debits it, and `clearing:{house}` returns to zero.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.handlers import HANDLERS, Inbound
from federation.vocab import host_of, id_of
from node.appkeys import CTX
from node.context import NodeContext
from node.models import utcnow

from . import canonical, ledger, netting, reconcile, statements
from .clearing_models import ClearingSettlement, ClearingStatement, ClearingTransfer
from .errors import BadPeriod
from .money import Money
from .reconcile import not_yet
from .statements import (
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

MAX_STATEMENTS = 10_000
ledger.register_account("clearing", prefixed=True, debit_normal=True)


def clearing_account(house: str) -> str:
    return f"clearing:{house}"


# ---- the computation every party repeats -------------------------------------------


def obligation_of(statement: dict[str, Any], answer: dict[str, Any]) -> int:
    """What an answered statement settles: everything, or the undisputed lines."""
    if answer.get("decision") == "accept":
        return int(statement["total"])
    disputed = set(answer.get("disputed") or [])
    return sum(ln["amount"] for ln in statement["lines"] if ln["artist"] not in disputed)


def compute(period: str, house: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Members, positions, transfers and carried lines of a settlement (pure, deterministic)."""
    obligations, carried, members = [], [], set()
    for e in entries:
        st, ans = e["statement"], e["answer"]
        members |= {st["issuer"], st["recipient"]}
        amount = obligation_of(st, ans)
        if amount:
            obligations.append(
                netting.Obligation(st["issuer"], st["recipient"], st["currency"], amount)
            )
        if ans.get("decision") != "accept":
            disputed = set(ans.get("disputed") or [])
            carried += [
                {
                    "issuer": st["issuer"],
                    "recipient": st["recipient"],
                    "currency": st["currency"],
                    "artist": ln["artist"],
                    "amount": ln["amount"],
                }
                for ln in st["lines"]
                if ln["artist"] in disputed
            ]
    pos, transfers = netting.net(obligations)
    return {
        "members": sorted(members),
        "positions": pos,
        "transfers": [t.as_json() for t in transfers],
        "carried": sorted(carried, key=lambda c: (c["issuer"], c["recipient"], c["artist"])),
    }


async def candidates(session: AsyncSession, period: str) -> list[ClearingStatement]:
    """The latest answered statement of each (issuer, recipient, currency) in the period."""
    rows = (
        await session.scalars(
            select(ClearingStatement)
            .where(ClearingStatement.period == period)
            .order_by(ClearingStatement.id)
        )
    ).all()
    superseded = {r.supersedes_uri for r in rows if r.supersedes_uri}
    return [
        r
        for r in rows
        if r.uri not in superseded and r.state in ("accepted", "rejected") and r.answer is not None
    ]


# ---- the house ---------------------------------------------------------------------


async def run(ctx: NodeContext, period: str) -> ClearingSettlement:
    """`nycmg clearing run YYYY-MM`: net the period and send the settlement (house only)."""
    try:
        period_bounds(period)
    except ValueError as e:
        raise BadPeriod(str(e)) from None
    if not is_house(ctx):
        raise BadPeriod(
            f"this node is not the clearing house (royalties.clearing_house is "
            f"{house_uri(ctx) or 'not set'})"
        )
    async with ctx.db.transaction() as s:
        existing = await s.scalar(
            select(ClearingSettlement).where(
                ClearingSettlement.period == period,
                ClearingSettlement.role == "house",
                ClearingSettlement.state != "rejected",
            )
        )
        if existing is not None:
            return existing
        rows = await candidates(s, period)
        if not rows:
            raise BadPeriod(f"no answered statements for {period} yet")
        entries = [{"statement": r.document, "answer": r.answer} for r in rows]
        me = node_uri(ctx)
        body = compute(period, me, entries)
        uri = new_id(ctx, "settlements")
        transfers = [
            {"id": f"{uri}/transfers/{i}", **t} for i, t in enumerate(body["transfers"], 1)
        ]
        doc = sign(
            ctx,
            {
                "id": uri,
                "type": "nycmg:Settlement",
                "period": period,
                "house": me,
                **body,
                "transfers": transfers,
                "statements": entries,
                "issued": now_iso(),
            },
        )
        row = ClearingSettlement(
            uri=uri,
            role="house",
            period=period,
            house_uri=me,
            hash=canonical.doc_hash(doc),
            document=doc,
            state="proposed",
            answers={},
            problems=[],
        )
        s.add(row)
        for t in transfers:
            s.add(_transfer_row(row, t))
        await s.flush()
        if me in body["members"]:
            problems = await check(ctx, s, doc)
            row.answers = {
                me: {"decision": "reject" if problems else "accept", "reasons": problems}
            }
        activity = {
            "id": uri + "/create",
            "type": "Create",
            "actor": me,
            "to": [m for m in body["members"] if m != me],
            "object": doc,
        }
        await send_to_nodes(ctx, s, activity, body["members"])
        await _tally(ctx, s, row)
        return row


def _transfer_row(settlement: ClearingSettlement, t: dict[str, Any]) -> ClearingTransfer:
    return ClearingTransfer(
        uri=t["id"],
        settlement_uri=settlement.uri,
        period=settlement.period,
        payer_uri=t["payer"],
        payee_uri=t["payee"],
        currency=t["currency"],
        amount_minor=t["amount"],
        state="due",
    )


async def _tally(ctx: NodeContext, session: AsyncSession, row: ClearingSettlement) -> None:
    """At the house: once every member has answered, accept (and tell them) or reject."""
    members = row.document["members"]
    answers = row.answers or {}
    if row.state != "proposed" or any(m not in answers for m in members):
        return
    if any(a["decision"] != "accept" for a in answers.values()):
        row.state = "rejected"
        return
    row.state = "accepted"
    if node_uri(ctx) in members:
        await book(ctx, session, row)
    await _announce(ctx, session, row)
    await _maybe_settled(ctx, session, row)


async def _announce(ctx: NodeContext, session: AsyncSession, row: ClearingSettlement) -> None:
    activity = {
        "id": f"{row.uri}/{row.state}",
        "type": "Update",
        "actor": node_uri(ctx),
        "to": row.document["members"],
        "object": {"id": row.uri, "type": "nycmg:Settlement", "state": row.state},
    }
    await send_to_nodes(ctx, session, activity, row.document["members"])


async def _maybe_settled(ctx: NodeContext, session: AsyncSession, row: ClearingSettlement) -> None:
    if row.role != "house" or row.state != "accepted":
        return
    states = (
        await session.scalars(
            select(ClearingTransfer.state).where(ClearingTransfer.settlement_uri == row.uri)
        )
    ).all()
    if all(s == "confirmed" for s in states):
        row.state, row.settled_at = "settled", utcnow()
        await _announce(ctx, session, row)


# ---- members -----------------------------------------------------------------------


async def check(ctx: NodeContext, session: AsyncSession, doc: dict[str, Any]) -> list[str]:
    """A member's problems with a settlement (empty: it agrees)."""
    me = node_uri(ctx)
    problems: list[str] = []
    entries = doc.get("statements")
    if not isinstance(entries, list) or len(entries) > MAX_STATEMENTS:
        return ["the settlement's statements are not a bounded list"]
    try:
        period_bounds(doc.get("period"))
    except ValueError as e:
        return [str(e)]
    included = set()
    for e in entries:
        st = e.get("statement") if isinstance(e, dict) else None
        ans = e.get("answer") if isinstance(e, dict) else None
        if not isinstance(st, dict) or not isinstance(ans, dict):
            return ["a settlement entry is not {statement, answer}"]
        shape = reconcile.check_shape(st, st.get("issuer"))
        if shape or st.get("period") != doc["period"]:
            return [f"statement {st.get('id')} is malformed: {'; '.join(shape) or 'period'}"]
        try:
            await verify_signed(ctx, session, st, st["issuer"])
            await verify_signed(ctx, session, ans, st["recipient"])
        except canonical.SignatureInvalid as err:
            problems.append(f"statement {st.get('id')}: {err}")
            continue
        h = canonical.doc_hash(st)
        if ans.get("statement") != st.get("id") or ans.get("statementHash") != h:
            problems.append(f"the answer to {st.get('id')} is about another statement")
        included.add(st["id"])
        if me in (st["issuer"], st["recipient"]):
            mine = await session.scalar(
                select(ClearingStatement).where(ClearingStatement.uri == st["id"])
            )
            if mine is None or mine.hash != h:
                problems.append(f"statement {st['id']} is not the one we hold")
            elif mine.state == "superseded":
                problems.append(f"statement {st['id']} was superseded by a reissue")
    for r in await candidates(session, doc["period"]):
        if me in (r.issuer_uri, r.recipient_uri) and r.uri not in included:
            problems.append(f"statement {r.uri} is missing")
    if problems:
        return problems
    ours = compute(doc["period"], doc.get("house"), entries)
    theirs = {
        "members": doc.get("members"),
        "positions": doc.get("positions"),
        "transfers": [
            {k: v for k, v in t.items() if k != "id"} if isinstance(t, dict) else t
            for t in doc.get("transfers") or []
        ],
        "carried": doc.get("carried"),
    }
    for key in ("members", "positions", "transfers", "carried"):
        if ours[key] != theirs[key]:
            problems.append(f"the settlement's {key} differ from our own netting")
    return problems


async def receive_settlement(ctx: NodeContext, session: AsyncSession, inb: Inbound) -> str | None:
    doc = inb.activity.get("object")
    if inb.actor.uri != house_uri(ctx):
        return "a settlement from a node that is not our clearing house"
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        return "not a settlement"
    if host_of(doc["id"]) != host_of(inb.actor.uri) or doc.get("house") != inb.actor.uri:
        return "the settlement is not the house's own"
    try:
        await verify_signed(ctx, session, doc, inb.actor.uri)
    except canonical.SignatureInvalid as e:
        return f"settlement refused: {e}"
    if await session.scalar(
        select(ClearingSettlement.id).where(ClearingSettlement.uri == doc["id"])
    ):
        return None
    problems = await check(ctx, session, doc)
    row = ClearingSettlement(
        uri=doc["id"],
        role="member",
        period=doc["period"],
        house_uri=inb.actor.uri,
        hash=canonical.doc_hash(doc),
        document=doc,
        state="rejected" if problems else "agreed",
        answers={},
        problems=problems,
    )
    session.add(row)
    await session.flush()
    me = node_uri(ctx)
    activity = {
        "id": new_id(ctx, "answers") + "/activity",
        "type": "Reject" if problems else "Accept",
        "actor": me,
        "to": [inb.actor.uri],
        "object": {"id": row.uri, "type": "nycmg:Settlement"},
        "result": {"settlementHash": row.hash, "reasons": problems},
    }
    await send_to_nodes(ctx, session, activity, [inb.actor.uri])
    return None


async def receive_settlement_answer(
    ctx: NodeContext, session: AsyncSession, inb: Inbound
) -> str | None:
    uri = id_of(inb.activity.get("object"))
    # Locked: members answer at the same time, and each answer is added to the
    # others (on PostgreSQL two unlocked answers each kept only their own, and
    # the settlement waited forever for the one that was lost).
    row = await session.scalar(
        select(ClearingSettlement)
        .where(ClearingSettlement.uri == uri, ClearingSettlement.role == "house")
        .with_for_update()
    )
    if row is None:
        return "an answer to a settlement we did not make"
    if inb.actor.uri not in row.document["members"]:
        return "only a member may answer a settlement"
    result = inb.activity.get("result") if isinstance(inb.activity.get("result"), dict) else {}
    if result.get("settlementHash") not in (None, row.hash):
        return "the answer is about another settlement"
    reasons = [str(r)[:500] for r in (result.get("reasons") or [])][:50]
    decision = "accept" if inb.activity.get("type") == "Accept" else "reject"
    row.answers = {**(row.answers or {}), inb.actor.uri: {"decision": decision, "reasons": reasons}}
    await _tally(ctx, session, row)
    return None


async def receive_settlement_update(
    ctx: NodeContext, session: AsyncSession, inb: Inbound
) -> str | None:
    obj = inb.activity.get("object")
    uri = id_of(obj)
    # Locked: "accepted" and "settled" can be delivered at the same time.
    row = await session.scalar(
        select(ClearingSettlement)
        .where(ClearingSettlement.uri == uri, ClearingSettlement.role == "member")
        .with_for_update()
    )
    if row is None:
        return await not_yet(session, inb.activity, f"no settlement {uri} here (yet)", 600)
    if inb.actor.uri != row.house_uri:
        return "only the clearing house updates a settlement"
    state = obj.get("state") if isinstance(obj, dict) else None
    if state == "accepted" and row.state == "agreed":
        row.state = "accepted"
        await book(ctx, session, row)
    elif state == "settled" and row.state in ("agreed", "accepted"):
        if row.state == "agreed":
            await book(ctx, session, row)
        row.state, row.settled_at = "settled", utcnow()
    return None


async def book(ctx: NodeContext, session: AsyncSession, row: ClearingSettlement) -> None:
    """Move this node's settled obligations into the clearing account; list its transfers."""
    me, doc = node_uri(ctx), row.document
    account = clearing_account(row.house_uri)
    for e in doc["statements"]:
        st, ans = e["statement"], e["answer"]
        amount = obligation_of(st, ans)
        if not amount or me not in (st["issuer"], st["recipient"]):
            continue
        money = Money(amount, st["currency"])
        if st["issuer"] == me:
            lines = [
                ledger.Line(f"node_payable:{st['recipient']}", debit=money),
                ledger.Line(account, credit=money),
            ]
        else:
            lines = [
                ledger.Line(account, debit=money),
                ledger.Line(f"node_receivable:{st['issuer']}", credit=money),
            ]
        await ledger.post(
            session,
            kind="clearing_settle",
            memo=f"settlement {row.uri}: statement {st['id']}",
            ref=f"clearing:settle:{row.hash[7:39]}:{canonical.doc_hash(st)[7:39]}",
            lines=lines,
            period=row.period,
        )
    if row.role == "member":
        for t in doc["transfers"]:
            if me in (t["payer"], t["payee"]) and not await session.scalar(
                select(ClearingTransfer.id).where(ClearingTransfer.uri == t["id"])
            ):
                session.add(_transfer_row(row, t))
    await session.flush()


# ---- transfers ---------------------------------------------------------------------


async def _transfer(session: AsyncSession, uri: str) -> ClearingTransfer:
    row = await session.scalar(select(ClearingTransfer).where(ClearingTransfer.uri == uri))
    if row is None:
        raise BadPeriod(f"no transfer {uri}")
    return row


async def _settlement_of(session: AsyncSession, t: ClearingTransfer) -> ClearingSettlement:
    """The transfer's settlement, locked: transfers confirmed at the same time are
    counted one after the other, so the last of them sees every other one and
    settles the period (unlocked, on PostgreSQL, each could miss the other)."""
    return await session.scalar(
        select(ClearingSettlement)
        .where(ClearingSettlement.uri == t.settlement_uri)
        .with_for_update()
    )


async def pay(
    ctx: NodeContext, session: AsyncSession, uri: str, *, reference: str, provider: str = "ledger"
) -> ClearingTransfer:
    """The payer marks a transfer paid (after paying it outside, or through Stripe)."""
    t = await _transfer(session, uri)
    me = node_uri(ctx)
    if t.payer_uri != me:
        raise BadPeriod("only the payer marks a transfer paid")
    settlement = await _settlement_of(session, t)
    if settlement is None or settlement.state not in ("accepted", "settled"):
        raise BadPeriod("the settlement has not been accepted by every member yet")
    if t.state != "due":
        return t
    if not reference or len(reference) > 255:
        raise BadPeriod("a payment needs a reference (1..255 characters)")
    t.state, t.reference, t.provider, t.paid_at = "paid", reference, provider, utcnow()
    money = Money(t.amount_minor, t.currency)
    await ledger.post(
        session,
        kind="clearing_pay",
        memo=f"transfer {t.uri} to {t.payee_uri} ({reference})",
        ref=f"clearing:pay:{canonical.doc_hash({'t': t.uri})[7:71]}",
        lines=[
            ledger.Line(clearing_account(settlement.house_uri), debit=money),
            ledger.Line("cash", credit=money),
        ],
        period=t.period,
    )
    activity = {
        "type": "Create",
        "actor": me,
        "to": [t.payee_uri],
        "cc": [settlement.house_uri],
        "object": _transfer_doc(t),
    }
    await send_to_nodes(ctx, session, activity, [t.payee_uri, settlement.house_uri])
    return t


def _transfer_doc(t: ClearingTransfer) -> dict[str, Any]:
    return {
        "id": t.uri,
        "type": "nycmg:Transfer",
        "settlement": t.settlement_uri,
        "payer": t.payer_uri,
        "payee": t.payee_uri,
        "amount": t.amount_minor,
        "currency": t.currency,
        "reference": t.reference,
    }


async def confirm(ctx: NodeContext, session: AsyncSession, uri: str) -> ClearingTransfer:
    """The payee confirms the money arrived; the house settles the period when all have."""
    t = await _transfer(session, uri)
    me = node_uri(ctx)
    if t.payee_uri != me:
        raise BadPeriod("only the receiving node confirms a transfer")
    if t.state == "confirmed":
        return t
    settlement = await _settlement_of(session, t)
    if settlement is None or settlement.state not in ("accepted", "settled"):
        raise BadPeriod("the settlement has not been accepted by every member yet")
    t.state, t.confirmed_at = "confirmed", utcnow()
    money = Money(t.amount_minor, t.currency)
    await ledger.post(
        session,
        kind="clearing_receive",
        memo=f"transfer {t.uri} from {t.payer_uri} ({t.reference or 'no reference'})",
        ref=f"clearing:recv:{canonical.doc_hash({'t': t.uri})[7:71]}",
        lines=[
            ledger.Line("cash", debit=money),
            ledger.Line(clearing_account(settlement.house_uri), credit=money),
        ],
        period=t.period,
    )
    activity = {
        "type": "Accept",
        "actor": me,
        "to": [t.payer_uri],
        "cc": [settlement.house_uri],
        "object": _transfer_doc(t),
    }
    await send_to_nodes(ctx, session, activity, [t.payer_uri, settlement.house_uri])
    if settlement.role == "house":
        await _maybe_settled(ctx, session, settlement)
    return t


async def _inbound_transfer(
    ctx: NodeContext, session: AsyncSession, inb: Inbound, state: str
) -> str | None:
    obj = inb.activity.get("object")
    uri = id_of(obj)
    row = await session.scalar(select(ClearingTransfer).where(ClearingTransfer.uri == uri))
    if row is None:
        return await not_yet(session, inb.activity, f"no transfer {uri} here (yet)", 600)
    who = row.payer_uri if state == "paid" else row.payee_uri
    if inb.actor.uri != who:
        return f"only the {'payer' if state == 'paid' else 'payee'} may say a transfer is {state}"
    if state == "paid" and row.state == "due":
        ref = obj.get("reference") if isinstance(obj, dict) else None
        row.state, row.paid_at = "paid", utcnow()
        row.reference = ref[:255] if isinstance(ref, str) else None
    elif state == "confirmed" and row.state != "confirmed":
        row.state, row.confirmed_at = "confirmed", utcnow()
        if row.paid_at is None:
            row.paid_at = row.confirmed_at
    settlement = await _settlement_of(session, row)
    if settlement is not None and settlement.role == "house":
        await _maybe_settled(ctx, session, settlement)
    return None


@HANDLERS.on("Create", "Settlement")
async def on_settlement(inb: Inbound) -> str | None:
    return await receive_settlement(inb.ctx, inb.session, inb)


@HANDLERS.on("Accept", "Settlement")
@HANDLERS.on("Reject", "Settlement")
async def on_settlement_answer(inb: Inbound) -> str | None:
    return await receive_settlement_answer(inb.ctx, inb.session, inb)


@HANDLERS.on("Update", "Settlement")
async def on_settlement_update(inb: Inbound) -> str | None:
    return await receive_settlement_update(inb.ctx, inb.session, inb)


@HANDLERS.on("Create", "Transfer")
async def on_transfer_paid(inb: Inbound) -> str | None:
    return await _inbound_transfer(inb.ctx, inb.session, inb, "paid")


@HANDLERS.on("Accept", "Transfer")
async def on_transfer_confirmed(inb: Inbound) -> str | None:
    return await _inbound_transfer(inb.ctx, inb.session, inb, "confirmed")


def setup(app: web.Application) -> None:
    """Clearing's part of royalties' setup: key on the actor, jobs, subscribers."""
    ctx = app[CTX]
    try:
        ctx.extras["assertion_method"] = [canonical.multikey_of(ctx.settings, node_uri(ctx))]
    except FileNotFoundError:  # no keys yet (`nycmg check` reports it); nothing to publish
        pass
    ctx.jobs.register("clearing.send", lambda job: statements.send_job(ctx, job))
    statements.subscribe(ctx)
    from . import billing

    billing.setup(app)
