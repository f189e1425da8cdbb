"""Sign-up, sign-in and sign-out for the web, and the small account page.

A web login is a `session` token (node.auth) in the HttpOnly `nycmg_session`
cookie; the auth middleware resolves it on every request. Sign-in goes
through `node.services.accounts.login`, so the same rate limit guards the
form and the API. Every form carries a CSRF token (web.csrf). A refused
form is shown again with the visitor's input and what to fix, never a 500.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from sqlalchemy import select

from node.appkeys import ACCOUNT, CTX, SESSION_SECRET
from node.auth import hash_token, issue_token, revoke_token
from node.errors import (
    BadRequest,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from node.middleware import SESSION_COOKIE
from node.models import Account, Token
from node.services import accounts
from node.validation import EMAIL_RE
from node.web_helpers import client_ip

from . import csrf, following
from .render import redirect, render, route_url

FORM_LIMIT = 64 * 1024
_NO_RETURN = ("/login", "/logout", "/signup")
_EMPTY = {
    "username": "",
    "email": "",
    "name": "",
    "role": "fan",
    "borough": "",
    "genres": "",
    "next": "",
}


def safe_next(value: str | None) -> str | None:
    """`value` if it is a path on this site (never another host: no open redirect)."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith(_NO_RETURN):
        return None
    return value


async def read_form(request: web.Request) -> dict[str, str]:
    """The site's forms are small and url-encoded: read at most FORM_LIMIT bytes of one.

    (aiohttp's `request.post()` would accept anything up to the app's upload
    limit, which is sized for audio files.)
    """
    if request.content_length is not None and request.content_length > FORM_LIMIT:
        raise PayloadTooLarge("This form is larger than the site accepts.")
    if request.content_type != "application/x-www-form-urlencoded":
        return {}
    raw = await request.content.read(FORM_LIMIT + 1)
    if len(raw) > FORM_LIMIT:
        raise PayloadTooLarge("This form is larger than the site accepts.")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("This form could not be read.") from None
    return dict(pairs)


def _set_session_cookie(request: web.Request, response: web.StreamResponse, secret: str) -> None:
    settings = request.config_dict[CTX].settings
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=settings.auth.session_days * 86400,
        httponly=True,
        samesite="Lax",
        secure=settings.node.scheme == "https",
        path="/",
    )


async def _start_session(request: web.Request, session: Any, account: Account) -> str:
    days = request.config_dict[CTX].settings.auth.session_days
    agent = request.headers.get("User-Agent", "")[:80]
    secret, _ = await issue_token(
        session, account, kind="session", name=f"web: {agent}", lifetime=timedelta(days=days)
    )
    return secret


async def _end_session(request: web.Request) -> None:
    """Revoke the session token this request carries, if any."""
    secret = request.get(SESSION_SECRET) or request.cookies.get(SESSION_COOKIE)
    if not secret:
        return
    ctx = request.config_dict[CTX]
    async with ctx.db.transaction() as s:
        token_id = await s.scalar(
            select(Token.id).where(Token.token_hash == hash_token(secret), Token.kind == "session")
        )
        if token_id is not None:
            await revoke_token(s, token_id)


# ---- sign in --------------------------------------------------------------


def _login_page(
    request: web.Request,
    *,
    username: str = "",
    next_url: str | None = None,
    error: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return render(
        request,
        "login.html",
        {"username": username, "next": next_url or "", "error": error},
        status=status,
        headers=headers,
    )


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request, next_url=safe_next(request.query.get("next")))


async def login_submit(request: web.Request) -> web.Response:
    form = await read_form(request)
    csrf.require(request, form)
    ctx = request.config_dict[CTX]
    username = form.get("username", "").strip()[:64]
    password = form.get("password", "")[:1024]
    next_url = safe_next(form.get("next"))
    if not username or not password:
        return _login_page(
            request,
            username=username,
            next_url=next_url,
            status=422,
            error="Enter your username and your password.",
        )
    try:
        account = await accounts.login(ctx, username, password, client_ip(request))
    except RateLimited as e:
        minutes = max(1, (e.retry_after + 59) // 60)
        return _login_page(
            request,
            username=username,
            next_url=next_url,
            status=429,
            headers={"Retry-After": str(e.retry_after)},
            error=f"Too many failed sign-ins. For your account's safety, wait {minutes} minutes and try again.",
        )
    except Unauthorized:
        return _login_page(
            request,
            username=username,
            next_url=next_url,
            status=401,
            error="That username and password do not match. Check them and try again.",
        )
    await _end_session(request)  # switching accounts: the old session ends here
    async with ctx.db.transaction() as s:
        account = await s.merge(account)
        secret = await _start_session(request, s, account)
    response = redirect(request, next_url or route_url(request, "web.home"))
    _set_session_cookie(request, response, secret)
    return response


# ---- sign up --------------------------------------------------------------


def _check_signup(request: web.Request, values: dict[str, str]) -> list[dict[str, str]]:
    """Every problem with a sign-up form at once (the service checks again)."""
    boroughs = request.config_dict[CTX].settings.node.boroughs
    problems = accounts.check_new_account(values["username"], values["password"], values["role"])
    if values["role"] not in ("fan", "artist"):
        problems = [p for p in problems if p["field"] != "role"]
        problems.append({"field": "role", "message": "Choose listener or artist."})
    if values["email"] and not EMAIL_RE.match(values["email"]):
        problems.append({"field": "email", "message": "That does not look like an email address."})
    if len(values["name"]) > 200:
        problems.append({"field": "name", "message": "At most 200 characters."})
    if values["borough"] and values["borough"] not in boroughs:
        problems.append({"field": "borough", "message": "Pick one of the boroughs listed."})
    genres = _genres(values["genres"])
    if len(genres) > 10 or any(len(g) > 40 for g in genres):
        problems.append(
            {"field": "genres", "message": "Up to 10 genres, each at most 40 characters."}
        )
    return problems


def _genres(raw: str) -> list[str]:
    out: list[str] = []
    for part in raw.split(","):
        g = " ".join(part.split()).lower()
        if g and g not in out:
            out.append(g)
    return out


def _sentence(message: str) -> str:
    """The services speak in fragments ("at least 8 characters"); forms speak in sentences."""
    message = message.strip()
    if not message:
        return message
    message = message[0].upper() + message[1:]
    return message if message.endswith((".", "?", "!")) else message + "."


def _signup_page(
    request: web.Request,
    values: dict[str, str] | None = None,
    errors: list[dict[str, str]] | None = None,
    status: int = 200,
) -> web.Response:
    values = values or dict(_EMPTY)
    by_field: dict[str, str] = {}
    for e in errors or []:
        by_field.setdefault(e.get("field") or "form", _sentence(e.get("message", "")))
    return render(
        request,
        "signup.html",
        {"values": values, "errors": by_field, "error_count": len(errors or [])},
        status=status,
    )


async def signup_form(request: web.Request) -> web.Response:
    if not request.config_dict[CTX].settings.node.open_registration:
        return render(request, "signup_closed.html", status=403)
    return _signup_page(request, {**_EMPTY, "next": safe_next(request.query.get("next")) or ""})


async def signup_submit(request: web.Request) -> web.Response:
    ctx = request.config_dict[CTX]
    form = await read_form(request)
    csrf.require(request, form)
    if not ctx.settings.node.open_registration:
        return render(request, "signup_closed.html", status=403)
    values = {
        "username": form.get("username", "").strip().lower()[:64],
        "password": form.get("password", "")[:2048],
        "email": form.get("email", "").strip().lower()[:255],
        "name": " ".join(form.get("name", "").split())[:300],
        "role": form.get("role", "fan"),
        "borough": form.get("borough", "").strip()[:64],
        "genres": form.get("genres", "")[:600],
        "next": safe_next(form.get("next")) or "",
    }
    shown = {k: v for k, v in values.items() if k != "password"}
    problems = _check_signup(request, values)
    if problems:
        return _signup_page(request, shown, problems, status=422)
    is_artist = values["role"] == "artist"
    try:
        async with ctx.db.transaction() as s:
            account = await accounts.create_account(
                ctx,
                s,
                values["username"],
                values["password"],
                values["role"],
                email=values["email"] or None,
                name=values["name"] or None,
                borough=(values["borough"] or None) if is_artist else None,
                genres=_genres(values["genres"]) if is_artist else None,
            )
            secret = await _start_session(request, s, account)
    except ValidationFailed as e:
        return _signup_page(request, shown, e.errors, status=422)
    except Conflict as e:
        field = e.extra.get("field", "username")
        message = (
            "That name is taken. Try another."
            if field == "username"
            else "An account with this email exists. Sign in instead?"
        )
        return _signup_page(request, shown, [{"field": field, "message": message}], status=409)
    if values["next"]:
        target = values["next"]
    elif is_artist:
        target = str(route_url(request, "web.artist", handle=account.username))
    else:
        target = str(route_url(request, "web.home"))
    response = redirect(request, target)
    _set_session_cookie(request, response, secret)
    return response


# ---- sign out, account ----------------------------------------------------


async def logout_form(request: web.Request) -> web.Response:
    """GET /logout asks first: signing out is a POST (with CSRF), never a link."""
    if request.get(ACCOUNT) is None:
        return redirect(request, route_url(request, "web.home"), status=302)
    return render(request, "logout.html")


async def logout_submit(request: web.Request) -> web.Response:
    form = await read_form(request)
    csrf.require(request, form)
    await _end_session(request)
    response = redirect(request, route_url(request, "web.home"))
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def me(request: web.Request) -> web.Response:
    account = request.get(ACCOUNT)
    if account is None:
        return redirect(
            request, route_url(request, "web.login", query={"next": request.path}), status=302
        )
    follows = await following.me_context(request, account)
    return render(request, "me.html", {"me": account, "actor": account.actor, **follows})


def setup_routes(app: web.Application) -> None:
    # One resource per path, GET shows the form and POST submits it.
    for path, name, show, submit in (
        ("/login", "web.login", login_form, login_submit),
        ("/signup", "web.signup", signup_form, signup_submit),
        ("/logout", "web.logout", logout_form, logout_submit),
    ):
        resource = app.router.add_resource(path, name=name)
        resource.add_route("GET", show)
        resource.add_route("POST", submit)
    app.router.add_get("/me", me, name="web.me")
