"""Plays recorded after their month closed: counted once, in a later close, marked late.

A closed month never changes (DESIGN.md 7). A play reported after its
month's close (a client syncing offline listening, a venue device uploading
a batch late) counts in the next close instead, is shown there as late,
and is never counted twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from royalties.close import close_period
from royalties.ledger import trial_balance
from royalties.models import RoyaltyLine
from royalties.money import Money
from royalties.report import fan_split, period_report
from royalties.subscriptions import record_payment
from royalties.venues import set_licence

OCT, NOV, DEC = "2026-10", "2026-11", "2026-12"
AFTER_OCT = datetime(2026, 11, 3, tzinfo=UTC)
AFTER_NOV = datetime(2026, 12, 2, tzinfo=UTC)
AFTER_DEC = datetime(2027, 1, 2, tzinfo=UTC)


async def lines(node, period, kind="ucps"):
    async with node.ctx.db.read_session() as s:
        res = await s.execute(
            select(RoyaltyLine).where(RoyaltyLine.period == period, RoyaltyLine.kind == kind)
        )
        return {ln.artist_uri: (ln.plays, ln.amount_minor) for ln in res.scalars().all()}


async def pay(node, acc, period, fee=1000):
    async with node.ctx.db.transaction() as s:
        await record_payment(
            s,
            account_id=acc.id,
            period=period,
            amount=Money(fee, "USD"),
            provider="ledger",
            external_id=f"{acc.username}-{period}",
        )


async def test_a_late_play_counts_once_in_the_next_close_and_is_shown_as_late(scene, node):
    # Given ana, who subscribes in October and November, played xavi twice in October
    xavi = await scene.local_artist("xavi")
    yara = scene.remote_artist("yara")
    ana = await scene.fan("ana", fee=1000)
    await pay(node, ana, NOV)
    await scene.play("ana", "xavi", times=2, at=datetime(2026, 10, 5, tzinfo=UTC))
    october = await close_period(node.ctx, OCT, now=AFTER_OCT)
    assert await lines(node, OCT) == {xavi: (2, 850)}

    # When her phone syncs a play of yara from 20 October after October closed
    await scene.play("ana", "yara", at=datetime(2026, 10, 20, tzinfo=UTC))
    # then October does not change, closed again or not
    assert (await close_period(node.ctx, OCT, now=AFTER_OCT)).totals == october.totals
    assert await lines(node, OCT) == {xavi: (2, 850)}

    # When she plays xavi once in November and November closes
    await scene.play("ana", "xavi", at=datetime(2026, 11, 10, tzinfo=UTC))
    november = await close_period(node.ctx, NOV, now=AFTER_NOV)

    # Then her November pool splits over xavi's November play and yara's late one
    assert await lines(node, NOV) == {xavi: (1, 425), yara: (1, 425)}
    assert november.totals["USD"]["qualified_plays"] == 2
    assert november.late == {
        "fan_plays": 1,
        "venue_plays": 0,
        "from_periods": {OCT: 1},
        "artists": {yara: 1},
    }
    # and the transparency report and her own page show it as late, as the close split it
    async with node.ctx.db.read_session() as s:
        report = await period_report(s, node.ctx, NOV)
        mine = await fan_split(s, node.ctx, ana, NOV)
        october_report = await period_report(s, node.ctx, OCT)
    assert report["late_plays"]["from_periods"] == {OCT: 1}
    by_artist = {a["artist"]["uri"]: a for a in report["artists"]}
    assert (by_artist[yara]["late_plays"], by_artist[xavi]["late_plays"]) == (1, 0)
    assert october_report["late_plays"]["fan_plays"] == 0
    split = {a["artist"]["uri"]: a for a in mine["currencies"][0]["artists"]}
    assert split[yara]["ucps"]["amount_minor"] == 425 and split[yara]["late_plays"] == 1
    assert split[xavi]["ucps"]["amount_minor"] == 425

    # When December closes with another fee of hers, the late play is not counted again
    await pay(node, ana, DEC)
    december = await close_period(node.ctx, DEC, now=AFTER_DEC)
    assert december.late["fan_plays"] == 0
    assert await lines(node, DEC) == {}
    assert december.totals["USD"]["zero_play_subscribers"] == 1
    async with node.ctx.db.read_session() as s:
        assert await trial_balance(s) == {"USD": 0}


async def test_a_late_play_that_overlaps_or_passes_the_cap_adds_nothing(scene, node):
    await scene.local_artist("xavi")
    yara = scene.remote_artist("yara")
    ana = await scene.fan("ana", fee=1000)
    await pay(node, ana, NOV)
    at = datetime(2026, 10, 5, 12, tzinfo=UTC)
    # ten plays of one track that day (the daily cap), then October closes
    await scene.play("ana", "xavi", times=10, at=at)
    await close_period(node.ctx, OCT, now=AFTER_OCT)
    # late: an eleventh play of that track that day, and a play claiming three minutes
    # that started one minute before the first counted one (it overlaps it)
    await scene.play("ana", "xavi", at=datetime(2026, 10, 5, 20, tzinfo=UTC))
    await scene.play("ana", "yara", at=datetime(2026, 10, 5, 11, 59, tzinfo=UTC), ms=180_000)
    await scene.play("ana", "yara", at=datetime(2026, 11, 10, tzinfo=UTC))
    november = await close_period(node.ctx, NOV, now=AFTER_NOV)
    assert november.late["fan_plays"] == 0
    assert await lines(node, NOV) == {yara: (1, 850)}


async def test_a_venue_batch_uploaded_after_the_close_splits_the_next_licence_fee(scene, node):
    xavi = await scene.local_artist("xavi")
    yara = scene.remote_artist("yara")
    await scene.fan("dj")
    club = await scene.venue("club")
    async with node.ctx.db.transaction() as s:
        await set_licence(s, club, Money(10_000, "USD"))
    await scene.play(
        "dj", "xavi", source="venue", venue="club", at=datetime(2026, 10, 9, tzinfo=UTC)
    )
    await close_period(node.ctx, OCT, now=AFTER_OCT)
    assert await lines(node, OCT, "venue") == {xavi: (1, 8500)}
    # the device uploads an October play of yara after October closed
    await scene.play(
        "dj", "yara", source="venue", venue="club", at=datetime(2026, 10, 30, tzinfo=UTC)
    )
    await scene.play(
        "dj", "xavi", source="venue", venue="club", at=datetime(2026, 11, 9, tzinfo=UTC)
    )
    november = await close_period(node.ctx, NOV, now=AFTER_NOV)
    assert await lines(node, NOV, "venue") == {xavi: (1, 4250), yara: (1, 4250)}
    assert november.late["venue_plays"] == 1
    assert november.late["from_periods"] == {OCT: 1}
    december = await close_period(node.ctx, DEC, now=AFTER_DEC)
    assert december.late["venue_plays"] == 0
    assert await lines(node, DEC, "venue") == {}
