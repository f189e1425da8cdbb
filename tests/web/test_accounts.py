"""A visitor signs up, signs in and out on the web. Every form carries a CSRF
token; mistakes come back as the same form with the visitor's input and
what to fix; too many wrong passwords slow an attacker down politely."""

from __future__ import annotations

import re

from sqlalchemy import select

from node.middleware import SESSION_COOKIE
from node.models import Account, Token

TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


async def form_token(client, path: str) -> str:
    r = await client.get(path)
    assert r.status == 200, await r.text()
    return TOKEN_RE.search(await r.text()).group(1)


def session_cookie(client) -> str | None:
    for cookie in client.session.cookie_jar:
        if cookie.key == SESSION_COOKIE:
            return cookie.value
    return None


async def signup(client, **fields) -> object:
    token = await form_token(client, "/signup")
    data = {"csrf_token": token, "role": "fan", **fields}
    return await client.post("/signup", data=data, allow_redirects=False)


async def login(client, username: str, password: str, next_url: str | None = None):
    token = await form_token(client, "/login" + (f"?next={next_url}" if next_url else ""))
    data = {"csrf_token": token, "username": username, "password": password}
    if next_url:
        data["next"] = next_url
    return await client.post("/login", data=data, allow_redirects=False)


async def test_a_fan_signs_up_and_is_signed_in(node):
    r = await signup(
        node.client, username="maya", password="long enough pw", email="maya@example.org"
    )
    assert r.status == 303 and r.headers["Location"] == "/"
    set_cookie = r.headers.getall("Set-Cookie")
    session = next(c for c in set_cookie if c.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in session and "SameSite=Lax" in session and "Secure" not in session
    assert f"Max-Age={30 * 86400}" in session
    html = await (await node.client.get("/")).text()
    assert "@maya" in html and 'name="csrf-token"' in html and "Sign out" in html
    me = await (await node.client.get("/me")).text()
    assert "maya@example.org" in me and "Fan" in me and "Admin console" not in me
    assert 'href="/me/subsonic"' in me  # where a fan sets a password for Subsonic apps
    async with node.ctx.db.read_session() as s:
        account = await s.scalar(select(Account).where(Account.username == "maya"))
        assert account.role == "fan"


async def test_an_artist_signs_up_with_a_borough_and_lands_on_their_page(node):
    r = await signup(
        node.client,
        username="kofi",
        password="afrobeat forever",
        role="artist",
        name="Kofi & Friends",
        borough="Bronx",
        genres="Afrobeat, funk, afrobeat",
    )
    assert r.status == 303 and r.headers["Location"] == "/@kofi"
    html = await (await node.client.get("/@kofi")).text()
    assert "Kofi &amp; Friends" in html and "Bronx" in html
    assert "afrobeat" in html and "funk" in html
    assert "You can see drafts here because this is your page" in html


async def test_a_bad_signup_comes_back_with_every_problem_and_the_input_kept(node):
    r = await signup(
        node.client,
        username="No Spaces!",
        password="short",
        email="not-an-email",
        name="Maya <b>",
        role="artist",
        borough="Atlantis",
    )
    assert r.status == 422
    html = await r.text()
    assert "Please fix these 4 things" in html
    assert "2-30 characters" in html and "At least 8 characters." in html
    assert "does not look like an email" in html and "Pick one of the boroughs" in html
    assert 'value="no spaces!"' in html and 'value="not-an-email"' in html
    assert 'value="Maya &lt;b&gt;"' in html
    assert "short" not in re.findall(r'type="password"[^>]*', html)[0]  # never echo a password
    assert 'id="role-artist" checked' in html
    assert session_cookie(node.client) is None


async def test_taken_and_reserved_names_and_roles_one_may_not_pick(node):
    await node.user("jay", "artist")
    r = await signup(node.client, username="jay", password="long enough pw")
    assert r.status == 409 and "That name is taken" in await r.text()
    r = await signup(node.client, username="admin", password="long enough pw")
    assert r.status == 422 and "reserved" in await r.text()
    r = await signup(node.client, username="sneaky", password="long enough pw", role="admin")
    assert r.status == 422 and "Choose listener or artist" in await r.text()
    async with node.ctx.db.read_session() as s:
        assert await s.scalar(select(Account).where(Account.username == "sneaky")) is None


async def test_forms_without_a_valid_csrf_token_are_refused_with_a_403_page(node):
    await node.user("maya", "fan")
    for path, data in [
        ("/login", {"username": "maya", "password": "correct horse battery"}),
        ("/signup", {"username": "newbie", "password": "long enough pw"}),
        ("/logout", {}),
    ]:
        r = await node.client.post(path, data=data, allow_redirects=False)
        assert r.status == 403, path
        html = await r.text()
        assert "Not allowed" in html and "reload the page" in html
        r = await node.client.post(
            path, data={**data, "csrf_token": "forged"}, allow_redirects=False
        )
        assert r.status == 403
    assert session_cookie(node.client) is None
    # A token from one visitor's cookie is worthless with another's.
    token = await form_token(node.client, "/login")
    node.client.session.cookie_jar.clear()
    r = await node.client.post(
        "/login",
        data={"csrf_token": token, "username": "maya", "password": "correct horse battery"},
    )
    assert r.status == 403


async def test_sign_in_then_return_to_the_page_one_came_from(node):
    await node.user("maya", "fan")
    r = await login(node.client, "maya", "correct horse battery", next_url="/events")
    assert r.status == 303 and r.headers["Location"] == "/events"
    assert session_cookie(node.client)
    html = await (await node.client.get("/events")).text()
    assert "@maya" in html


async def test_sign_in_never_redirects_to_another_site(node):
    await node.user("maya", "fan")
    for evil in (
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
        "/logout",
    ):
        r = await login(node.client, "maya", "correct horse battery", next_url=evil)
        assert r.status == 303 and r.headers["Location"] == "/", evil


async def test_a_wrong_password_shows_the_form_again(node):
    await node.user("maya", "fan")
    r = await login(node.client, "maya", "wrong password")
    assert r.status == 401
    html = await r.text()
    assert "do not match" in html and 'value="maya"' in html
    assert session_cookie(node.client) is None
    r = await login(node.client, "", "")
    assert r.status == 422 and "Enter your username" in await r.text()


async def test_too_many_wrong_passwords_get_a_friendly_429(node):
    await node.user("maya", "fan")
    limit = node.settings.auth.login_attempts
    for _ in range(limit):
        assert (await login(node.client, "maya", "guess")).status == 401
    r = await login(node.client, "maya", "correct horse battery")  # even the right one, for now
    assert r.status == 429
    assert int(r.headers["Retry-After"]) > 0
    html = await r.text()
    assert "Too many failed sign-ins" in html and "minutes" in html
    assert session_cookie(node.client) is None


async def test_signing_out_revokes_the_session(node):
    await node.user("maya", "fan")
    await login(node.client, "maya", "correct horse battery")
    secret = session_cookie(node.client)
    html = await (await node.client.get("/")).text()
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)
    # The token in the page works for the JSON API too (X-CSRF-Token).
    r = await node.client.get("/api/v1/me")
    assert r.status == 200 and (await r.json())["username"] == "maya"

    confirm = await (await node.client.get("/logout")).text()
    assert "Sign out?" in confirm
    r = await node.client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/"
    assert session_cookie(node.client) in (None, "")
    async with node.ctx.db.read_session() as s:
        rows = (await s.scalars(select(Token).where(Token.kind == "session"))).all()
        assert len(rows) == 1 and rows[0].revoked_at is not None
    # The old cookie no longer signs anyone in.
    r = await node.client.get(
        "/me", headers={"Cookie": f"{SESSION_COOKIE}={secret}"}, allow_redirects=False
    )
    assert r.status == 302 and r.headers["Location"].startswith("/login?next=/me")


async def test_the_account_page_links_curators_to_the_console(node):
    await node.user("cur", "curator")
    await login(node.client, "cur", "correct horse battery")
    html = await (await node.client.get("/me")).text()
    assert "Admin console" in html and 'href="/admin/"' in html


async def test_session_cookies_are_secure_on_https_nodes(node_with):
    n = await node_with(**{"node.scheme": "https"})
    await n.user("maya", "fan")
    r = await n.client.get("/login")
    csrf_cookie = next(c for c in r.headers.getall("Set-Cookie") if c.startswith("nycmg_csrf="))
    assert "Secure" in csrf_cookie  # so the client, on plain http here, will not send it back
    nonce = csrf_cookie.split(";")[0].split("=", 1)[1]
    token = TOKEN_RE.search(await r.text()).group(1)
    data = {"csrf_token": token, "username": "maya", "password": "correct horse battery"}
    r = await n.client.post(
        "/login", data=data, headers={"Cookie": f"nycmg_csrf={nonce}"}, allow_redirects=False
    )
    assert r.status == 303
    cookies = r.headers.getall("Set-Cookie")
    session = next(c for c in cookies if c.startswith(SESSION_COOKIE + "="))
    assert "Secure" in session and "HttpOnly" in session


async def test_closed_registration(node_with):
    n = await node_with(**{"node.open_registration": False})
    r = await n.client.get("/signup")
    assert r.status == 403 and "Sign-up is closed" in await r.text()
    header = (await (await n.client.get("/")).text()).split("<main")[0]
    assert 'href="/signup"' not in header
    token = await form_token(n.client, "/login")
    r = await n.client.post(
        "/signup", data={"csrf_token": token, "username": "maya", "password": "long enough pw"}
    )
    assert r.status == 403


async def test_odd_form_bodies_are_refused_cleanly(node):
    token = await form_token(node.client, "/login")
    r = await node.client.post(
        "/login",
        data=b"csrf_token=" + token.encode() + b"&username=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 400 and "could not be read" in await r.text()
    r = await node.client.post(
        "/login",
        data="x=" + "a" * 70_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status == 413
    r = await node.client.post("/login", json={"username": "x"})
    assert r.status == 403  # not a form: no token
    many = "&".join(f"f{i}=1" for i in range(100))
    r = await node.client.post(
        "/login", data=many, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status == 400
