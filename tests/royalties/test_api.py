"""The royalties API: the node's transparency report, an artist's earnings, a fan's split."""

from __future__ import annotations

from datetime import UTC, datetime

from royalties.close import close_period

PERIOD = "2026-10"
AFTER = datetime(2026, 11, 3, tzinfo=UTC)


async def test_a_closed_month_is_public_and_adds_up(scene, node):
    xavi = await scene.local_artist("xavi")
    yara = scene.remote_artist("yara")
    await scene.fan("ana", fee=1000)
    await scene.play("ana", "xavi", times=3)
    await scene.play("ana", "yara")

    r = await node.client.get(f"/api/v1/royalties/periods/{PERIOD}")
    assert r.status == 200
    body = await r.json()
    assert body["state"] == "open"
    assert body["collected_so_far"]["USD"]["amount_minor"] == 1000

    await close_period(node.ctx, PERIOD, now=AFTER)
    body = await (await node.client.get(f"/api/v1/royalties/periods/{PERIOD}")).json()
    assert body["state"] == "closed"
    usd = body["currencies"]["USD"]
    assert usd["collected"]["display"] == "10.00 USD"
    parts = ("artists_local", "artists_remote", "node_share", "foundation")
    assert sum(usd[k]["amount_minor"] for k in parts) == 1000
    by_uri = {a["artist"]["uri"]: a for a in body["artists"]}
    assert by_uri[xavi]["ucps"]["amount_minor"] == 638
    assert by_uri[xavi]["artist"]["handle"] == "xavi"
    assert by_uri[yara]["node"] == "https://queens.example/actor"

    r = await node.client.get("/api/v1/artists/xavi/earnings", params={"period": PERIOD})
    earnings = await r.json()
    assert r.status == 200
    (month,) = earnings["periods"]
    assert (month["period"], month["plays"], month["listeners"]) == (PERIOD, 3, 1)
    assert month["ucps"]["amount_minor"] == 638
    assert month["total"]["amount_minor"] == 638


async def test_a_fan_sees_where_their_money_went(scene, node):
    await scene.local_artist("xavi")
    scene.remote_artist("yara")
    await scene.fan("ana", fee=1000)
    await scene.fan("ben", fee=1000)
    await scene.play("ana", "xavi", times=3)
    await scene.play("ana", "yara")
    await scene.play("ana", "yara", ms=5_000)
    await scene.play("ben", "yara", times=9)

    r = await node.client.get(
        "/api/v1/me/royalties", params={"period": PERIOD}, headers=node.auth("ana")
    )
    assert r.status == 200
    split = await r.json()
    (usd,) = split["currencies"]
    assert usd["pool"]["amount_minor"] == 850
    amounts = {a["artist"]["handle"]: a["ucps"]["amount_minor"] for a in usd["artists"]}
    assert amounts == {"xavi": 638, "yara": 212}
    # under pro-rata most of ana's money would follow ben's listening instead
    pro = {a["artist"]["handle"]: a["pro_rata"]["amount_minor"] for a in usd["artists"]}
    assert pro["yara"] > pro["xavi"]
    assert split["not_counted"]["too_short"] == 1

    # and the split is exactly what the close pays
    await close_period(node.ctx, PERIOD, now=AFTER)
    closed = await (
        await node.client.get(
            "/api/v1/me/royalties", params={"period": PERIOD}, headers=node.auth("ana")
        )
    ).json()
    assert closed["state"] == "closed"
    assert closed["currencies"][0]["artists"] == usd["artists"]


async def test_bad_periods_and_strangers_get_problems(node):
    r = await node.client.get("/api/v1/royalties/periods/2026-13")
    assert r.status == 400
    assert r.content_type == "application/problem+json"
    r = await node.client.get("/api/v1/me/royalties")
    assert r.status == 401
    r = await node.client.get("/api/v1/artists/nobody/earnings")
    assert r.status == 404
    r = await node.client.get("/api/v1/artists/nobody/earnings", params={"period": "soon"})
    assert r.status in (400, 422)
