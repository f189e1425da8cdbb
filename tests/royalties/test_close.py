"""Closing a month: each fan's money lands with the artists that fan played, to the cent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from royalties.close import close_period
from royalties.errors import BadPeriod
from royalties.holds import hold_play, list_held, release_play
from royalties.ledger import balance, trial_balance
from royalties.models import LedgerTxn, RoyaltyLine, RoyaltyPayable, SubscriptionPayment
from royalties.money import Money
from royalties.qualify import Rules, disqualified, listener_plays
from royalties.subscriptions import record_payment, record_refund
from royalties.venues import set_licence

PERIOD = "2026-10"
AFTER = datetime(2026, 11, 3, tzinfo=UTC)
QUEENS = "https://queens.example/actor"


async def lines_of(node, period=PERIOD, kind="ucps"):
    async with node.ctx.db.read_session() as s:
        res = await s.execute(
            select(RoyaltyLine).where(RoyaltyLine.period == period, RoyaltyLine.kind == kind)
        )
        return {ln.artist_uri: ln for ln in res.scalars().all()}


async def test_each_fee_goes_to_the_artists_that_fan_played_and_no_one_else(scene, node):
    # Given three subscribers and a non-subscriber on a node that keeps 10% and gives 5%
    xavi = await scene.local_artist("xavi")
    yara = scene.remote_artist("yara")
    await scene.fan("ana", fee=1000)
    await scene.fan("ben", fee=1000)
    await scene.fan("cal", fee=500)
    await scene.fan("dan")
    # When ana plays xavi three times and yara once, ben plays yara twice, cal nothing,
    # and dan (who pays nothing) plays xavi five times
    await scene.play("ana", "xavi", times=3)
    await scene.play("ana", "yara")
    await scene.play("ben", "yara", times=2)
    await scene.play("dan", "xavi", times=5)
    summary = await close_period(node.ctx, PERIOD, closed_by="admin", now=AFTER)

    # Then ana's 8.50 splits 3:1 (the odd cent to the smaller URI), ben's 8.50 all to yara,
    # and cal's pool, who played nothing, funds the foundation
    usd = summary.totals["USD"]
    assert usd["collected"] == 2500
    assert usd["node_share"] == 250
    assert usd["foundation"] == 50 + 50 + 25 + 425
    assert usd["artists_local"] == 638
    assert usd["artists_remote"] == 212 + 850
    assert usd["zero_play_subscribers"] == 1
    lines = await lines_of(node)
    assert (lines[xavi].amount_minor, lines[xavi].plays, lines[xavi].listeners) == (638, 3, 1)
    assert (lines[yara].amount_minor, lines[yara].plays, lines[yara].listeners) == (1062, 3, 2)
    # and the pro-rata figure of the same money is stored beside it (3 plays each: a tie)
    assert (lines[xavi].pro_rata_minor, lines[yara].pro_rata_minor) == (1063, 1062)

    async with node.ctx.db.read_session() as s:
        assert await balance(s, f"artist:{xavi}", "USD") == Money(638, "USD")
        assert await balance(s, f"node_payable:{QUEENS}", "USD") == Money(1062, "USD")
        assert await balance(s, "foundation", "USD") == Money(550, "USD")
        assert await balance(s, "node_share", "USD") == Money(250, "USD")
        assert await balance(s, "subscriptions", "USD") == Money(0, "USD")
        assert await trial_balance(s) == {"USD": 0}
        payable = (await s.execute(select(RoyaltyPayable))).scalar_one()
    assert (payable.node_uri, payable.artist_uri, payable.currency) == (QUEENS, yara, "USD")
    assert (payable.plays, payable.listeners, payable.amount_minor) == (3, 2, 1062)


async def test_only_qualified_plays_count(scene, node):
    await scene.local_artist("xavi")
    scene.remote_artist("yara")
    eve = await scene.fan("eve", fee=1000)
    # A 20-second play is too short
    await scene.play("eve", "xavi", ms=20_000)
    # Twelve plays of one track in a day: the cap (10) pays ten
    await scene.play("eve", "xavi", times=12)
    # A play claiming 3 minutes when the next began 1 minute later overlaps it
    await scene.play("eve", "yara", ms=180_000, gap_ms=60_000)
    await scene.play("eve", "yara")
    held = await scene.play("eve", "yara", track="t2")

    rules = Rules.from_settings(node.settings)
    async with node.ctx.db.transaction() as s:
        await hold_play(s, held[0], "flagged by an admin", "admin")
        await hold_play(s, held[0], "flagged by an admin", "admin")
    async with node.ctx.db.read_session() as s:
        assert await listener_plays(s, PERIOD, rules, eve.actor_id) == {
            scene.artists["xavi"]: 10,
            scene.artists["yara"]: 1,
        }
        why = await disqualified(s, PERIOD, rules, eve.actor_id)
        assert (why["too_short"], why["overlapping"], why["held"], why["total"]) == (1, 1, 1, 16)
        rows, n = await list_held(s)
    assert n == 1 and rows[0].reason == "flagged by an admin"

    # When the admin releases the held play, it counts again
    async with node.ctx.db.transaction() as s:
        assert await release_play(s, held[0], "admin")
        assert not await release_play(s, held[0], "admin")
    summary = await close_period(node.ctx, PERIOD, now=AFTER)
    lines = await lines_of(node)
    assert lines[scene.artists["xavi"]].plays == 10
    assert lines[scene.artists["yara"]].plays == 2
    # 850 split 10:2 -> 708.33 and 141.67: the larger remainder takes the cent
    assert lines[scene.artists["xavi"]].amount_minor == 708
    assert lines[scene.artists["yara"]].amount_minor == 142
    assert summary.totals["USD"]["qualified_plays"] == 12


async def test_closing_twice_changes_nothing_and_an_unfinished_month_is_refused(scene, node):
    await scene.local_artist("xavi")
    await scene.fan("ana", fee=999)
    await scene.play("ana", "xavi")
    with pytest.raises(BadPeriod):
        await close_period(node.ctx, PERIOD, now=datetime(2026, 10, 31, 23, 59, tzinfo=UTC))
    with pytest.raises(BadPeriod):
        await close_period(node.ctx, "2026-13", now=AFTER)
    first = await close_period(node.ctx, PERIOD, now=AFTER)
    await scene.play("ana", "xavi", times=4)  # late plays cannot reopen a closed month
    second = await close_period(node.ctx, PERIOD, now=AFTER)
    assert not first.already_closed and second.already_closed
    assert first.totals == second.totals
    async with node.ctx.db.read_session() as s:
        assert await s.scalar(select(func.count()).select_from(LedgerTxn)) == 2
        assert await s.scalar(select(func.count()).select_from(RoyaltyLine)) == 1


async def test_venue_licence_fees_split_over_each_venues_detected_plays(scene, node):
    xavi = await scene.local_artist("xavi")
    yara = scene.remote_artist("yara")
    club = await scene.venue("Club Bushwick")
    quiet = await scene.venue("Quiet Bar")
    async with node.ctx.db.transaction() as s:
        await set_licence(s, club, Money(10_000, "USD"))
        await set_licence(s, quiet, Money(2_000, "USD"))
    for artist, n in (("xavi", 3), ("yara", 1)):
        await scene.play("room", artist, times=n, source="venue", venue="Club Bushwick")
    flagged = await scene.play("room", "yara", source="venue", venue="Club Bushwick")
    async with node.ctx.db.transaction() as s:
        await hold_play(s, flagged[0], "device quarantined", "detection")

    summary = await close_period(node.ctx, PERIOD, now=AFTER)
    usd = summary.totals["USD"]
    assert usd["venue_fees"] == 12_000
    lines = await lines_of(node, kind="venue")
    assert lines[xavi].amount_minor == 6375 and lines[xavi].plays == 3
    assert lines[yara].amount_minor == 2125 and lines[yara].plays == 1
    # the quiet bar had no detected plays: its pool goes to the foundation
    assert usd["foundation"] == 500 + 100 + 1700
    assert usd["node_share"] == 1000 + 200
    async with node.ctx.db.read_session() as s:
        assert await balance(s, f"venue_fees:{club.uuid}", "USD") == Money(10_000, "USD")
        assert await trial_balance(s) == {"USD": 0}


async def test_refunds_land_in_a_later_open_period_and_closed_periods_never_change(scene, node):
    await scene.local_artist("xavi")
    ana = await scene.fan("ana")
    async with node.ctx.db.transaction() as s:
        paid = await record_payment(
            s,
            account_id=ana.id,
            period=PERIOD,
            amount=Money(1000, "USD"),
            provider="stripe",
            external_id="in_1",
        )
        again = await record_payment(
            s,
            account_id=ana.id,
            period=PERIOD,
            amount=Money(1000, "USD"),
            provider="stripe",
            external_id="in_1",
        )
        assert again.id == paid.id
    await scene.play("ana", "xavi")
    before = await close_period(node.ctx, PERIOD, now=AFTER)

    async with node.ctx.db.transaction() as s:
        refund = await record_refund(
            s, provider="stripe", external_id="in_1", amount=Money(400, "USD"), reason="asked"
        )
        late = await record_payment(
            s,
            account_id=ana.id,
            period=PERIOD,
            amount=Money(1000, "USD"),
            provider="stripe",
            external_id="in_late",
        )
        with pytest.raises(Exception, match="exceed"):
            await record_refund(
                s,
                provider="stripe",
                external_id="in_1",
                amount=Money(700, "USD"),
                reason="too much",
                refund_id="re_2",
            )
    assert refund.period != PERIOD and refund.amount_minor == -400
    assert late.period == refund.period  # a payment for a closed month is booked now
    after = await close_period(node.ctx, PERIOD, now=AFTER)
    assert after.totals == before.totals
    async with node.ctx.db.read_session() as s:
        net = await s.scalar(
            select(func.sum(SubscriptionPayment.amount_minor)).where(
                SubscriptionPayment.period == refund.period
            )
        )
        assert net == 600
        assert await balance(s, "cash", "USD") == Money(1600, "USD")


async def paid_september_and_played_xavi_and_yara(scene, node):
    """ana paid 10.00 for September and played xavi (here) three times and yara (on queens)
    once; returns (xavi's URI, yara's URI, ana)."""
    xavi = await scene.local_artist("xavi")
    yara = scene.remote_artist("yara")
    ana = await scene.fan("ana")
    async with node.ctx.db.transaction() as s:
        await record_payment(
            s,
            account_id=ana.id,
            period="2026-09",
            amount=Money(1000, "USD"),
            provider="ledger",
            external_id="sep",
        )
    await scene.play("ana", "xavi", times=3, at=datetime(2026, 9, 3, tzinfo=UTC))
    await scene.play("ana", "yara", at=datetime(2026, 9, 4, tzinfo=UTC))
    return xavi, yara, ana


async def test_a_refund_of_a_closed_month_is_taken_back_from_the_artists_that_fee_paid(scene, node):
    # Given ana paid 10.00 for September and played xavi (here) three times and yara
    # (on queens) once: 8.50 split 6.38 / 2.12, 1.00 node share, 0.50 foundation
    xavi, yara, ana = await paid_september_and_played_xavi_and_yara(scene, node)
    september = await close_period(node.ctx, "2026-09", now=AFTER)
    assert (await lines_of(node, "2026-09"))[xavi].amount_minor == 638

    # When 4.00 of it is refunded now, and ana pays for this month and plays yara in it
    async with node.ctx.db.transaction() as s:
        row = await record_refund(
            s, provider="ledger", external_id="sep", amount=Money(400, "USD"), reason="asked"
        )
        await record_payment(
            s,
            account_id=ana.id,
            period=row.period,
            amount=Money(1000, "USD"),
            provider="ledger",
            external_id="this-month",
        )
    await scene.play("ana", "yara", times=4, at=datetime(2026, 12, 2, tzinfo=UTC))
    later = await close_period(node.ctx, row.period, now=datetime(2027, 1, 2, tzinfo=UTC))

    # Then September is untouched, and the later month takes the 4.00 back from what the
    # September fee paid, in proportion (node 0.40, foundation 0.20, xavi 2.55, yara 0.85),
    # as negative refund lines; ana's new fee is split over her new plays as usual
    assert (await close_period(node.ctx, "2026-09", now=AFTER)).totals == september.totals
    refund_lines = await lines_of(node, row.period, kind="refund")
    assert {a: ln.amount_minor for a, ln in refund_lines.items()} == {xavi: -255, yara: -85}
    assert (await lines_of(node, row.period))[yara].amount_minor == 850
    usd = later.totals["USD"]
    assert (usd["collected"], usd["refunds"]) == (600, -400)
    assert (usd["node_share"], usd["foundation"]) == (100 - 40, 50 - 20)
    assert (usd["artists_local"], usd["artists_remote"]) == (-255, 850 - 85)
    async with node.ctx.db.read_session() as s:
        assert await balance(s, f"artist:{xavi}", "USD") == Money(638 - 255, "USD")
        assert await balance(s, f"node_payable:{QUEENS}", "USD") == Money(212 + 765, "USD")
        payable = (
            await s.execute(select(RoyaltyPayable).where(RoyaltyPayable.period == row.period))
        ).scalar_one()
        assert payable.amount_minor == 765
        assert await trial_balance(s) == {"USD": 0}


async def test_a_refund_a_remote_artist_cannot_give_back_that_month_falls_to_the_node(scene, node):
    # Given ana's September fee went 6.38 to xavi (here) and 2.12 to yara (on queens)
    xavi, _, _ = await paid_september_and_played_xavi_and_yara(scene, node)
    await close_period(node.ctx, "2026-09", now=AFTER)
    # When all of it is refunded in a month where yara earns nothing here
    async with node.ctx.db.transaction() as s:
        row = await record_refund(
            s, provider="ledger", external_id="sep", amount=Money(1000, "USD"), reason="oops"
        )
    summary = await close_period(node.ctx, row.period, now=datetime(2027, 1, 2, tzinfo=UTC))
    # Then xavi gives back 6.38 and the foundation 0.50; a statement line is never
    # negative, so the node carries yara's 2.12 beside its own 1.00
    usd = summary.totals["USD"]
    assert (usd["collected"], usd["refunds"]) == (-1000, -1000)
    assert (usd["artists_local"], usd["artists_remote"]) == (-638, 0)
    assert (usd["node_share"], usd["foundation"]) == (-100 - 212, -50)
    async with node.ctx.db.read_session() as s:
        assert await balance(s, f"artist:{xavi}", "USD") == Money(0, "USD")
        assert await trial_balance(s) == {"USD": 0}


async def test_currencies_with_zero_and_three_decimals_close_separately(scene, node):
    xavi = await scene.local_artist("xavi")
    await scene.fan("kenji", fee=980, currency="JPY")
    await scene.fan("fahad", fee=3_500, currency="KWD")
    await scene.play("kenji", "xavi", times=2)
    await scene.play("fahad", "xavi")
    summary = await close_period(node.ctx, PERIOD, now=AFTER)
    assert set(summary.totals) == {"JPY", "KWD"}
    assert summary.totals["JPY"]["node_share"] == 98
    assert summary.totals["JPY"]["artists_local"] == 980 - 98 - 49
    async with node.ctx.db.read_session() as s:
        assert await balance(s, f"artist:{xavi}", "KWD") == Money(3500 - 350 - 175, "KWD")
        assert await trial_balance(s) == {"JPY": 0, "KWD": 0}
