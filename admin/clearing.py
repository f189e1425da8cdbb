"""Clearing: statements in and out, disputes, the settlement, transfers, payouts, grants.

Curators see everything and approve foundation grants (the people who look
after what the node shows also look after whom its foundation supports);
admins move money: run the clearing (on the house), reissue a disputed
statement, pay and confirm transfers, book payouts and mark them paid, and
propose grants. Every action writes its audit entry in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from node.validation import F, Schema
from royalties import clearing, payouts, statements
from royalties.clearing_models import ClearingSettlement, ClearingStatement, ClearingTransfer
from royalties.clearing_models import Payout as PayoutRow
from royalties.ledger import balance
from royalties.money import Money

from .audit import record, register_audit_action
from .console import CONSOLE, Done, Section, View

CONSOLE.section(Section("clearing", "Clearing", "admin.clearing", role="curator", order=62))

for _name, _label in (
    ("clearing.run", "Ran the clearing"),
    ("clearing.reissue", "Reissued a statement"),
    ("clearing.pay", "Paid a settlement transfer"),
    ("clearing.confirm", "Confirmed a settlement transfer"),
    ("payouts.run", "Booked payouts"),
    ("payouts.paid", "Marked a payout paid"),
    ("grant.propose", "Proposed a foundation grant"),
    ("grant.decide", "Decided a foundation grant"),
):
    register_audit_action(_name, _label)

PeriodIn = Schema("ConsoleClearingRun", F("period", required=True, pattern=r"^\d{4}-\d{2}$"))
StatementIn = Schema("ConsoleReissue", F("statement", required=True, max_len=512))
TransferIn = Schema(
    "ConsoleTransfer", F("transfer", required=True, max_len=600), F("reference", max_len=255)
)
CurrencyIn = Schema("ConsolePayoutsRun", F("currency", kind="currency"))
PaidIn = Schema(
    "ConsolePayoutPaid",
    F("payout", kind="int", required=True, min=1),
    F("reference", required=True, max_len=255),
)
GrantIn = Schema(
    "ConsoleGrant",
    F("artist", required=True, max_len=512, description="the artist's actor URI"),
    F("amount", kind="int", required=True, min=1, max=10**12),
    F("currency", kind="currency"),
    F("reason", max_len=2000),
)
DecideIn = Schema(
    "ConsoleGrantDecision",
    F("grant", kind="int", required=True, min=1),
    F("approve", kind="bool", required=True),
)


def _statement(r: ClearingStatement) -> dict[str, Any]:
    return {
        "uri": r.uri,
        "role": r.role,
        "period": r.period,
        "issuer": r.issuer_uri,
        "recipient": r.recipient_uri,
        "version": r.version,
        "state": r.state,
        "total": {"amount": r.total_minor, "currency": r.currency},
        "lines": r.document.get("lines", []),
        "disputed": r.disputed,
        "reasons": (r.answer or {}).get("reasons", []),
        "carried_into": r.carried_into,
        "hash": r.hash,
    }


def _settlement(r: ClearingSettlement) -> dict[str, Any]:
    return {
        "uri": r.uri,
        "role": r.role,
        "period": r.period,
        "house": r.house_uri,
        "state": r.state,
        "members": r.document.get("members", []),
        "positions": r.document.get("positions", {}),
        "carried": r.document.get("carried", []),
        "answers": r.answers,
        "problems": r.problems,
    }


def _transfer(t: ClearingTransfer) -> dict[str, Any]:
    return {
        "uri": t.uri,
        "period": t.period,
        "payer": t.payer_uri,
        "payee": t.payee_uri,
        "amount": {"amount": t.amount_minor, "currency": t.currency},
        "state": t.state,
        "reference": t.reference,
    }


@CONSOLE.page(
    "/clearing", name="admin.clearing", template="clearing.html", role="curator", section="clearing"
)
async def clearing_page(view: View) -> dict[str, Any]:
    period = view.query.get("period") or None
    me = view.ctx.urls.node_actor()
    currency = view.ctx.settings.royalties.currency
    async with view.ctx.db.read_session() as s:

        async def rows(model, *where):
            q = select(model).order_by(model.id.desc()).limit(200)
            if period is not None and hasattr(model, "period"):
                q = q.where(model.period == period)
            return (await s.scalars(q.where(*where))).all()

        stmts = await rows(ClearingStatement)
        settlements = await rows(ClearingSettlement)
        transfers = await rows(ClearingTransfer)
        pays = (await s.scalars(select(PayoutRow).order_by(PayoutRow.id.desc()).limit(200))).all()
        pool = await balance(s, "foundation", currency)
        grants = await payouts.grants(s)
    return {
        "period": period,
        "node": me,
        "house": statements.house_uri(view.ctx) or None,
        "is_house": statements.is_house(view.ctx),
        "provider": view.ctx.settings.royalties.provider,
        "statements_out": [_statement(r) for r in stmts if r.role == "out"],
        "statements_in": [_statement(r) for r in stmts if r.role != "out"],
        "disputes": [_statement(r) for r in stmts if r.state == "rejected"],
        "settlements": [_settlement(r) for r in settlements],
        "transfers": [_transfer(t) for t in transfers],
        "payouts": [
            {
                "id": p.id,
                "artist": p.artist_uri,
                "amount": {"amount": p.amount_minor, "currency": p.currency},
                "state": p.state,
                "provider": p.provider,
                "reference": p.reference,
                "error": p.error,
            }
            for p in pays
        ],
        "threshold": view.ctx.settings.payouts.threshold_minor,
        "foundation": {"amount": pool.amount_minor, "currency": pool.currency},
        "grants": [
            {
                "id": g.id,
                "artist": g.artist_uri,
                "amount": {"amount": g.amount_minor, "currency": g.currency},
                "reason": g.reason,
                "state": g.state,
                "proposed_by": g.proposed_by,
                "approved_by": g.approved_by,
            }
            for g in grants
        ],
    }


def _back(view: View) -> str:
    return view.url("admin.clearing")


@CONSOLE.action("/clearing/run", name="admin.clearing.run", back="admin.clearing", body=PeriodIn)
async def run_clearing(view: View) -> Done:
    row = await clearing.run(view.ctx, view.body["period"])
    async with view.ctx.db.transaction() as s:
        await record(s, view, "clearing.run", row.uri, {"after": {"period": row.period}})
    data = {"settlement": row.uri, "state": row.state, "transfers": row.document["transfers"]}
    return Done(data, _back(view), f"Settlement for {row.period} sent ({row.state}).")


@CONSOLE.action(
    "/clearing/reissue", name="admin.clearing.reissue", back="admin.clearing", body=StatementIn
)
async def reissue(view: View) -> Done:
    async with view.ctx.db.transaction() as s:
        row = await statements.reissue(view.ctx, s, view.body["statement"])
        await record(
            s, view, "clearing.reissue", view.body["statement"], {"after": {"uri": row.uri}}
        )
        data = {"statement": row.uri, "supersedes": view.body["statement"]}
    return Done(data, _back(view), "Reissued; its Listens were sent again.")


@CONSOLE.action(
    "/clearing/transfers/pay", name="admin.clearing.pay", back="admin.clearing", body=TransferIn
)
async def pay(view: View) -> Done:
    t = await payouts.pay_transfer(view.ctx, view.body["transfer"], view.body.get("reference"))
    async with view.ctx.db.transaction() as s:
        await record(s, view, "clearing.pay", t.uri, {"after": {"reference": t.reference}})
    return Done(_transfer(t), _back(view), f"Transfer marked paid ({t.reference}).")


@CONSOLE.action(
    "/clearing/transfers/confirm",
    name="admin.clearing.confirm",
    back="admin.clearing",
    body=TransferIn,
)
async def confirm(view: View) -> Done:
    async with view.ctx.db.transaction() as s:
        t = await clearing.confirm(view.ctx, s, view.body["transfer"])
        await record(s, view, "clearing.confirm", t.uri, {"after": {"state": t.state}})
        data = _transfer(t)
    return Done(data, _back(view), "Transfer confirmed.")


@CONSOLE.action(
    "/clearing/payouts/run", name="admin.payouts.run", back="admin.clearing", body=CurrencyIn
)
async def payouts_run(view: View) -> Done:
    currency = view.body.get("currency") or view.ctx.settings.royalties.currency
    async with view.ctx.db.transaction() as s:
        made = await payouts.create_payouts(view.ctx, s, currency)
        data = {
            "payouts": [
                {"id": p.id, "artist": p.artist_uri, "amount": p.amount_minor} for p in made
            ]
        }
        await record(s, view, "payouts.run", currency, {"after": {"count": len(made)}})
    return Done(data, _back(view), f"{len(made)} payout(s) booked.")


@CONSOLE.action(
    "/clearing/payouts/paid", name="admin.payouts.paid", back="admin.clearing", body=PaidIn
)
async def payout_paid(view: View) -> Done:
    async with view.ctx.db.transaction() as s:
        p = await payouts.mark_paid(
            s, view.body["payout"], reference=view.body["reference"], by=view.account.username
        )
        await record(s, view, "payouts.paid", str(p.id), {"after": {"reference": p.reference}})
        data = {"payout": p.id, "state": p.state, "reference": p.reference}
    return Done(data, _back(view), f"Payout {data['payout']} marked paid.")


@CONSOLE.action(
    "/clearing/grants", name="admin.grants.propose", back="admin.clearing", body=GrantIn
)
async def propose(view: View) -> Done:
    b = view.body
    money = Money(b["amount"], b.get("currency") or view.ctx.settings.royalties.currency)
    async with view.ctx.db.transaction() as s:
        g = await payouts.propose_grant(
            s,
            artist_uri=b["artist"],
            amount=money,
            reason=b.get("reason", ""),
            by=view.account.username,
        )
        await record(s, view, "grant.propose", b["artist"], {"after": {"amount": b["amount"]}})
        data = {"grant": g.id, "state": g.state}
    return Done(data, _back(view), "Grant proposed; a curator approves it.", status=201)


@CONSOLE.action(
    "/clearing/grants/decide",
    name="admin.grants.decide",
    back="admin.clearing",
    role="curator",
    body=DecideIn,
)
async def decide(view: View) -> Done:
    async with view.ctx.db.transaction() as s:
        g = await payouts.decide_grant(
            s,
            view.body["grant"],
            approve=view.body["approve"],
            by=view.account.username,
            role=view.account.role,
        )
        await record(s, view, "grant.decide", str(g.id), {"after": {"state": g.state}})
        data = {"grant": g.id, "state": g.state}
    return Done(data, _back(view), f"Grant {data['grant']} {data['state']}.")
