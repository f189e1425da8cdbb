"""The money pages: a fan sees where their money went; anyone reads the node's books."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from royalties.close import close_period
from royalties.money import Money
from royalties.periods import period_of
from royalties.subscriptions import grant

PERIOD = "2026-10"
AFTER = datetime(2026, 11, 3, tzinfo=UTC)
PASSWORD = "correct horse battery"


async def test_the_transparency_report_and_an_artists_earnings_are_public(scene, node):
    await scene.local_artist("xavi")
    scene.remote_artist("yara")
    club = await scene.venue("Club Bushwick")
    from royalties.venues import set_licence

    async with node.ctx.db.transaction() as s:
        await set_licence(s, club, Money(2000, "USD"))
    await scene.fan("ana", fee=1000)
    await scene.fan("cal", fee=500)
    await scene.play("ana", "xavi", times=3)
    await scene.play("ana", "yara")
    await scene.play("room", "xavi", source="venue", venue="Club Bushwick")

    r = await node.client.get(f"/royalties/{PERIOD}")
    assert r.status == 200 and "Not closed yet" in await r.text()
    await close_period(node.ctx, PERIOD, now=AFTER)

    index = await (await node.client.get("/royalties")).text()
    assert f"/royalties/{PERIOD}" in index
    text = await (await node.client.get(f"/royalties/{PERIOD}")).text()
    assert "Closed " in text and "15.00 USD" in text  # collected
    # xavi: 6.38 from ana's fee and 17.00 from the club; pro-rata would pay 9.56 + 17.00
    assert "23.38 USD" in text and "26.56 USD" in text
    assert "1 subscriber played nothing" in text

    page = await (await node.client.get("/@xavi/earnings")).text()
    assert "Club Bushwick" in page and "17.00 USD" in page  # the venue's pool, all to xavi
    assert "23.38 USD" in page  # UCPS here + the venue

    r = await node.client.get("/@xavi/earnings.csv")
    assert r.status == 200 and r.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await r.text())))
    by_source = {row["source"]: row for row in rows}
    assert by_source["ucps"]["amount"] == "6.38"
    assert by_source["venue"]["venue"] == "Club Bushwick"
    assert by_source["venue"]["amount"] == "17.00"

    assert (await node.client.get("/@nobody/earnings")).status == 404
    assert (await node.client.get("/royalties/2026-13")).status == 400


async def test_a_fan_signs_in_and_sees_this_months_fee_split_by_artist(live_scene, live_node, page):
    scene = live_scene
    await scene.local_artist("xavi")
    scene.remote_artist("yara")
    ana = await scene.fan("ana")
    await scene.fan("ben")
    this_month = period_of(datetime.now(UTC))
    async with live_node.ctx.db.transaction() as s:
        await grant(s, ana, Money(999, "USD"))
    start = max(
        datetime.now(UTC) - timedelta(hours=3),
        datetime.fromisoformat(this_month + "-01T00:00:00+00:00"),
    )
    await scene.play("ana", "xavi", at=start, times=2)
    await scene.play("ana", "yara")
    await scene.play("ana", "yara", ms=4_000)

    base = live_node.base_url
    await page.goto(base + "/me/royalties")
    await page.get_by_label("Username").fill("ana")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base + "/me/royalties")

    assert await page.locator("#fee").inner_text() == "9.99 USD"
    assert await page.locator("#pool").inner_text() == "8.51 USD"  # less 0.99 and 0.49
    rows = await page.locator("#split tbody tr").all_inner_texts()
    assert len(rows) == 2
    assert rows[0].split("\t")[:3] == ["xavi", "2", "5.67 USD"]
    assert rows[1].split("\t")[0].startswith("yara")
    assert "1 play shorter than 30 seconds" in await page.locator("#not-counted").inner_text()
