"""The dashboard counts what the node holds and shows how its queue keeps up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


async def test_the_dashboard_counts_the_node(node, browser):
    await node.user("ana", "admin")
    await node.user("cleo", "curator")
    await node.user("jay", "artist", borough="Brooklyn")
    await node.user("fiona", "fan")
    await node.user("finn", "fan")
    api = node.auth("jay")

    async def post(path: str, body: dict) -> dict:
        r = await node.client.post(path, json=body, headers=api)
        assert r.status in (200, 201), await r.text()
        return await r.json()

    t1 = await post("/api/v1/tracks", {"title": "Fulton St"})
    t2 = await post("/api/v1/tracks", {"title": "Myrtle Ave"})
    released = await post(
        "/api/v1/releases", {"title": "Kings County", "kind": "ep", "tracks": [t1["uuid"]]}
    )
    await post(f"/api/v1/releases/{released['uuid']}/publish", {})
    await post("/api/v1/releases", {"title": "Demos", "kind": "ep", "tracks": [t2["uuid"]]})
    venue = await post("/api/v1/venues", {"name": "Elsewhere", "borough": "Brooklyn"})
    soon = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    await post(
        "/api/v1/events", {"title": "Release show", "starts_at": soon, "venue": venue["uuid"]}
    )
    r = await node.client.post("/admin/users/finn/disable.json", headers=node.auth("ana"))
    assert r.status == 200

    r = await node.client.get("/admin/dashboard.json", headers=node.auth("cleo"))
    assert r.status == 200
    d = await r.json()
    assert d["counts"]["accounts"] == {
        "total": 5,
        "by_role": {"fan": 2, "artist": 1, "curator": 1, "admin": 1},
        "disabled": 1,
    }
    assert d["counts"]["artists"] == {"local": 1, "remote": 0}
    assert d["counts"]["releases"] == {"draft": 1, "published": 1, "remote": 0}
    assert d["counts"]["tracks"] == {"local": 2, "remote": 0}
    assert d["counts"]["events"] == {"upcoming": 1, "total": 1}
    assert d["counts"]["venues"] == 1
    assert set(d["jobs"]["counts"]) == {"queued", "running", "done", "dead"}
    assert d["jobs"]["recent_dead"] == []  # job errors are for admins
    assert d["node"]["domain"] == node.ctx.domain
    assert d["node"]["database"] == node.ctx.db.dialect
    assert d["node"]["version"]
    assert [e["action"] for e in d["recent_audit"]] == ["user.disable"]

    # The page shows the same figures, with the nav and a link to its JSON twin.
    await browser.sign_in("cleo")
    r = await node.client.get("/admin/dashboard")
    assert r.status == 200 and r.content_type == "text/html"
    assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"
    page = await r.text()
    assert 'href="/static/site.css"' in page and 'href="/admin/static/admin.css"' in page
    assert 'href="/admin/dashboard.json"' in page
    assert '<a href="/admin/dashboard" aria-current="page">Dashboard</a>' in page
    assert "upcoming events" in page and node.ctx.db.dialect in page

    # /admin/ is the way in.
    r = await node.client.get("/admin/", allow_redirects=False)
    assert r.status == 302 and r.headers["Location"] == "/admin/dashboard"


async def test_the_console_stylesheet_is_served(node):
    r = await node.client.get("/admin/static/admin.css")
    assert r.status == 200
    assert ".a-nav" in await r.text()


async def test_templates_escape_what_users_typed(node, browser):
    await node.user("ana", "admin")
    await node.user("fiona", "fan", name="<script>alert(1)</script>")
    await browser.sign_in("ana")
    page = await (await node.client.get("/admin/users/fiona")).text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
