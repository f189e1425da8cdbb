"""Statements and settlements that are not what they claim are refused at the
inbox's handler and change nothing: a signature by another key, a statement
in someone else's name, a settlement from a node that is not the house, an
answer to a statement that does not exist. Two real nodes, real deliveries."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select

from federation.models import InboxItem
from royalties import canonical, statements
from royalties.clearing_models import ClearingSettlement, ClearingStatement
from tests.royalties.test_protocol import (  # noqa: F401 - the autouse fixture too
    cheap_password_hashes,
    eventually,
    rows,
)


async def test_forged_clearing_documents_are_refused_and_change_nothing(network):
    queens, bronx = await network(2, **{"clearing.listen_grace_seconds": 1.0})
    await bronx.user("kim", "artist")
    q, b = queens.ctx.urls.node_actor(), bronx.ctx.urls.node_actor()
    kim = bronx.ctx.urls.actor("kim")

    def statement(n: int, **changes):
        doc = {
            "id": f"{queens.base_url}/clearing/statements/forged-{n}",
            "type": "nycmg:Statement",
            "period": "2026-01",
            "issuer": q,
            "recipient": b,
            "currency": "USD",
            "version": 1,
            "supersedes": None,
            "previous": None,
            "lines": [{"artist": kim, "plays": 1, "listeners": 1, "amount": 100}],
            "total": 100,
        }
        return {**doc, **changes}

    stranger = ed25519.Ed25519PrivateKey.generate()
    sent = {
        # Signed with a key that is not Queens' published one.
        "another key": canonical.sign(statement(1), stranger, q),
        # Queens' own key, but the statement says it is from the Bronx.
        "another issuer": statements.sign(queens.ctx, statement(2, issuer=b)),
        # Queens' own key, then one number changed after signing.
        "changed after signing": {
            **statements.sign(queens.ctx, statement(3)),
            "total": 1_000_000,
        },
    }
    async with queens.ctx.db.transaction() as s:
        for doc in sent.values():
            activity = {"type": "Create", "actor": q, "to": [b], "object": doc}
            await statements.send_to_nodes(queens.ctx, s, activity, [b])
        # A settlement, though Queens is not the Bronx's clearing house,
        settlement = statements.sign(
            queens.ctx,
            {
                "id": f"{queens.base_url}/clearing/settlements/forged",
                "type": "nycmg:Settlement",
                "period": "2026-01",
                "house": q,
                "statements": [],
                "transfers": [],
            },
        )
        await statements.send_to_nodes(
            queens.ctx, s, {"type": "Create", "actor": q, "to": [b], "object": settlement}, [b]
        )
        # and an answer to a statement the Bronx never issued.
        await statements.send_to_nodes(
            queens.ctx,
            s,
            {
                "type": "Accept",
                "actor": q,
                "to": [b],
                "object": {
                    "id": f"{bronx.base_url}/clearing/statements/none",
                    "type": "nycmg:Statement",
                },
                "result": {},
            },
            [b],
        )

    async def all_handled():
        async with bronx.ctx.db.read_session() as s:
            items = (await s.scalars(select(InboxItem))).all()
        done = [i for i in items if i.state != "received"]
        return done if len(done) == 5 else None

    items = await eventually(all_handled)
    errors = sorted(i.error or "" for i in items)
    assert all(i.state == "ignored" for i in items), [(i.type, i.state, i.error) for i in items]
    assert sum("does not match the document" in e for e in errors) == 2  # another key; changed
    assert sum("not the node that sent it" in e or "not signed by" in e for e in errors) == 1
    assert sum("not our clearing house" in e for e in errors) == 1
    assert sum("no statement" in e for e in errors) == 1
    assert await rows(bronx, ClearingStatement) == []
    assert await rows(bronx, ClearingSettlement) == []
