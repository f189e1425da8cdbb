"""The audit log: newest first, filtered, paged, and written with the change
or not at all."""

from __future__ import annotations

from sqlalchemy import func, select

from node.models import AuditEntry


async def test_the_audit_log_is_newest_first_filtered_and_paged(node, browser):
    await node.user("ana", "admin")
    await node.user("ben", "admin")
    for name in ("u1", "u2", "u3"):
        await node.user(name, "fan")
    for name in ("u1", "u2", "u3"):
        r = await node.client.post(
            f"/admin/users/{name}/role.json", json={"role": "artist"}, headers=node.auth("ana")
        )
        assert r.status == 200
    r = await node.client.post("/admin/users/u2/disable.json", headers=node.auth("ben"))
    assert r.status == 200

    async def walk(params: dict) -> list[tuple[str, str, str]]:
        seen, url = [], "/admin/audit.json"
        while url:
            r = await node.client.get(url, params=params, headers=node.auth("ben"))
            assert r.status == 200, await r.text()
            body = await r.json()
            seen += [(e["username"], e["action"], e["target"]) for e in body["entries"]]
            url, params = body["next"], None
        return seen

    assert await walk({"limit": "1"}) == [
        ("ben", "user.disable", "user:u2"),
        ("ana", "user.role", "user:u3"),
        ("ana", "user.role", "user:u2"),
        ("ana", "user.role", "user:u1"),
    ]
    assert await walk({"user": "ben"}) == [("ben", "user.disable", "user:u2")]
    assert await walk({"action": "user.role", "limit": "2"}) == [
        ("ana", "user.role", "user:u3"),
        ("ana", "user.role", "user:u2"),
        ("ana", "user.role", "user:u1"),
    ]
    assert await walk({"target": "user:u2"}) == [
        ("ben", "user.disable", "user:u2"),
        ("ana", "user.role", "user:u2"),
    ]
    r = await node.client.get(
        "/admin/audit.json", params={"action": "user.delete"}, headers=node.auth("ben")
    )
    assert r.status == 400 and "unknown action" in (await r.json())["detail"]

    await browser.sign_in("ben")
    page = await (
        await node.client.get("/admin/audit", params={"action": "user.role", "limit": "2"})
    ).text()
    assert page.count("Changed a role") >= 2 and 'rel="next"' in page
    assert "action=user.role" in page


async def test_a_refused_change_leaves_no_entry(node):
    await node.user("ana", "admin")
    r = await node.client.post(
        "/admin/users/ana/role.json", json={"role": "fan"}, headers=node.auth("ana")
    )
    assert r.status == 409
    async with node.ctx.db.read_session() as s:
        assert await s.scalar(select(func.count()).select_from(AuditEntry)) == 0


async def test_the_entry_and_the_change_commit_together(node, monkeypatch):
    """If writing the entry fails, the role change rolls back with it."""
    import admin.audit

    await node.user("ana", "admin")
    await node.user("fiona", "fan")
    original = admin.audit.AuditEntry

    def broken(**kw):
        entry = original(**kw)
        entry.action = None  # NOT NULL: the flush fails inside the transaction
        return entry

    monkeypatch.setattr(admin.audit, "AuditEntry", broken)
    r = await node.client.post(
        "/admin/users/fiona/role.json", json={"role": "curator"}, headers=node.auth("ana")
    )
    assert r.status == 500
    monkeypatch.undo()
    r = await node.client.get("/admin/users/fiona.json", headers=node.auth("ana"))
    assert (await r.json())["user"]["role"] == "fan"
