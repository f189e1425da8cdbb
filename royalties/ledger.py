"""The double-entry ledger: append-only, balanced per currency in Python and in the database.

Every movement of money is one `post()`: a transaction with a unique `ref`
(posting the same ref again returns the first one, so retried jobs and
webhooks never double-book) and lines that debit or credit accounts. Lines
are stored as signed entries (debit positive, credit negative); the
transaction is then sealed, and the database refuses the seal unless the
entries sum to zero per currency (triggers in migration 0006). Mistakes are
corrected by `reverse()`, never by editing.

Account codes (INTERFACES.md): "cash", "subscriptions", "node_share",
"foundation", "payouts_pending", "artist:{actor_uri}",
"node_payable:{node_actor_uri}", "node_receivable:{node_actor_uri}",
"venue_fees:{venue_uuid}". `balance()` answers in the account's normal
sign: what the node holds for asset accounts (cash, receivables, venue fees
due), what it owes for the others (an artist's balance is positive when the
node owes the artist).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from .errors import LedgerConflict, Unbalanced
from .models import LedgerEntry, LedgerTxn
from .money import Money

# Accounts whose balance is normally a debit (what the node has or is owed).
DEBIT_NORMAL = {"cash", "node_receivable", "venue_fees"}
# Plain accounts and the prefixes of parameterised ones ("artist:" + URI).
PLAIN_ACCOUNTS = {"cash", "subscriptions", "node_share", "foundation", "payouts_pending"}
PREFIXED_ACCOUNTS = {"artist", "node_payable", "node_receivable", "venue_fees"}
_MAX_ACCOUNT = 600


def register_account(name: str, *, prefixed: bool, debit_normal: bool = False) -> None:
    """Let another part (clearing, payouts) add an account kind of its own."""
    (PREFIXED_ACCOUNTS if prefixed else PLAIN_ACCOUNTS).add(name)
    if debit_normal:
        DEBIT_NORMAL.add(name)


def account_kind(account: str) -> str:
    """The kind of an account code ("artist" for "artist:https://..."), or ValueError."""
    if not isinstance(account, str) or not account or len(account) > _MAX_ACCOUNT:
        raise ValueError(f"bad account code: {account!r}")
    if account in PLAIN_ACCOUNTS:
        return account
    kind, sep, rest = account.partition(":")
    if sep and kind in PREFIXED_ACCOUNTS and rest and not re.search(r"\s", rest):
        return kind
    raise ValueError(f"unknown account: {account!r}")


def artist_account(actor_uri: str) -> str:
    return f"artist:{actor_uri}"


def node_payable_account(node_uri: str) -> str:
    return f"node_payable:{node_uri}"


def node_receivable_account(node_uri: str) -> str:
    return f"node_receivable:{node_uri}"


def venue_fees_account(venue_uuid: str) -> str:
    return f"venue_fees:{venue_uuid}"


@dataclass(frozen=True)
class Line:
    """One side of a posting: exactly one of `debit` or `credit`, a non-negative Money."""

    account: str
    debit: Money | None = None
    credit: Money | None = None

    def __post_init__(self) -> None:
        account_kind(self.account)
        if (self.debit is None) == (self.credit is None):
            raise ValueError("a line has exactly one of debit or credit")
        m = self.debit if self.debit is not None else self.credit
        if not isinstance(m, Money):
            raise TypeError("ledger lines take Money")
        if m.amount_minor < 0:
            raise ValueError("a line's amount is never negative; swap debit and credit")

    @property
    def money(self) -> Money:
        return self.debit if self.debit is not None else self.credit  # type: ignore[return-value]

    @property
    def signed(self) -> int:
        """Debit positive, credit negative: the stored form."""
        return self.money.amount_minor if self.debit is not None else -self.money.amount_minor


def check_balanced(lines: list[Line]) -> list[str]:
    """The problems with these lines as one transaction (empty when balanced)."""
    problems: list[str] = []
    if not lines:
        problems.append("a transaction needs lines")
    totals: dict[str, int] = defaultdict(int)
    for ln in lines:
        totals[ln.money.currency] += ln.signed
    for cur, total in sorted(totals.items()):
        if total:
            problems.append(f"{cur} debits and credits differ by {total}")
    return problems


def _merged(lines: list[Line]) -> list[tuple[str, str, int]]:
    """(account, currency, signed) with zero lines dropped, in a stable order."""
    return [(ln.account, ln.money.currency, ln.signed) for ln in lines if ln.signed]


async def post(
    session: AsyncSession,
    *,
    kind: str,
    memo: str,
    ref: str,
    lines: list[Line],
    period: str | None = None,
    reverses_id: int | None = None,
) -> LedgerTxn:
    """Write one balanced transaction (idempotent on `ref`) in the caller's transaction.

    Raises `Unbalanced` before touching the database when the lines do not
    balance per currency; the database would refuse the seal anyway. Posting
    an existing `ref` with the same lines returns the existing transaction;
    with different lines it raises `LedgerConflict`.
    """
    problems = check_balanced(lines)
    if problems:
        raise Unbalanced("; ".join(problems), ref=ref)
    if not ref or len(ref) > 200:
        raise ValueError("a ledger ref is 1..200 characters")
    rows = _merged(lines)
    existing = (
        await session.execute(select(LedgerTxn).where(LedgerTxn.ref == ref))
    ).scalar_one_or_none()
    if existing is not None:
        have = await _entries_of(session, existing.id)
        if sorted(have) != sorted(rows):
            raise LedgerConflict(f"ref {ref!r} was posted with other lines", ref=ref)
        return existing
    txn = LedgerTxn(
        ref=ref, kind=kind, memo=memo, period=period, reverses_id=reverses_id, sealed=False
    )
    session.add(txn)
    await session.flush()
    if rows:
        await session.execute(
            insert(LedgerEntry),
            [
                {"txn_id": txn.id, "account": a, "currency": c, "amount_minor": amt}
                for a, c, amt in rows
            ],
        )
    # The seal is where the database checks the balance (trigger, migration 0006).
    await session.execute(update(LedgerTxn).where(LedgerTxn.id == txn.id).values(sealed=True))
    txn.sealed = True
    return txn


async def _entries_of(session: AsyncSession, txn_id: int) -> list[tuple[str, str, int]]:
    res = await session.execute(
        select(LedgerEntry.account, LedgerEntry.currency, LedgerEntry.amount_minor).where(
            LedgerEntry.txn_id == txn_id
        )
    )
    return [(a, c, int(m)) for a, c, m in res.all()]


async def entries(session: AsyncSession, ref: str) -> list[tuple[str, Money, str]]:
    """The lines of the transaction `ref` as (account, Money, "debit"|"credit")."""
    txn = (
        await session.execute(select(LedgerTxn).where(LedgerTxn.ref == ref))
    ).scalar_one_or_none()
    if txn is None:
        return []
    return [
        (a, Money(abs(m), c), "debit" if m > 0 else "credit")
        for a, c, m in await _entries_of(session, txn.id)
    ]


async def reverse(session: AsyncSession, ref: str, *, new_ref: str, memo: str) -> LedgerTxn:
    """Correct a transaction by posting its mirror image (the original stays, as it must)."""
    txn = (
        await session.execute(select(LedgerTxn).where(LedgerTxn.ref == ref))
    ).scalar_one_or_none()
    if txn is None:
        raise KeyError(ref)
    lines = [
        Line(a, credit=Money(m, c)) if m > 0 else Line(a, debit=Money(-m, c))
        for a, c, m in await _entries_of(session, txn.id)
    ]
    return await post(
        session,
        kind="reversal",
        memo=memo,
        ref=new_ref,
        lines=lines,
        period=txn.period,
        reverses_id=txn.id,
    )


def _normal_sign(account: str) -> int:
    return 1 if account_kind(account) in DEBIT_NORMAL else -1


async def balance(session: AsyncSession, account: str, currency: str) -> Money:
    """The account's balance in its normal sign (see the module docstring), sealed entries only."""
    cur = Money.zero(currency).currency
    total = (
        await session.execute(
            select(func.coalesce(func.sum(LedgerEntry.amount_minor), 0))
            .join(LedgerTxn, LedgerTxn.id == LedgerEntry.txn_id)
            .where(
                LedgerEntry.account == account,
                LedgerEntry.currency == cur,
                LedgerTxn.sealed.is_(True),
            )
        )
    ).scalar_one()
    return Money(int(total) * _normal_sign(account), cur)


async def balances(session: AsyncSession, prefix: str, currency: str) -> dict[str, Money]:
    """Balances of every account starting with `prefix` ("artist:" for all artists), normal sign."""
    cur = Money.zero(currency).currency
    res = await session.execute(
        select(LedgerEntry.account, func.sum(LedgerEntry.amount_minor))
        .join(LedgerTxn, LedgerTxn.id == LedgerEntry.txn_id)
        .where(
            LedgerEntry.account.startswith(prefix, autoescape=True),
            LedgerEntry.currency == cur,
            LedgerTxn.sealed.is_(True),
        )
        .group_by(LedgerEntry.account)
        .order_by(LedgerEntry.account)
    )
    return {a: Money(int(t) * _normal_sign(a), cur) for a, t in res.all()}


async def trial_balance(session: AsyncSession) -> dict[str, int]:
    """Sum of every sealed entry per currency: zero for each, always (a health check)."""
    res = await session.execute(
        select(LedgerEntry.currency, func.sum(LedgerEntry.amount_minor))
        .join(LedgerTxn, LedgerTxn.id == LedgerEntry.txn_id)
        .where(LedgerTxn.sealed.is_(True))
        .group_by(LedgerEntry.currency)
    )
    return {c: int(t) for c, t in res.all()}
