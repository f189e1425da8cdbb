"""The demo's royalty step: last month closed on every node and cleared across them.

Run by `nycmg demo` once fans have followed and played across the nodes
(node/demo/across.py calls `close_and_clear`). The first node is the
clearing house. Fans get last month's subscription (the ledger provider, as
an admin grants it), play the remote releases in their feeds one evening of
last month, and every node closes the month: statements go out and are
accepted, the house nets them and sends the settlement, the payers record
their transfers (an external wire, the ledger provider) and the payees
confirm them. Every step is idempotent, so a re-run changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from node.demo.across import _call, _client, _fans, _until, listening_session
from node.demo.model import DemoNetwork, DemoNode, run_all
from node.models import Account, Play

from . import clearing, payouts
from .clearing_models import ClearingSettlement, ClearingStatement, ClearingTransfer
from .close import close_period
from .models import SubscriptionPayment
from .money import Money
from .subscriptions import grant, is_closed

DEMO_FEE_MINOR = 999


def last_month(now: datetime) -> tuple[str, datetime]:
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    last = start - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}", start


def _remember_house(node: DemoNode, house: str) -> None:
    """Name the house in the running node and in its nycmg.toml (a reopened demo keeps it)."""
    import tomllib

    import tomli_w

    from node.config import CONFIG_FILE

    node.ctx.settings.values["royalties.clearing_house"] = house
    path = node.ctx.settings.data_dir / CONFIG_FILE
    tables = tomllib.loads(path.read_text())
    if tables.get("royalties", {}).get("clearing_house") != house:
        tables.setdefault("royalties", {})["clearing_house"] = house
        path.write_text(tomli_w.dumps(tables))
        path.chmod(0o600)


async def _subscribe(node: DemoNode, fan: str, period: str) -> None:
    async with node.ctx.db.transaction() as s:
        if await is_closed(s, period):
            return
        account = await s.scalar(select(Account).where(Account.username == fan))
        paid = await s.scalar(
            select(func.count())
            .select_from(SubscriptionPayment)
            .where(
                SubscriptionPayment.account_id == account.id, SubscriptionPayment.period == period
            )
        )
        if not paid:
            money = Money(DEMO_FEE_MINOR, node.ctx.settings.royalties.currency)
            await grant(s, account, money, first_period=period, months=1, by="demo")


async def _play_last_month(network: DemoNetwork, evening: datetime) -> None:
    by_host = {n.domain: n for n in network.nodes}
    expected: dict[str, set[str]] = {n.spec.key: set() for n in network.nodes}

    async def play_as(http, node: DemoNode, fan: str) -> None:
        feed = await _call(http, node, "GET", "/api/v1/feed", fan, params={"limit": "100"})
        remote = [
            i["release"]
            for i in feed["items"]
            if i["kind"] == "release" and not i["release"]["local"]
        ]
        for body in listening_session(node, fan, remote, evening):
            body["id"] = body["id"][:45] + "-last-month"
            play = await _call(http, node, "POST", "/api/v1/plays", fan, json=body)
            origin = by_host.get(body["track"].split("/")[2])
            if origin is not None:
                expected[origin.spec.key].add(play["uri"])

    async def uncounted() -> list[str]:
        missing = []
        for node in network.nodes:
            uris = sorted(expected[node.spec.key])
            if not uris:
                continue
            async with node.ctx.db.read_session() as s:
                n = await s.scalar(select(func.count()).select_from(Play).where(Play.uri.in_(uris)))
            if n < len(uris):
                missing.append(f"{len(uris) - n} of last month's plays for {node.spec.name}")
        return missing

    async with _client() as http:
        await run_all([play_as(http, node, fan) for node, fan in _fans(network)], limit=4)
    await _until(network, uncounted, "Plays")


async def _rows(node: DemoNode, model: Any, *where: Any) -> list[Any]:
    async with node.ctx.db.read_session() as s:
        return list((await s.scalars(select(model).where(*where))).all())


async def close_and_clear(network: DemoNetwork) -> None:
    nodes = network.nodes
    house_node = nodes[0]
    house = house_node.ctx.urls.node_actor()
    for node in nodes:
        _remember_house(node, house)
    now = datetime.now(UTC)
    period, month_start = last_month(now)
    if now - month_start > timedelta(days=28):
        network.notes.append(
            "Royalties: too late in the month to report plays of last month; nothing closed."
        )
        return

    await run_all([_subscribe(node, fan, period) for node, fan in _fans(network)], limit=4)
    await _play_last_month(network, month_start - timedelta(hours=3))
    for node in nodes:
        await close_period(node.ctx, period, closed_by="demo")

    async def unanswered() -> list[str]:
        # Answered at its issuer, and the house holds it with its answer too
        # (the copies to the house travel separately; a settlement run before
        # they arrive leaves a statement out, and its members reject it).
        at_house = {
            r.uri
            for r in await _rows(house_node, ClearingStatement, ClearingStatement.period == period)
            if r.state in ("accepted", "rejected") and r.answer is not None
        }
        missing = []
        for node in nodes:
            for r in await _rows(node, ClearingStatement, ClearingStatement.role == "out"):
                if r.period != period:
                    continue
                if r.state == "issued":
                    missing.append(f"{node.spec.name}'s statement to {r.recipient_uri}")
                elif r.state != "superseded" and r.uri not in at_house:
                    missing.append(f"the house's copy of {node.spec.name}'s statement")
        return missing

    if not await _until(network, unanswered, "Royalty statements"):
        return
    settlement = await clearing.run(house_node.ctx, period)

    async def agreed() -> list[str]:
        (row,) = await _rows(
            house_node, ClearingSettlement, ClearingSettlement.uri == settlement.uri
        )
        if row.state == "rejected":
            network.notes.append(f"Royalties: a member rejected the settlement: {row.answers}")
            return []
        return [] if row.state in ("accepted", "settled") else ["the settlement's answers"]

    if not await _until(network, agreed, "Royalty settlement"):
        return
    by_uri = {n.ctx.urls.node_actor(): n for n in nodes}
    for i, t in enumerate(settlement.document["transfers"], 1):
        payer, payee = by_uri[t["payer"]], by_uri[t["payee"]]

        async def booked(payer=payer, t=t) -> list[str]:
            # The payer may only pay once it has heard that every member
            # accepted; the house's "accepted" reaches it as a later message.
            rows = await _rows(payer, ClearingTransfer, ClearingTransfer.uri == t["id"])
            known = await _rows(payer, ClearingSettlement, ClearingSettlement.uri == settlement.uri)
            if rows and known and known[0].state in ("accepted", "settled"):
                return []
            return [f"{payer.spec.name}'s transfer"]

        if not await _until(network, booked, "Settlement transfers"):
            return
        await payouts.pay_transfer(payer.ctx, t["id"], reference=f"demo-wire-{period}-{i}")

        async def arrived(payee=payee, t=t) -> list[str]:
            rows = await _rows(payee, ClearingTransfer, ClearingTransfer.uri == t["id"])
            return [] if rows and rows[0].state != "due" else [f"{payee.spec.name}'s notice"]

        if not await _until(network, arrived, "Transfer notices"):
            return
        async with payee.ctx.db.transaction() as s:
            await clearing.confirm(payee.ctx, s, t["id"])

    async def settled() -> list[str]:
        (row,) = await _rows(
            house_node, ClearingSettlement, ClearingSettlement.uri == settlement.uri
        )
        return [] if row.state == "settled" else ["the settlement"]

    await _until(network, settled, f"Royalties for {period}")
