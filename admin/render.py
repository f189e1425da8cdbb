"""Turning a page's data into HTML or JSON: the console's own jinja2
environment (autoescaped), its layout context, flash notices and error pages.

The console renders with its own environment and templates, apart from the
public site's (DESIGN.md 1: `admin` does not import `web`); it shares only
the site's stylesheet and login page, by URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web

from node.appkeys import ACCOUNT, CTX, HTML_ERROR, SESSION_SECRET
from node.auth import csrf_token, has_role
from node.errors import NodeError
from node.models import ROLES

if TYPE_CHECKING:
    from .console import Console, Page, View

LOGIN_URL = "/login"  # served by the public site (web/); linked, never imported
LOGOUT_URL = "/logout"
SITE_CSS = "/static/site.css"
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
NOTICE_COOKIE = "nycmg_admin_notice"
JINJA: web.AppKey[jinja2.Environment] = web.AppKey("admin_jinja", jinja2.Environment)
CONSOLE_KEY: web.AppKey[Any] = web.AppKey("admin_console", object)
# The console's own router, so URLs resolve the same from any middleware.
ROUTER: web.AppKey[web.UrlDispatcher] = web.AppKey("admin_router", web.UrlDispatcher)


def make_environment() -> jinja2.Environment:
    """One environment per console app; autoescape everywhere, whatever the extension."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["dt"] = format_time
    env.filters["duration"] = format_duration
    env.globals["ROLES"] = ROLES
    return env


def format_time(value: str | datetime | None) -> str:
    """`2026-05-01 20:00 UTC` from a datetime or the ISO strings the JSON twins carry."""
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_duration(seconds: float | int | None) -> str:
    """A short human age: `45 s`, `12 min`, `3 h`, `2 d`."""
    if seconds is None:
        return "—"
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit}"
    return f"{s} s"


def url_for(
    request: web.Request, name: str, query: dict[str, Any] | None = None, **parts: Any
) -> str:
    """A console URL by route name; empty query values are left out."""
    url = request.config_dict[ROUTER][name].url_for(**{k: str(v) for k, v in parts.items()})
    if query:
        url = url.with_query({k: str(v) for k, v in query.items() if v not in (None, "")})
    return str(url)


def csrf_for(request: web.Request) -> str | None:
    """The form token for cookie sessions; None for Bearer callers, who need none."""
    secret = request[SESSION_SECRET]
    if secret is None:
        return None
    return csrf_token(request.config_dict[CTX].settings.node.secret_key, secret)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def json_response(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


# Flash notices: "Role changed" survives the redirect after a form post in a
# short-lived cookie, signed so that nobody else can put words on the page.
def _sign(request: web.Request, payload: str) -> str:
    key = request.config_dict[CTX].settings.node.secret_key.encode()
    return hmac.new(key, b"admin-notice:" + payload.encode(), hashlib.sha256).hexdigest()[:32]


def redirect_with_notice(request: web.Request, location: str, notice: str) -> web.Response:
    """303 See Other to `location`, carrying `notice` to the next page."""
    resp = web.Response(status=303, headers={"Location": location})
    payload = base64.urlsafe_b64encode(notice[:300].encode()).decode().rstrip("=")
    resp.set_cookie(
        NOTICE_COOKIE,
        f"{payload}.{_sign(request, payload)}",
        path="/admin",
        max_age=60,
        httponly=True,
        samesite="Lax",
    )
    return resp


def read_notice(request: web.Request) -> str | None:
    raw = request.cookies.get(NOTICE_COOKIE, "")
    payload, _, sig = raw.partition(".")
    if not payload or not hmac.compare_digest(sig, _sign(request, payload)):
        return None
    try:
        return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def layout_context(request: web.Request, account: Any) -> dict[str, Any]:
    """What every console template may use, whatever the page."""
    ctx = request.config_dict[CTX]
    console: Console = request.config_dict[CONSOLE_KEY]

    def url(name: str, query: dict[str, Any] | None = None, **parts: Any) -> str:
        return url_for(request, name, query, **parts)

    return {
        "url": url,
        "static": lambda path: url_for(request, "admin.static", filename=path),
        "site_css": SITE_CSS,
        "logout_url": LOGOUT_URL,
        "me": account,
        "is_admin": has_role(account, "admin"),
        "sections": console.visible_sections(account),
        "csrf": csrf_for(request),
        "node_name": ctx.settings.node.name,
        "notice": None,
        "error": None,
        "errors": {},
        "form": {},
        "failed": None,
        "current": None,
        "json_url": None,
        "request_query": dict(request.query),
    }


def render_page(
    request: web.Request,
    console: Console,
    page: Page,
    view: View,
    data: dict[str, Any],
    *,
    status: int = 200,
    failure: tuple[str, NodeError, dict[str, Any]] | None = None,
) -> web.Response:
    """Render `page` with its data; `failure` re-renders it after a refused form."""
    context = layout_context(request, view.account)
    # An action re-rendering its page may know more path parts than the page takes.
    parts = {k: v for k, v in request.match_info.items() if "{" + k in page.path}
    twin = request.config_dict[ROUTER][page.name + ".json"].url_for(**parts)
    if request.method == "GET" and request.query:
        twin = twin.with_query(request.query)
    context.update(
        current=page.section,
        json_url=str(twin),
        notice=read_notice(request),
    )
    if failure is not None:
        name, err, raw = failure
        errors = {e["field"]: e["message"] for e in getattr(err, "errors", []) if e.get("field")}
        if isinstance(err.extra.get("field"), str):
            errors.setdefault(err.extra["field"], err.detail)
        context.update(
            error=err.detail,
            errors=errors,
            failed=name,
            # Echo what was typed, never a password.
            form={k: v for k, v in raw.items() if "password" not in k},
        )
    context.update(data)
    html = request.config_dict[JINJA].get_template(page.template).render(context)
    resp = web.Response(text=html, content_type="text/html", status=status)
    if context["notice"] is not None:
        resp.del_cookie(NOTICE_COOKIE, path="/admin")
    return resp


async def render_error(
    request: web.Request, status: int, title: str, detail: str
) -> web.StreamResponse:
    """An error inside the console. Staff stay in the console layout; anyone
    else gets the public site's error page when the site provides one."""
    account = request.get(ACCOUNT)
    staff = has_role(account, "curator")
    if not staff and HTML_ERROR in request.config_dict:
        return await request.config_dict[HTML_ERROR](request, status, title, detail)
    context = layout_context(request, account if staff else None)
    if not staff:
        context["sections"] = []
    context.update(status=status, title=title, detail=detail)
    html = request.config_dict[JINJA].get_template("error.html").render(context)
    return web.Response(text=html, content_type="text/html", status=status)
