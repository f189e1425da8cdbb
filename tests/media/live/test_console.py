"""A node admin sees who is live and ends a session from the console."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from media.live.client import play, publish
from media.live.http import LIVE
from node.models import AuditEntry

from .conftest import ToneTrack


async def test_an_admin_sees_the_session_and_its_viewers_and_ends_it(live_node, http):
    token = await live_node.user("jay", role="artist")
    await live_node.user("boss", role="admin")
    await live_node.user("ana")
    admin = live_node.auth("boss")
    base = live_node.base_url
    publisher = await publish(http, f"{base}/live/jay/whip?title=Late%20set", token, [ToneTrack()])
    fan = await play(http, f"{base}/live/jay/whep")

    async with http.get(f"{base}/admin/live.json", headers=admin) as resp:
        assert resp.status == 200
        page = await resp.json()
    (now,) = page["on_air"]
    assert now["handle"] == "jay" and now["viewers"] == 1 and not now["relayed"]
    assert page["sessions"][0]["title"] == "Late set"
    assert page["sessions"][0]["state"] == "live"

    # Fans cannot.
    async with http.post(
        f"{base}/admin/live/end.json", json={"handle": "jay"}, headers=live_node.auth("ana")
    ) as resp:
        assert resp.status == 403

    async with http.post(
        f"{base}/admin/live/end.json", json={"handle": "jay", "reason": "rules"}, headers=admin
    ) as resp:
        assert resp.status == 200
        assert (await resp.json())["ended"] is True
    assert "jay" not in live_node.app[LIVE].broadcasts

    async with http.get(f"{base}/admin/live.json", headers=admin) as resp:
        page = await resp.json()
    assert page["on_air"] == []
    past = page["sessions"][0]
    assert past["state"] == "ended"
    assert past["end_reason"] == "ended by a moderator"
    assert past["viewers_peak"] == 1 and past["viewers_total"] == 1

    async with live_node.ctx.db.read_session() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "live.end"))
    assert entry.username == "boss" and entry.details["reason"] == "rules"

    # Ending again is harmless.
    async with http.post(f"{base}/admin/live/end.json", json={"handle": "jay"}, headers=admin) as r:
        assert (await r.json())["ended"] is False
    async with http.get(f"{base}/admin/live", headers=admin) as resp:
        assert resp.status == 200
        assert "Late set" in await resp.text()
    await fan.pc.close()
    await publisher.pc.close()
    await asyncio.sleep(0)
