"""The clearing protocol across three real nodes on loopback (DESIGN.md 7).

Brooklyn is the clearing house; Queens and the Bronx are members. Fans on each
node subscribe and play artists on the others; each node closes the month and
sends signed statements; one statement is rejected (Brooklyn lost a Listen)
and reissued; the house nets and sends a settlement every member checks; the
payers pay, the payees confirm, the month is settled, and every fan's money
has landed with the artists that fan played.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import delete, select

from federation.models import InboxItem
from node.models import Account, Play
from royalties import canonical, clearing, ledger, payouts, statements
from royalties.clearing_models import ClearingSettlement, ClearingStatement, ClearingTransfer
from royalties.close import close_period
from royalties.money import Money, allocate
from royalties.subscriptions import grant

FEE = 1000  # each fan pays 10.00 USD for the month
POOL = (
    FEE - FEE * 1000 // 10_000 - FEE * 500 // 10_000
)  # less the node's and the foundation's shares


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch):
    from argon2 import PasswordHasher

    import node.auth

    monkeypatch.setattr(
        node.auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


async def eventually(check, timeout: float = 40.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not met in {timeout} s: {check.__name__}")
        await asyncio.sleep(0.1)


async def api(node, method: str, path: str, who: str | None = None, **kw) -> tuple[int, Any]:
    headers = node.auth(who) if who else {}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, node.base_url + path, headers=headers, **kw) as r:
            return r.status, await r.json(content_type=None)


def month_start(year: int, month: int) -> datetime:
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=UTC)


def closable_period() -> tuple[str, datetime, datetime | None]:
    """(period, plays before, `now` for its close): last month while its last
    evening is within the 30 days plays may be reported in; near the end of a
    month, this month, closed as if it had ended (close_period's `now`)."""
    now = datetime.now(UTC)
    this = month_start(now.year, now.month)
    if now - this <= timedelta(days=27):
        last = this - timedelta(days=1)
        return f"{last.year:04d}-{last.month:02d}", this, None
    return f"{now.year:04d}-{now.month:02d}", now, month_start(now.year, now.month + 1)


async def rows(node, model, *where):
    async with node.ctx.db.read_session() as s:
        return (await s.scalars(select(model).where(*where).order_by(model.id))).all()


async def test_three_nodes_close_a_month_and_settle_it_to_the_cent(network):
    period, period_end, close_now = closable_period()
    (brooklyn,) = await network(1, **{"clearing.listen_grace_seconds": 3.0})
    house = brooklyn.ctx.urls.node_actor()
    brooklyn.settings.values["royalties.clearing_house"] = house  # the house is itself
    queens, bronx = await network(
        2, **{"royalties.clearing_house": house, "clearing.listen_grace_seconds": 3.0}
    )
    nodes = {"brooklyn": brooklyn, "queens": queens, "bronx": bronx}

    # Given an artist and a fan on each node, and a track by each artist,
    artists = {"lee": brooklyn, "jay": queens, "kim": bronx}
    fans = {"maya": brooklyn, "noor": queens, "omar": bronx}
    tracks = {}
    for name, n in artists.items():
        await n.user(name, "artist")
        status, track = await api(
            n, "POST", "/api/v1/tracks", name, json={"title": f"{name} A1", "duration_ms": 200_000}
        )
        assert status == 201, track
        status, rel = await api(
            n,
            "POST",
            "/api/v1/releases",
            name,
            json={"title": f"{name} EP", "kind": "ep", "tracks": [track["uuid"]]},
        )
        assert status == 201, rel
        status, rel = await api(n, "POST", f"/api/v1/releases/{rel['uuid']}/publish", name)
        assert status == 200, rel
        tracks[name] = track["uri"]
    for name, n in fans.items():
        await n.user(name)
    uri = {name: n.ctx.urls.actor(name) for name, n in {**artists, **fans}.items()}

    # when the fans play artists on the other nodes last month,
    played = {"maya": ["jay", "jay", "jay", "kim"], "noor": ["lee", "lee"], "omar": ["jay", "lee"]}
    for fan, picks in played.items():
        for i, artist in enumerate(picks):
            started = period_end - timedelta(hours=2 * i + 1, minutes=5)
            status, body = await api(
                fans[fan],
                "POST",
                "/api/v1/plays",
                fan,
                json={
                    "track": tracks[artist],
                    "started_at": started.isoformat(),
                    "ms_listened": 190_000,
                    "id": f"{fan}-{period}-{i}",
                },
            )
            assert status == 201, body

    async def listens_arrived():
        counts = {}
        for artist, n in artists.items():
            counts[artist] = len(await rows(n, Play, Play.origin == "remote"))
        return counts == {"jay": 4, "lee": 3, "kim": 1}

    await eventually(listens_arrived)

    # (Brooklyn loses omar's Listen of lee, as if restored from an old backup,)
    async with brooklyn.ctx.db.transaction() as s:
        lost = await s.scalar(
            select(Play).where(Play.origin == "remote", Play.listener_uri == uri["omar"])
        )
        await s.execute(delete(Play).where(Play.id == lost.id))
        await s.execute(delete(InboxItem).where(InboxItem.activity_id == lost.uri))

    # and each fan's home node grants them the month and closes it,
    for fan, n in fans.items():
        async with n.ctx.db.transaction() as s:
            account = await s.scalar(select(Account).where(Account.username == fan))
            await grant(s, account, Money(FEE, "USD"), first_period=period, months=1, by="test")
    for n in nodes.values():
        await close_period(n.ctx, period, closed_by="admin", now=close_now)

    # then every node sends one statement per creditor node, signed and chained.
    out = {
        name: await rows(n, ClearingStatement, ClearingStatement.role == "out")
        for name, n in nodes.items()
    }
    assert {name: sorted(r.recipient_uri for r in rs) for name, rs in out.items()} == {
        "brooklyn": sorted([queens.ctx.urls.node_actor(), bronx.ctx.urls.node_actor()]),
        "queens": [house],
        "bronx": sorted([house, queens.ctx.urls.node_actor()]),
    }

    def split(weights):  # what close does: largest remainder, ties by artist URI
        parts = allocate(Money(POOL, "USD"), {uri[a]: w for a, w in weights.items()})
        return {a: parts[uri[a]] for a in weights}

    maya_split = split({"jay": 3, "kim": 1})
    omar_split = split({"jay": 1, "lee": 1})
    to_queens = next(r for r in out["brooklyn"] if r.recipient_uri == queens.ctx.urls.node_actor())
    assert to_queens.document["lines"] == [
        {"artist": uri["jay"], "plays": 3, "listeners": 1, "amount": maya_split["jay"].amount_minor}
    ]
    canonical.verify(to_queens.document, canonical.node_private_key(brooklyn.settings).public_key())

    # Each creditor checks the lines against the Listens it received: Brooklyn
    # misses one of omar's plays and rejects the Bronx's statement with the reason.
    bronx_to_house = next(r for r in out["bronx"] if r.recipient_uri == house)

    async def answered():
        states = {}
        for name, n in nodes.items():
            for r in await rows(n, ClearingStatement, ClearingStatement.role == "out"):
                states[(name, r.recipient_uri)] = r.state
        return states if "issued" not in states.values() and len(states) == 5 else None

    states = await eventually(answered)
    assert states[("bronx", house)] == "rejected"
    assert [v for k, v in states.items() if k != ("bronx", house)] == ["accepted"] * 4
    (rejected,) = await rows(bronx, ClearingStatement, ClearingStatement.uri == bronx_to_house.uri)
    assert rejected.disputed == [uri["lee"]]
    assert rejected.answer["reasons"][0]["reason"].startswith("1 plays stated, 0 Listens received")

    # The Bronx reissues it (its Listens go again); Brooklyn accepts the new one.
    async with bronx.ctx.db.transaction() as s:
        reissued = await statements.reissue(bronx.ctx, s, bronx_to_house.uri)
        reissued_uri = reissued.uri

    async def reissue_accepted():
        (r,) = await rows(bronx, ClearingStatement, ClearingStatement.uri == reissued_uri)
        return r.state == "accepted"

    await eventually(reissue_accepted)
    (old,) = await rows(brooklyn, ClearingStatement, ClearingStatement.uri == bronx_to_house.uri)
    assert old.state == "superseded"

    # The house nets the month and sends the settlement; every member agrees.
    settlement = await clearing.run(brooklyn.ctx, period)
    doc = settlement.document
    assert len(doc["statements"]) == 5 and doc["carried"] == []
    for balances in doc["positions"].values():
        assert sum(balances.values()) == 0
    assert len(doc["transfers"]) <= 2

    async def agreed():
        (row,) = await rows(brooklyn, ClearingSettlement, ClearingSettlement.uri == settlement.uri)
        return row if row.state == "accepted" else None

    row = await eventually(agreed)
    assert set(row.answers) == set(doc["members"])

    # Payers pay (the ledger provider: an external transfer and its reference),
    # payees confirm, and the month is settled.
    for i, t in enumerate(doc["transfers"]):
        payer = next(n for n in nodes.values() if n.ctx.urls.node_actor() == t["payer"])
        payee = next(n for n in nodes.values() if n.ctx.urls.node_actor() == t["payee"])

        async def paid_seen(payer=payer, payee=payee, t=t):
            mine = await rows(payer, ClearingTransfer, ClearingTransfer.uri == t["id"])
            theirs = await rows(payee, ClearingTransfer, ClearingTransfer.uri == t["id"])
            return mine and theirs

        await eventually(paid_seen)
        await payouts.pay_transfer(payer.ctx, t["id"], reference=f"bank-wire-{i}")

        async def arrived(payee=payee, t=t):
            (r,) = await rows(payee, ClearingTransfer, ClearingTransfer.uri == t["id"])
            return r.state == "paid"

        await eventually(arrived)
        async with payee.ctx.db.transaction() as s:
            await clearing.confirm(payee.ctx, s, t["id"])

    async def settled():
        (r,) = await rows(brooklyn, ClearingSettlement, ClearingSettlement.uri == settlement.uri)
        return r.state == "settled"

    await eventually(settled)

    async def members_settled():
        states = [
            r.state
            for n in (queens, bronx)
            for r in await rows(n, ClearingSettlement, ClearingSettlement.uri == settlement.uri)
        ]
        return states == ["settled", "settled"]

    await eventually(members_settled)

    # The house's console shows the settled month, its transfers and the superseded statement.
    await brooklyn.user("ana", "admin")
    async with aiohttp.ClientSession() as http:
        async with http.get(
            f"{brooklyn.base_url}/admin/clearing?period={period}", headers=brooklyn.auth("ana")
        ) as r:
            assert r.status == 200
            html = await r.text()
    assert settlement.uri in html and "bank-wire-0" in html
    assert "superseded" in html and "No disputed statement." in html

    # The period's public report on Queens shows its statements and the settlement.
    status, report = await api(queens, "GET", f"/api/v1/royalties/periods/{period}")
    assert status == 200, report
    assert report["settlement"]["state"] == "settled"
    assert sorted((st["direction"], st["state"]) for st in report["statements"]) == [
        ("in", "accepted"),
        ("in", "accepted"),
        ("out", "accepted"),
    ]

    # Every fan's money landed with the artists that fan played, to the cent,
    noor_split = split({"lee": 2})
    expected = {
        "jay": maya_split["jay"].amount_minor + omar_split["jay"].amount_minor,
        "kim": maya_split["kim"].amount_minor,
        "lee": noor_split["lee"].amount_minor + omar_split["lee"].amount_minor,
    }
    for artist, n in artists.items():
        async with n.ctx.db.read_session() as s:
            got = await ledger.balance(s, ledger.artist_account(uri[artist]), "USD")
        assert got == Money(expected[artist], "USD"), artist
    # and no node owes or is owed anything any more.
    for n in nodes.values():
        async with n.ctx.db.read_session() as s:
            assert await ledger.balance(s, clearing.clearing_account(house), "USD") == Money(
                0, "USD"
            )
            for other in nodes.values():
                peer = other.ctx.urls.node_actor()
                for account in (f"node_payable:{peer}", f"node_receivable:{peer}"):
                    assert await ledger.balance(s, account, "USD") == Money(0, "USD"), account
            assert await ledger.trial_balance(s) == {"USD": 0}

    # A house that signed different transfers would be caught by every member's
    # recomputation, and one changed byte by the signature.
    key = canonical.node_private_key(brooklyn.settings)
    moved = [{**t, "payee": t["payer"], "payer": t["payee"]} for t in doc["transfers"]]
    crooked = canonical.sign({**doc, "transfers": moved}, key, house)
    # A failed signature refetches the signer's key and caches it: a write.
    async with queens.ctx.db.transaction() as s:
        assert await clearing.check(queens.ctx, s, crooked) == [
            "the settlement's transfers differ from our own netting"
        ]
        tampered = dict(doc)
        tampered["positions"] = {
            c: {n: v + (1 if i == 0 else 0) for i, (n, v) in enumerate(b.items())}
            for c, b in doc["positions"].items()
        }
        with pytest.raises(canonical.SignatureInvalid):
            await statements.verify_signed(queens.ctx, s, tampered, house)
        await statements.verify_signed(queens.ctx, s, doc, house)
