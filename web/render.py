"""Templates: one jinja2 Environment per app, compiled once, autoescaped.

`render()` is the single way a page becomes a response: it adds what every
page needs (the signed-in account, the node, URL helpers, the CSRF token)
and the security headers, so no handler can forget them.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from yarl import URL

from node.appkeys import ACCOUNT, CTX, SESSION_SECRET
from node.auth import has_role

from . import art, csrf, flash, formatting

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
ENV: web.AppKey[Environment] = web.AppKey("web_env", Environment)
_PLAIN = re.compile(r"[A-Za-z0-9_.~@:-]+")

# Everything is served from this origin; inline SVG needs no inline styles.
CSP = (
    "default-src 'self'; img-src 'self' https: data:; media-src 'self' https:; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
    "Vary": "Cookie",
}


def _asset_versions() -> dict[str, str]:
    """Content hashes of the static files, so their URLs change when they do."""
    versions = {}
    for path in STATIC.rglob("*"):
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
            versions[path.relative_to(STATIC).as_posix()] = digest
    return versions


def _loaded(obj: Any, attr: str) -> Any:
    """A relationship only if it was eagerly loaded: lazy loads cannot run inside a template."""
    return obj.__dict__.get(attr) if obj is not None else None


def build_environment(app: web.Application) -> Environment:
    """The app's Environment: filters bound to the node's time zone, URL helpers to its router."""
    settings = app[CTX].settings
    try:
        zone = ZoneInfo(settings.node.timezone)
    except (AttributeError, ValueError, KeyError):  # an older config without the setting
        zone = ZoneInfo("UTC")
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "svg", "xml"], default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=-1,
    )
    router = app.router
    versions = _asset_versions()

    @lru_cache(maxsize=512)
    def _formatter(name: str) -> str | None:
        # "/releases/{uuid}": the route's own pattern, for filling in plain values.
        info = router[name].get_info()
        return info.get("formatter") or info.get("path")

    def _path(name: str, parts: dict[str, Any]) -> str:
        formatter = _formatter(name)
        values = {k: str(v) for k, v in parts.items()}
        if formatter is not None and all(_PLAIN.match(v) for v in values.values()):
            # UUIDs, handles and slugs need no quoting: skip url_for's yarl round trip.
            return formatter.format_map(values)
        return str(router[name].url_for(**values))

    def url(name: str, query: dict[str, Any] | None = None, **parts: Any) -> str:
        path = _path(name, parts)
        if query:
            kept = {k: v for k, v in query.items() if v not in (None, "")}
            if kept:
                return str(URL(path).with_query(kept))
        return path

    @lru_cache(maxsize=64)
    def static(path: str) -> str:
        target = router["web.static"].url_for(filename=path)
        version = versions.get(path)
        return str(target.with_query(v=version)) if version else str(target)

    fixed_parts: dict[str, Markup] = {}

    def fixed(template: str) -> Markup:
        """A part of the layout that is the same for everyone (nav, footer), rendered once."""
        part = fixed_parts.get(template)
        if part is None:
            part = fixed_parts[template] = Markup(env.get_template(template).render())
        return part

    boroughs = [{"name": b, "slug": formatting.slugify(b)} for b in settings.node.boroughs]
    node = settings.node  # settings are fixed for the life of the app
    env.globals.update(
        node_name=node.name,
        node_description=node.description,
        open_registration=node.open_registration,
        url=url,
        fixed=fixed,
        static=static,
        cover=art.cover_svg,
        avatar=art.avatar_svg,
        hue_bucket=art.hue_bucket,
        boroughs=boroughs,
        borough_slug=formatting.slugify,
        plural=formatting.plural,
        has_role=has_role,
        loaded=_loaded,
        safe_url=formatting.safe_url,
        safe_href=formatting.safe_href,
        link_label=formatting.link_label,
    )
    env.filters.update(
        duration=formatting.duration,
        total_duration=formatting.total_duration,
        money=formatting.money,
        year=formatting.year,
        paragraphs=formatting.paragraphs,
        rich=formatting.rich_text,
        when=lambda start, end=None: formatting.when(start, end, zone),
        day=lambda dt: formatting.day_label(dt, zone),
        time=lambda dt: formatting.time_label(dt, zone),
        localdt=lambda dt: formatting.local(dt, zone),
        iso=lambda dt: dt.isoformat() if dt else "",
    )
    return env


def page_context(request: web.Request) -> dict[str, Any]:
    """What the base layout needs on every page."""
    account = request.get(ACCOUNT)
    return {
        "request_path": request.path_qs,
        "account": account,
        "signed_in": account is not None,
        "csrf_token": lambda: csrf.form_token(request),
        "session_csrf": csrf.form_token(request) if request.get(SESSION_SECRET) else "",
        "search_query": request.query.get("q", "") if request.path == "/search" else "",
        "flash": flash.take_flash(request),
    }


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    env = request.config_dict[ENV]
    values = page_context(request)
    if context:
        values.update(context)
    body = env.get_template(template).render(values)
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    if headers:
        response.headers.update(headers)
    csrf.apply_cookie(request, response)
    flash.apply(request, response)
    return response


def redirect(request: web.Request, location: str | URL, status: int = 303) -> web.Response:
    """A See Other after a form post (or a Found for GETs), carrying any new CSRF cookie."""
    response = web.Response(
        status=status, headers={"Location": str(location), "Cache-Control": "no-store"}
    )
    csrf.apply_cookie(request, response)
    return response


def route_url(
    request: web.Request, name: str, query: dict[str, Any] | None = None, **parts: str
) -> URL:
    """`url_for` on the main app's router (the web's routes live there, not in sub-apps)."""
    target = request.config_dict[ENV].globals["url"]
    return URL(target(name, query, **parts))
