"""`/me/subsonic`: a signed-in user sets the password their Subsonic app uses
and makes or revokes OpenSubsonic API keys.

The Subsonic password is separate from the login password (the protocol's
token auth needs it stored recoverably; see media/subsonic/credentials.py).
A new API key is shown once, on the page that created it, and never again.
"""

from __future__ import annotations

from aiohttp import web

from media.subsonic import credentials
from node.appkeys import ACCOUNT, CTX

from . import csrf
from .accounts import read_form
from .flash import set_flash
from .render import redirect, render, route_url

MAX_KEYS = 20


async def _page(request: web.Request, *, error: str = "", new_key: str = "", status: int = 200):
    account = request[ACCOUNT]
    ctx = request.config_dict[CTX]
    async with ctx.db.read_session() as s:
        has_password = await credentials.has_password(s, account)
        keys = await credentials.api_keys_of(s, account)
    return render(
        request,
        "subsonic.html",
        {
            "me": account,
            "server_url": ctx.settings.base_url,
            "has_password": has_password,
            "keys": keys,
            "error": error,
            "new_key": new_key,
            "min_password": credentials.MIN_PASSWORD,
        },
        status=status,
        headers={"Cache-Control": "no-store"},
    )


def _signed_in(request: web.Request) -> web.Response | None:
    if request.get(ACCOUNT) is None:
        return redirect(
            request, route_url(request, "web.login", query={"next": request.path}), status=302
        )
    return None


async def show(request: web.Request) -> web.StreamResponse:
    return _signed_in(request) or await _page(request)


async def submit(request: web.Request) -> web.StreamResponse:
    away = _signed_in(request)
    if away is not None:
        return away
    form = await read_form(request)
    csrf.require(request, form)
    account = request[ACCOUNT]
    ctx = request.config_dict[CTX]
    action = form.get("action", "")
    back = redirect(request, route_url(request, "web.subsonic"))
    if action == "set_password":
        password = form.get("password", "")
        problem = credentials.check_password_rules(password)
        if problem is None and password != form.get("confirm", ""):
            problem = "the two passwords differ"
        if problem is not None:
            return await _page(request, error=f"The Subsonic password {problem}.", status=422)
        async with ctx.db.transaction() as s:
            await credentials.set_password(s, ctx.settings.node.secret_key, account, password)
        set_flash(request, back, "ok", "Your Subsonic password is set.")
        return back
    if action == "clear_password":
        async with ctx.db.transaction() as s:
            await credentials.clear_password(s, account)
        set_flash(request, back, "ok", "Subsonic password removed: apps using it are signed out.")
        return back
    if action == "create_key":
        name = form.get("name", "").strip()[:100] or "Subsonic app"
        async with ctx.db.transaction() as s:
            if len(await credentials.api_keys_of(s, account)) >= MAX_KEYS:
                key = ""
            else:
                key = await credentials.create_api_key(s, account, name)
        if not key:
            return await _page(
                request, error=f"You have {MAX_KEYS} keys; revoke one first.", status=422
            )
        return await _page(request, new_key=key)
    if action == "revoke_key":
        raw = form.get("key_id", "")
        async with ctx.db.transaction() as s:
            done = raw.isdigit() and await credentials.revoke_api_key(s, account, int(raw))
        set_flash(
            request, back, "ok" if done else "error", "Key revoked." if done else "No such key."
        )
        return back
    return await _page(request, error="Unknown action.", status=400)


def setup(app: web.Application) -> None:
    resource = app.router.add_resource("/me/subsonic", name="web.subsonic")
    resource.add_route("GET", show)
    resource.add_route("POST", submit)
