"""A disputed line that is never reissued: the rest of the month settles, the
line is carried forward into the next statement, and paid when its Listens
are finally there (two real nodes; Brooklyn is also the clearing house)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select

from federation.models import InboxItem
from node.models import Account, Play
from royalties import clearing, ledger, payouts, statements
from royalties.clearing_models import ClearingSettlement, ClearingStatement, ClearingTransfer
from royalties.close import close_period
from royalties.errors import BadPeriod
from royalties.money import Money
from royalties.subscriptions import grant
from tests.royalties.test_protocol import (  # noqa: F401 - the autouse fixture too
    api,
    cheap_password_hashes,
    closable_period,
    eventually,
    month_start,
    rows,
)


async def test_a_disputed_line_is_carried_forward_and_the_rest_settles(network):
    period, period_end, close_now = closable_period()
    (brooklyn,) = await network(1, **{"clearing.listen_grace_seconds": 2.0})
    house = brooklyn.ctx.urls.node_actor()
    brooklyn.settings.values["royalties.clearing_house"] = house
    (queens,) = await network(
        1, **{"royalties.clearing_house": house, "clearing.listen_grace_seconds": 2.0}
    )
    tracks = {}
    for name in ("lee", "ray"):
        await brooklyn.user(name, "artist")
        _, track = await api(
            brooklyn, "POST", "/api/v1/tracks", name, json={"title": "A1", "duration_ms": 200_000}
        )
        _, rel = await api(
            brooklyn,
            "POST",
            "/api/v1/releases",
            name,
            json={"title": f"{name} EP", "kind": "ep", "tracks": [track["uuid"]]},
        )
        await api(brooklyn, "POST", f"/api/v1/releases/{rel['uuid']}/publish", name)
        tracks[name] = track["uri"]
    await queens.user("noor")
    lee, ray = brooklyn.ctx.urls.actor("lee"), brooklyn.ctx.urls.actor("ray")

    # Noor on Queens plays Lee and Ray last month; Brooklyn hears both, then loses Ray's.
    for i, artist in enumerate(("lee", "ray")):
        status, body = await api(
            queens,
            "POST",
            "/api/v1/plays",
            "noor",
            json={
                "track": tracks[artist],
                "started_at": (period_end - timedelta(hours=i + 2)).isoformat(),
                "ms_listened": 190_000,
                "id": f"noor-{period}-{i}",
            },
        )
        assert status == 201, body

    async def heard():
        return len(await rows(brooklyn, Play, Play.origin == "remote")) == 2

    await eventually(heard)
    async with brooklyn.ctx.db.transaction() as s:
        lost = await s.scalar(select(Play).where(Play.artist_uri == ray))
        await s.execute(delete(Play).where(Play.id == lost.id))
        await s.execute(delete(InboxItem).where(InboxItem.activity_id == lost.uri))

    async with queens.ctx.db.transaction() as s:
        noor = await s.scalar(select(Account).where(Account.username == "noor"))
        await grant(s, noor, Money(1000, "USD"), first_period=period, months=1, by="test")
    await close_period(queens.ctx, period, closed_by="admin", now=close_now)

    async def rejected():
        (st,) = await rows(queens, ClearingStatement, ClearingStatement.role == "out")
        return st if st.state == "rejected" else None

    first = await eventually(rejected)
    assert first.disputed == [ray]
    amounts = {ln["artist"]: ln["amount"] for ln in first.document["lines"]}

    # Nobody reissues. The house settles the undisputed part and carries Ray's line.
    settlement = await clearing.run(brooklyn.ctx, period)
    doc = settlement.document
    assert doc["carried"] == [
        {
            "issuer": queens.ctx.urls.node_actor(),
            "recipient": house,
            "currency": "USD",
            "artist": ray,
            "amount": amounts[ray],
        }
    ]
    (t,) = doc["transfers"]
    assert (t["payer"], t["payee"], t["amount"]) == (
        queens.ctx.urls.node_actor(),
        house,
        amounts[lee],
    )

    async def agreed():
        return await rows(queens, ClearingTransfer, ClearingTransfer.uri == t["id"])

    await eventually(agreed)
    await payouts.pay_transfer(queens.ctx, t["id"], reference="WIRE-1")

    async def paid():
        found = await rows(brooklyn, ClearingTransfer, ClearingTransfer.uri == t["id"])
        return found and found[0].state == "paid"

    await eventually(paid)
    async with brooklyn.ctx.db.transaction() as s:
        await clearing.confirm(brooklyn.ctx, s, t["id"])
    (row,) = await rows(brooklyn, ClearingSettlement, ClearingSettlement.uri == settlement.uri)
    assert row.state == "settled"

    # The next close carries Ray's line (and sends its Listen again); Brooklyn accepts it.
    year, month = int(period[:4]), int(period[5:])
    after = month_start(year, month + 1)
    await close_period(
        queens.ctx, f"{after.year:04d}-{after.month:02d}", now=month_start(year, month + 2)
    )

    async def carried_accepted():
        sts = await rows(queens, ClearingStatement, ClearingStatement.role == "out")
        return sts[-1] if len(sts) == 2 and sts[-1].state == "accepted" else None

    carried = await eventually(carried_accepted)
    assert carried.document["lines"] == [
        {"artist": ray, "plays": 1, "listeners": 1, "amount": amounts[ray], "carriedFrom": period}
    ]
    (old,) = await rows(queens, ClearingStatement, ClearingStatement.uri == first.uri)
    assert old.carried_into == carried.uri
    with pytest.raises(BadPeriod, match="already carried"):  # and it is never claimed twice
        async with queens.ctx.db.transaction() as s:
            await statements.reissue(queens.ctx, s, first.uri)
    async with brooklyn.ctx.db.read_session() as s:
        assert await ledger.balance(s, ledger.artist_account(lee), "USD") == Money(
            amounts[lee], "USD"
        )
        assert await ledger.balance(s, ledger.artist_account(ray), "USD") == Money(
            amounts[ray], "USD"
        )
