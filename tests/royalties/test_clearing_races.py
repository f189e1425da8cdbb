"""The clearing house hears from several members at the same moment: every
answer and every confirmation counts. (On PostgreSQL two inbox deliveries
run in separate transactions at once; SQLite has one writer and serializes
them, so there these stories pass either way.)"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from sqlalchemy import select

from royalties import clearing
from royalties.clearing_models import ClearingSettlement, ClearingTransfer
from royalties.statements import node_uri

QUEENS, BRONX = "https://queens.example/actor", "https://bronx.example/actor"


async def house_settlement(node, *, state: str = "proposed", transfers: int = 0) -> str:
    """A settlement this node (the house, not a member itself) sent to Queens and the Bronx."""
    uri = f"{node.ctx.settings.base_url}/settlements/race"
    docs = [
        {
            "id": f"{uri}/transfers/{i}",
            "payer": node_uri(node.ctx),
            "payee": payee,
            "amount": 100 * i,
            "currency": "USD",
        }
        for i, payee in enumerate([QUEENS, BRONX][:transfers], 1)
    ]
    async with node.ctx.db.transaction() as s:
        row = ClearingSettlement(
            uri=uri,
            role="house",
            period="2026-10",
            house_uri=node_uri(node.ctx),
            hash="sha256:race",
            document={"members": [QUEENS, BRONX], "transfers": docs, "statements": []},
            state=state,
            answers={},
            problems=[],
        )
        s.add(row)
        await s.flush()
        for t in docs:
            transfer = clearing._transfer_row(row, t)
            transfer.state = "paid"
            s.add(transfer)
    return uri


async def at_once(node, handle, inbounds) -> None:
    """Each inbound in its own transaction, all of them open at the same time."""

    async def one(inb):
        async with node.ctx.db.transaction() as s:
            assert await handle(node.ctx, s, inb) is None
            await asyncio.sleep(0.3)  # still open while the others run

    await asyncio.gather(*(one(inb) for inb in inbounds))


async def settlement(node, uri: str) -> ClearingSettlement:
    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(ClearingSettlement).where(ClearingSettlement.uri == uri))


async def test_members_who_accept_at_the_same_moment_are_all_counted(node):
    uri = await house_settlement(node, transfers=1)
    answers = [
        SimpleNamespace(
            actor=SimpleNamespace(uri=member),
            activity={"type": "Accept", "object": uri, "result": {"settlementHash": "sha256:race"}},
        )
        for member in (QUEENS, BRONX)
    ]
    await at_once(node, clearing.receive_settlement_answer, answers)

    row = await settlement(node, uri)
    assert set(row.answers) == {QUEENS, BRONX}
    assert row.state == "accepted"  # and told the members: their transfer is due


async def test_transfers_confirmed_at_the_same_moment_settle_the_month(node):
    uri = await house_settlement(node, state="accepted", transfers=2)
    async with node.ctx.db.read_session() as s:
        transfers = (await s.scalars(select(ClearingTransfer).order_by(ClearingTransfer.id))).all()
    confirmations = [
        SimpleNamespace(actor=SimpleNamespace(uri=t.payee_uri), activity={"object": {"id": t.uri}})
        for t in transfers
    ]

    async def confirmed(ctx, session, inb):
        return await clearing._inbound_transfer(ctx, session, inb, "confirmed")

    await at_once(node, confirmed, confirmations)

    row = await settlement(node, uri)
    assert row.state == "settled" and row.settled_at is not None
