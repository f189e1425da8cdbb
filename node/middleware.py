"""Request middlewares: who is calling, and errors as problem+json (or HTML pages)."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from .appkeys import ACCOUNT, CTX, HTML_ERROR, SESSION_SECRET
from .auth import account_for_token, check_csrf, touch_token
from .errors import Forbidden, NodeError, RateLimited
from .metrics import REQUEST_SECONDS, REQUESTS

log = logging.getLogger("nycmg.http")
SESSION_COOKIE = "nycmg_session"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def wants_json(request: web.Request) -> bool:
    path = request.path
    if path.startswith(
        ("/api/", "/.well-known/", "/nodeinfo", "/rest/", "/healthz")
    ) or path.endswith(".json"):
        return True
    accept = request.headers.get("Accept", "")
    return "html" not in accept and ("json" in accept or not accept)


def problem_response(err: NodeError, request: web.Request) -> web.Response:
    headers = {}
    if isinstance(err, RateLimited):
        headers["Retry-After"] = str(err.retry_after)
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="nycmg"'
    return web.json_response(
        err.to_problem(request.path),
        status=err.status,
        content_type="application/problem+json",
        headers=headers,
    )


@web.middleware
async def errors_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except NodeError as err:
        if not wants_json(request) and HTML_ERROR in request.config_dict:
            return await request.config_dict[HTML_ERROR](request, err.status, err.title, err.detail)
        return problem_response(err, request)
    except web.HTTPException as exc:
        if exc.status < 400 or not wants_json(request) and HTML_ERROR not in request.config_dict:
            raise
        if not wants_json(request):
            return await request.config_dict[HTML_ERROR](
                request, exc.status, exc.reason, exc.text or exc.reason
            )
        body = {
            "type": "about:blank",
            "title": exc.reason,
            "status": exc.status,
            "detail": exc.reason,
            "instance": request.path,
        }
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return web.json_response(
            body, status=exc.status, content_type="application/problem+json", headers=headers
        )
    except Exception:  # noqa: BLE001 - last resort: log it, answer 500 without internals
        log.exception("unhandled error", extra={"path": request.path, "method": request.method})
        if not wants_json(request) and HTML_ERROR in request.config_dict:
            return await request.config_dict[HTML_ERROR](
                request, 500, "Server error", "Something broke on our side."
            )
        body = {
            "type": "about:blank",
            "title": "Internal Server Error",
            "status": 500,
            "detail": "unexpected error; it has been logged",
            "instance": request.path,
        }
        return web.json_response(body, status=500, content_type="application/problem+json")


@web.middleware
async def auth_middleware(request: web.Request, handler):
    """Resolve the caller from a Bearer token or the session cookie.

    Cookie-authenticated unsafe API calls need the X-CSRF-Token header (the
    web's JS sends it); forms carry their own token, checked by the web.
    """
    ctx = request.config_dict[CTX]
    request[ACCOUNT] = None
    request[SESSION_SECRET] = None
    header = request.headers.get("Authorization", "")
    secret, kind = None, None
    if header.lower().startswith("bearer "):
        secret, kind = header[7:].strip(), "api"
    elif SESSION_COOKIE in request.cookies:
        secret, kind = request.cookies[SESSION_COOKIE], "session"
    if secret:
        async with ctx.db.read_session() as s:
            found = await account_for_token(s, secret, kind)
        if found is not None:
            account, token = found
            request[ACCOUNT] = account
            if kind == "session":
                request[SESSION_SECRET] = secret
            if token.last_used_at is None or (time.time() - token.last_used_at.timestamp()) > 60:
                async with ctx.db.transaction() as s:
                    await touch_token(s, token)
        elif kind == "api":
            from .errors import Unauthorized

            raise Unauthorized("the token is invalid, expired or revoked")
        if (
            kind == "session"
            and request.method in UNSAFE
            and request.path.startswith("/api/")
            and request[ACCOUNT] is not None
            and not check_csrf(
                ctx.settings.node.secret_key, secret, request.headers.get("X-CSRF-Token")
            )
        ):
            raise Forbidden("missing or wrong X-CSRF-Token header")
    return await handler(request)


@web.middleware
async def metrics_middleware(request: web.Request, handler):
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        route = request.match_info.route
        name = route.name or (route.resource.canonical if route.resource else "unmatched")
        REQUESTS.labels(request.method, name, str(status)).inc()
        REQUEST_SECONDS.labels(name).observe(time.perf_counter() - start)
