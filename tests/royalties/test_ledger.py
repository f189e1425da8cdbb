"""The ledger: balanced per currency in Python and in the database, append-only, idempotent."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, insert, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from royalties.errors import LedgerConflict, Unbalanced
from royalties.ledger import Line, balance, balances, entries, post, reverse, trial_balance
from royalties.models import LedgerEntry, LedgerTxn
from royalties.money import Money

USD = "USD"
ARTIST = "artist:https://brooklyn.example/actors/jay"


def usd(n: int) -> Money:
    return Money(n, USD)


async def test_a_payment_and_a_close_leave_every_account_where_you_expect(node):
    async with node.ctx.db.transaction() as s:
        await post(
            s,
            kind="payment",
            memo="fan pays",
            ref="pay-1",
            lines=[Line("cash", debit=usd(999)), Line("subscriptions", credit=usd(999))],
        )
        await post(
            s,
            kind="close",
            memo="2026-10",
            ref="close-2026-10",
            period="2026-10",
            lines=[
                Line("subscriptions", debit=usd(999)),
                Line("node_share", credit=usd(149)),
                Line("foundation", credit=usd(49)),
                Line(ARTIST, credit=usd(801)),
            ],
        )
    async with node.ctx.db.read_session() as s:
        assert await balance(s, "cash", USD) == usd(999)
        assert await balance(s, "subscriptions", USD) == usd(0)
        assert await balance(s, ARTIST, USD) == usd(801)
        assert await balances(s, "artist:", USD) == {ARTIST: usd(801)}
        assert await trial_balance(s) == {USD: 0}
        lines = await entries(s, "close-2026-10")
        assert (ARTIST, usd(801), "credit") in lines


async def test_unbalanced_lines_are_refused_before_anything_is_written(node):
    async with node.ctx.db.transaction() as s:
        with pytest.raises(Unbalanced):
            await post(
                s,
                kind="x",
                memo="",
                ref="bad",
                lines=[Line("cash", debit=usd(100)), Line("subscriptions", credit=usd(99))],
            )
        with pytest.raises(Unbalanced):  # balanced in sum, not per currency
            await post(
                s,
                kind="x",
                memo="",
                ref="bad2",
                lines=[
                    Line("cash", debit=usd(100)),
                    Line("subscriptions", credit=Money(100, "EUR")),
                ],
            )


async def test_the_database_itself_refuses_to_seal_an_unbalanced_transaction(node):
    with pytest.raises((IntegrityError, DBAPIError)):
        async with node.ctx.db.transaction() as s:
            txn = LedgerTxn(ref="sneaky", kind="x", memo="", sealed=False)
            s.add(txn)
            await s.flush()
            await s.execute(
                insert(LedgerEntry),
                [{"txn_id": txn.id, "account": "cash", "currency": USD, "amount_minor": 5}],
            )
            await s.execute(update(LedgerTxn).where(LedgerTxn.id == txn.id).values(sealed=True))


async def test_entries_and_sealed_transactions_are_append_only(node):
    async with node.ctx.db.transaction() as s:
        txn = await post(
            s,
            kind="payment",
            memo="",
            ref="pay-2",
            lines=[Line("cash", debit=usd(500)), Line("subscriptions", credit=usd(500))],
        )
    for stmt in (
        update(LedgerEntry).values(amount_minor=1),
        delete(LedgerEntry),
        update(LedgerTxn).values(memo="edited"),
        delete(LedgerTxn),
        insert(LedgerEntry).values(txn_id=txn.id, account="cash", currency=USD, amount_minor=0),
    ):
        with pytest.raises((IntegrityError, DBAPIError)):
            async with node.ctx.db.transaction() as s:
                await s.execute(stmt)
    async with node.ctx.db.read_session() as s:
        assert await balance(s, "cash", USD) == usd(500)


async def test_posting_the_same_ref_twice_books_once_and_other_lines_conflict(node):
    lines = [Line("cash", debit=usd(300)), Line("subscriptions", credit=usd(300))]
    async with node.ctx.db.transaction() as s:
        first = await post(s, kind="payment", memo="", ref="pay-3", lines=lines)
    async with node.ctx.db.transaction() as s:
        again = await post(s, kind="payment", memo="", ref="pay-3", lines=lines)
        assert again.id == first.id
        with pytest.raises(LedgerConflict):
            await post(
                s,
                kind="payment",
                memo="",
                ref="pay-3",
                lines=[Line("cash", debit=usd(1)), Line("subscriptions", credit=usd(1))],
            )
    async with node.ctx.db.read_session() as s:
        assert await balance(s, "cash", USD) == usd(300)
        n = (await s.execute(text("SELECT COUNT(*) FROM ledger_transactions"))).scalar_one()
        assert n == 1


async def test_a_mistake_is_corrected_by_a_reversing_transaction(node):
    async with node.ctx.db.transaction() as s:
        await post(
            s,
            kind="grant",
            memo="wrong artist",
            ref="g-1",
            lines=[Line("foundation", debit=usd(700)), Line(ARTIST, credit=usd(700))],
        )
        rev = await reverse(s, "g-1", new_ref="g-1-reversal", memo="wrong artist")
        assert rev.reverses_id is not None
    async with node.ctx.db.read_session() as s:
        assert await balance(s, ARTIST, USD) == usd(0)
        assert await balance(s, "foundation", USD) == usd(0)
        n = (await s.execute(text("SELECT COUNT(*) FROM ledger_entries"))).scalar_one()
        assert n == 4


def test_lines_are_checked_when_written():
    with pytest.raises(ValueError):
        Line("nonsense", debit=usd(1))
    with pytest.raises(ValueError):
        Line("cash", debit=usd(1), credit=usd(1))
    with pytest.raises(ValueError):
        Line("cash", debit=usd(-1))
    with pytest.raises(TypeError):
        Line("cash", debit=100)  # type: ignore[arg-type]
