"""A fan signs up, gets tokens, loses them; a brute-forcer is slowed down."""

from __future__ import annotations

from node.auth import csrf_token, issue_token
from node.middleware import SESSION_COOKIE
from node.services.accounts import get_account


async def test_signup_then_token_then_me_then_revoke(node):
    r = await node.client.post(
        "/api/v1/accounts", json={"username": "rosa nyc!", "password": "long enough pw"}
    )
    assert r.status == 422 and (await r.json())["errors"][0]["field"] == "username"
    r = await node.client.post(
        "/api/v1/accounts", json={"username": "admin", "password": "long enough pw"}
    )
    assert r.status == 422  # reserved
    r = await node.client.post(
        "/api/v1/accounts",
        json={"username": "rosa", "password": "long enough pw", "email": "rosa@example.org"},
    )
    assert r.status == 201, await r.text()
    assert (await r.json())["role"] == "fan"
    r = await node.client.post(
        "/api/v1/accounts", json={"username": "ROSA", "password": "another one!"}
    )
    assert r.status == 409  # names are case-insensitive

    r = await node.client.post(
        "/api/v1/auth/token",
        json={"username": "rosa", "password": "long enough pw", "name": "phone"},
    )
    assert r.status == 201
    body = await r.json()
    token = body["token"]
    h = {"Authorization": f"Bearer {token}"}
    me = await (await node.client.get("/api/v1/me", headers=h)).json()
    assert me["username"] == "rosa" and me["actor"]["uri"].endswith("/actors/rosa")

    tokens = await (await node.client.get("/api/v1/auth/tokens", headers=h)).json()
    assert [t["name"] for t in tokens] == ["phone"]
    assert "token" not in tokens[0]
    r = await node.client.delete(f"/api/v1/auth/tokens/{body['id']}", headers=h)
    assert r.status == 204
    assert (await node.client.get("/api/v1/me", headers=h)).status == 401


async def test_tokens_are_stored_hashed(node):
    token = await node.user("rosa")
    from sqlalchemy import select

    from node.models import Token

    async with node.ctx.db.read_session() as s:
        stored = (await s.scalars(select(Token.token_hash))).all()
    assert token not in stored and all(len(h) == 64 for h in stored)


async def test_wrong_passwords_are_rate_limited_per_user(node):
    await node.user("rosa", password="the right password")
    limit = node.settings.auth.login_attempts
    for _ in range(limit):
        r = await node.client.post(
            "/api/v1/auth/token", json={"username": "rosa", "password": "guess"}
        )
        assert r.status == 401
    r = await node.client.post(
        "/api/v1/auth/token", json={"username": "rosa", "password": "the right password"}
    )
    assert r.status == 429
    assert int(r.headers["Retry-After"]) > 0
    # Unknown users get the same answer as wrong passwords.
    r = await node.client.post(
        "/api/v1/auth/token", json={"username": "ghost", "password": "guess"}
    )
    assert r.status in (401, 429)


async def test_disabled_accounts_lose_their_tokens(node):
    from node.services.accounts import set_disabled

    await node.user("rosa")
    async with node.ctx.db.transaction() as s:
        await set_disabled(s, await get_account(s, "rosa"), True)
    assert (await node.client.get("/api/v1/me", headers=node.auth("rosa"))).status == 401
    r = await node.client.post(
        "/api/v1/auth/token", json={"username": "rosa", "password": "correct horse battery"}
    )
    assert r.status == 401


async def test_cookie_sessions_need_a_csrf_header_for_unsafe_api_calls(node):
    await node.user("jay", "artist")
    async with node.ctx.db.transaction() as s:
        secret, _ = await issue_token(s, await get_account(s, "jay"), "session")
    cookies = {"Cookie": f"{SESSION_COOKIE}={secret}"}
    r = await node.client.get("/api/v1/me", headers=cookies)
    assert r.status == 200
    r = await node.client.post("/api/v1/tracks", json={"title": "x"}, headers=cookies)
    assert r.status == 403
    good = {**cookies, "X-CSRF-Token": csrf_token(node.settings.node.secret_key, secret)}
    r = await node.client.post("/api/v1/tracks", json={"title": "x"}, headers=good)
    assert r.status == 201


async def test_password_change(node):
    await node.user("rosa", password="old password 1")
    r = await node.client.post(
        "/api/v1/me/password",
        json={"old_password": "nope", "new_password": "new password 2"},
        headers=node.auth("rosa"),
    )
    assert r.status == 401
    r = await node.client.post(
        "/api/v1/me/password",
        json={"old_password": "old password 1", "new_password": "short"},
        headers=node.auth("rosa"),
    )
    assert r.status == 422
    r = await node.client.post(
        "/api/v1/me/password",
        json={"old_password": "old password 1", "new_password": "new password 2"},
        headers=node.auth("rosa"),
    )
    assert r.status == 204
    r = await node.client.post(
        "/api/v1/auth/token", json={"username": "rosa", "password": "new password 2"}
    )
    assert r.status == 201
