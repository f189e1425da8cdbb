"""Stories of the console's users and roles: who may look, who may change,
and what the audit log remembers."""

from __future__ import annotations

from sqlalchemy import func, select

from node.models import AuditEntry


async def _audit(node, **filters) -> list[dict]:
    r = await node.client.get("/admin/audit.json", params=filters, headers=node.auth("ana"))
    assert r.status == 200, await r.text()
    return (await r.json())["entries"]


async def _audit_count(node) -> int:
    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(func.count()).select_from(AuditEntry))


async def test_an_admin_promotes_a_fan_to_curator_and_the_audit_log_shows_it(node, browser):
    # Given an admin signed in on the web, and a fan.
    await node.user("ana", "admin")
    await node.user("fiona", "fan")
    secret = await browser.sign_in("ana")

    # When the admin opens the fan's page, it offers a role form with a CSRF token.
    r = await node.client.get("/admin/users/fiona")
    assert r.status == 200
    page = await r.text()
    assert 'action="/admin/users/fiona/role"' in page
    assert f'name="csrf_token" value="{browser.csrf(secret)}"' in page

    # And submits it.
    r = await node.client.post(
        "/admin/users/fiona/role",
        data={
            "role": "curator",
            "reason": "runs the Thursday showcase",
            "csrf_token": browser.csrf(secret),
        },
    )
    # Then the browser lands back on the user's page with a notice.
    assert r.status == 200
    assert str(r.url.path) == "/admin/users/fiona"
    page = await r.text()
    assert "fiona is now curator." in page
    assert 'class="a-badge a-role-curator"' in page
    # The notice is shown once.
    assert "fiona is now curator." not in await (await node.client.get("/admin/users/fiona")).text()

    # And the audit log has one entry with who, what, before and after, and where from.
    entries = await _audit(node, action="user.role")
    assert len(entries) == 1
    e = entries[0]
    assert e["username"] == "ana" and e["target"] == "user:fiona"
    assert e["details"] == {
        "before": {"role": "fan"},
        "after": {"role": "curator"},
        "reason": "runs the Thursday showcase",
    }
    assert e["ip"] == "127.0.0.1" and e["at"].endswith("Z")
    html = await (await node.client.get("/admin/audit")).text()
    assert "Changed a role" in html and 'href="/admin/users/fiona"' in html

    # And fiona, now a curator, can open the console.
    r = await node.client.get("/admin/dashboard.json", headers=node.auth("fiona"))
    assert r.status == 200


async def test_a_curator_can_look_but_not_change_roles(node, browser):
    await node.user("ana", "admin")
    await node.user("cleo", "curator")
    await node.user("fiona", "fan", email="fiona@example.org")
    secret = await browser.sign_in("cleo")

    # Curators see users (without their email addresses) and the audit log.
    r = await node.client.get("/admin/users.json", headers=node.auth("cleo"))
    assert r.status == 200
    users = (await r.json())["users"]
    assert {u["username"] for u in users} == {"ana", "cleo", "fiona"}
    assert all("email" not in u for u in users)
    r = await node.client.get("/admin/users/fiona")
    assert r.status == 200
    page = await r.text()
    assert "Only admins change roles" in page and "/admin/users/fiona/role" not in page
    assert (await node.client.get("/admin/audit")).status == 200
    # Jobs are operations, the admin's.
    assert (await node.client.get("/admin/jobs")).status == 403
    nav = await (await node.client.get("/admin/dashboard")).text()
    assert 'href="/admin/users"' in nav and 'href="/admin/jobs"' not in nav

    # But changing a role is refused, by form and by script, and nothing is logged.
    r = await node.client.post(
        "/admin/users/fiona/role", data={"role": "admin", "csrf_token": browser.csrf(secret)}
    )
    assert r.status == 403
    r = await node.client.post(
        "/admin/users/fiona/role.json", json={"role": "admin"}, headers=node.auth("cleo")
    )
    assert r.status == 403
    assert r.content_type == "application/problem+json"
    assert (await r.json())["detail"] == "needs the admin role"
    assert await _audit_count(node) == 0
    r = await node.client.get("/admin/users/fiona.json", headers=node.auth("ana"))
    assert (await r.json())["user"]["role"] == "fan"


async def test_disabling_an_account_signs_it_out_everywhere(node, browser):
    await node.user("ana", "admin")
    await node.user("cleo", "curator")
    cleo_session = await browser.session("cleo")
    assert (
        await node.client.get("/admin/dashboard", headers=browser.cookie(cleo_session))
    ).status == 200
    assert (await node.client.get("/api/v1/me", headers=node.auth("cleo"))).status == 200

    r = await node.client.post(
        "/admin/users/cleo/disable.json",
        json={"reason": "shared their password"},
        headers=node.auth("ana"),
    )
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["changed"] is True and body["user"]["disabled"] is True

    # Her browser session no longer counts: the console sends her to sign in.
    r = await node.client.get(
        "/admin/dashboard", headers=browser.cookie(cleo_session), allow_redirects=False
    )
    assert r.status == 302
    assert r.headers["Location"] == "/login?next=/admin/dashboard"
    # And her API token is dead.
    assert (await node.client.get("/api/v1/me", headers=node.auth("cleo"))).status == 401
    detail = await (
        await node.client.get("/admin/users/cleo.json", headers=node.auth("ana"))
    ).json()
    assert detail["tokens"] == {"session": 0, "api": 0}
    assert detail["actions"]["enable"] == "/admin/users/cleo/enable.json"

    # Enabling lets her sign in again, but old sessions stay revoked.
    r = await node.client.post("/admin/users/cleo/enable.json", headers=node.auth("ana"))
    assert r.status == 200 and (await r.json())["user"]["disabled"] is False
    r = await node.client.get(
        "/admin/dashboard", headers=browser.cookie(cleo_session), allow_redirects=False
    )
    assert r.status == 302
    # Enabling twice changes nothing and logs nothing more.
    r = await node.client.post("/admin/users/cleo/enable.json", headers=node.auth("ana"))
    assert (await r.json())["changed"] is False

    entries = await _audit(node, target="user:cleo")
    assert [e["action"] for e in entries] == ["user.enable", "user.disable"]
    assert entries[1]["details"]["reason"] == "shared their password"


async def test_the_last_admin_cannot_demote_or_disable_themselves(node, browser):
    await node.user("ana", "admin")
    secret = await browser.sign_in("ana")

    r = await node.client.post(
        "/admin/users/ana/role.json", json={"role": "curator"}, headers=node.auth("ana")
    )
    assert r.status == 409
    problem = await r.json()
    assert "last active admin" in problem["detail"]
    r = await node.client.post("/admin/users/ana/disable.json", headers=node.auth("ana"))
    assert r.status == 409

    # In the browser the form comes back with the reason, not an error page.
    r = await node.client.post(
        "/admin/users/ana/role", data={"role": "fan", "csrf_token": browser.csrf(secret)}
    )
    assert r.status == 409
    page = await r.text()
    assert "ana is the last active admin; make another account an admin first" in page
    assert 'aria-current="page"' in page  # still inside the console layout

    # Once there is another admin, stepping down is allowed.
    await node.user("ben", "admin")
    r = await node.client.post(
        "/admin/users/ana/role.json", json={"role": "curator"}, headers=node.auth("ana")
    )
    assert r.status == 200
    # And ben, now the last, is protected in turn, from being disabled as well.
    r = await node.client.post("/admin/users/ben/disable.json", headers=node.auth("ben"))
    assert r.status == 409
    r = await node.client.get("/admin/users/ana.json", headers=node.auth("ben"))
    assert (await r.json())["user"]["role"] == "curator"


async def test_an_admin_creates_an_account(node, browser):
    await node.user("ana", "admin")
    secret = await browser.sign_in("ana")

    r = await node.client.post(
        "/admin/users",
        data={
            "username": "Dee_Jay",
            "password": "long enough secret",
            "email": "dee@example.org",
            "role": "artist",
            "csrf_token": browser.csrf(secret),
        },
    )
    assert r.status == 200
    assert str(r.url.path) == "/admin/users/dee_jay"
    assert "Created dee_jay (artist)." in await r.text()

    # The new account can sign in with the API.
    node.client.session.cookie_jar.clear()
    r = await node.client.post(
        "/api/v1/auth/token", json={"username": "dee_jay", "password": "long enough secret"}
    )
    assert r.status == 201

    # By script too, answered 201 with the account.
    r = await node.client.post(
        "/admin/users.json",
        json={"username": "mc_two", "password": "another secret"},
        headers=node.auth("ana"),
    )
    assert r.status == 201
    assert (await r.json())["user"]["role"] == "fan"

    entries = await _audit(node, action="user.create")
    assert [e["target"] for e in entries] == ["user:mc_two", "user:dee_jay"]
    assert entries[1]["details"] == {"after": {"role": "artist", "email": "dee@example.org"}}
    assert "password" not in str(entries)


async def test_bad_account_input_is_explained_not_crashed_on(node, browser):
    await node.user("ana", "admin")
    await node.user("fiona", "fan")
    secret = await browser.sign_in("ana")
    token = browser.csrf(secret)

    # A taken name, by form: the form comes back filled in (but the password), with the reason.
    r = await node.client.post(
        "/admin/users",
        data={
            "username": "fiona",
            "password": "long enough secret",
            "role": "curator",
            "csrf_token": token,
        },
    )
    assert r.status == 409
    page = await r.text()
    assert "the name &#39;fiona&#39; is taken" in page
    assert 'value="fiona"' in page and "long enough secret" not in page
    assert '<details class="a-panel" open>' in page

    # Too short a password and an unknown role, by script: every problem listed.
    r = await node.client.post(
        "/admin/users.json",
        json={"username": "x", "password": "short", "role": "king"},
        headers=node.auth("ana"),
    )
    assert r.status == 422
    problem = await r.json()
    assert {e["field"] for e in problem["errors"]} == {"role"}
    r = await node.client.post(
        "/admin/users.json", json={"username": "x", "password": "short"}, headers=node.auth("ana")
    )
    assert r.status == 422
    assert {e["field"] for e in (await r.json())["errors"]} == {"username", "password"}

    # A role that does not exist, unknown fields, wrong types, not JSON at all.
    cases = [
        ({"role": "emperor"}, 422),
        ({"role": "admin", "extra": 1}, 422),
        ({"role": 3}, 422),
        ({}, 422),
    ]
    for body, status in cases:
        r = await node.client.post(
            "/admin/users/fiona/role.json", json=body, headers=node.auth("ana")
        )
        assert r.status == status, (body, await r.text())
        assert r.content_type == "application/problem+json"
    r = await node.client.post(
        "/admin/users/fiona/role.json",
        data="role=admin",
        headers={**node.auth("ana"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 415
    r = await node.client.post(
        "/admin/users/fiona/role.json",
        data="{not json",
        headers={**node.auth("ana"), "Content-Type": "application/json"},
    )
    assert r.status == 400
    r = await node.client.post(
        "/admin/users/fiona/disable.json", json=[1, 2], headers=node.auth("ana")
    )
    assert r.status == 422

    # A tampered role select in the form: re-rendered with the message.
    r = await node.client.post(
        "/admin/users/fiona/role", data={"role": "emperor", "csrf_token": token}
    )
    assert r.status == 422
    assert "must be one of fan, artist, curator, admin" in await r.text()

    # Nobody by that name: 404, as a page and as a problem.
    assert (await node.client.get("/admin/users/nobody")).status == 404
    r = await node.client.get("/admin/users/nobody.json", headers=node.auth("ana"))
    assert r.status == 404 and (await r.json())["detail"] == "no user 'nobody'"
    r = await node.client.post("/admin/users/nobody/disable", data={"csrf_token": token})
    assert r.status == 404

    # Bad filters and cursors.
    for query in (
        {"role": "king"},
        {"status": "sleepy"},
        {"order": "random"},
        {"limit": "0"},
        {"cursor": "!!"},
    ):
        r = await node.client.get("/admin/users.json", params=query, headers=node.auth("ana"))
        assert r.status == 400, query
    assert (await node.client.get("/admin/users", params={"cursor": "bm9wZQ"})).status == 400
    assert await _audit_count(node) == 0


async def test_forms_need_the_csrf_token_of_the_session(node, browser):
    await node.user("ana", "admin")
    await node.user("fiona", "fan")
    secret = await browser.sign_in("ana")
    other = await browser.session("ana")

    for data in (
        {"role": "artist"},
        {"role": "artist", "csrf_token": "forged"},
        {"role": "artist", "csrf_token": browser.csrf(other)},
    ):
        r = await node.client.post("/admin/users/fiona/role", data=data)
        assert r.status == 403, data
        assert "security token" in await r.text()
    # The JSON twin with the cookie needs the X-CSRF-Token header.
    r = await node.client.post("/admin/users/fiona/role.json", json={"role": "artist"})
    assert r.status == 403
    r = await node.client.post(
        "/admin/users/fiona/role.json",
        json={"role": "artist"},
        headers={"X-CSRF-Token": browser.csrf(secret)},
    )
    assert r.status == 200
    # A Bearer token is not ambient, so it needs none (even if a cookie rides along).
    r = await node.client.post(
        "/admin/users/fiona/role.json", json={"role": "fan"}, headers=node.auth("ana")
    )
    assert r.status == 200
    assert await _audit_count(node) == 2


async def test_users_are_searched_filtered_and_paged(node):
    await node.user("ana", "admin")
    names = ["bx_kid", "bx_queen", "bk_lou", "qn_ray", "bx_zed", "si_sam", "bx_amy"]
    for i, name in enumerate(names):
        await node.user(name, "artist" if i % 2 else "fan")
    r = await node.client.post("/admin/users/bx_zed/disable.json", headers=node.auth("ana"))
    assert r.status == 200

    async def walk(params: dict) -> list[str]:
        seen, url = [], "/admin/users.json"
        pages = 0
        while url:
            r = await node.client.get(
                url, params=params if url == "/admin/users.json" else None, headers=node.auth("ana")
            )
            assert r.status == 200, await r.text()
            body = await r.json()
            assert len(body["users"]) <= 2
            seen += [u["username"] for u in body["users"]]
            url = body["next"]
            pages += 1
        return seen

    assert await walk({"limit": "2"}) == sorted(["ana", *names])
    assert await walk({"q": "BX_", "limit": "2"}) == ["bx_amy", "bx_kid", "bx_queen", "bx_zed"]
    assert await walk({"q": "_", "role": "artist", "limit": "2"}) == sorted(
        n for i, n in enumerate(names) if i % 2
    )
    assert await walk({"status": "disabled", "limit": "2"}) == ["bx_zed"]
    newest = await walk({"order": "newest", "limit": "2"})
    assert newest == ["bx_amy", "si_sam", "bx_zed", "qn_ray", "bk_lou", "bx_queen", "bx_kid", "ana"]
    # "%" and "_" are matched literally, not as LIKE wildcards.
    assert await walk({"q": "%"}) == []

    # The HTML page pages the same way, keeping its filters in the links.
    r = await node.client.get(
        "/admin/users", params={"q": "bx", "limit": "2"}, headers=node.auth("ana")
    )
    page = await r.text()
    assert "bx_amy" in page and "bx_queen" not in page
    assert 'rel="next"' in page and "q=bx" in page
