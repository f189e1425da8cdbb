"""The node admin console: a sub-app mounted at /admin (DESIGN.md 10).

Pages for curators and admins: a dashboard, users and roles, the job queue
and the audit log of every console action. Every page has a `.json` twin at
the same path plus `.json` (`/admin/users` and `/admin/users.json`), and
every action is a POST form (CSRF token, answered with a redirect) with a
JSON twin (`/admin/users/bob/role.json`, answered with JSON). Callers are
who the core's auth middleware says: the `nycmg_session` cookie of the
public site's /login, or an `Authorization: Bearer` token, so the twins are
scriptable. Cookie callers need a CSRF token on every POST (the form's
`csrf_token` field or an `X-CSRF-Token` header); Bearer callers do not.

Role matrix (GET pages and POST actions; each route also has its `.json`
twin with the same rule). Anonymous browsers are sent to
`/login?next=...` (302 for a GET, 303 for a form POST); anonymous `.json`
callers get 401 problem+json. Below the required role: 403.

| route                                                     | fan | artist | curator | admin |
| --------------------------------------------------------- | --- | ------ | ------- | ----- |
| GET  /admin/  (redirects to dashboard)                    | 403 | 403    | yes     | yes   |
| GET  /admin/dashboard                                     | 403 | 403    | yes     | yes   |
| GET  /admin/users                                         | 403 | 403    | yes     | yes   |
| GET  /admin/users/{username}                              | 403 | 403    | yes     | yes   |
| GET  /admin/audit                                         | 403 | 403    | yes     | yes   |
| GET  /admin/jobs                                          | 403 | 403    | 403     | yes   |
| POST /admin/users  (create)                               | 403 | 403    | 403     | yes   |
| POST /admin/users/{username}/role                         | 403 | 403    | 403     | yes   |
| POST /admin/users/{username}/disable                      | 403 | 403    | 403     | yes   |
| POST /admin/users/{username}/enable                       | 403 | 403    | 403     | yes   |
| POST /admin/jobs/{id}/retry                               | 403 | 403    | 403     | yes   |
| GET  /admin/federation/instances                          | 403 | 403    | yes     | yes   |
| GET  /admin/federation/instances/{host}                   | 403 | 403    | yes     | yes   |
| GET  /admin/federation/deliveries                         | 403 | 403    | yes     | yes   |
| GET  /admin/federation/inbound                            | 403 | 403    | yes     | yes   |
| GET  /admin/federation/inbound/{id}                       | 403 | 403    | yes     | yes   |
| POST /admin/federation/instances  (a policy for any host) | 403 | 403    | 403     | yes   |
| POST /admin/federation/instances/{host}/policy            | 403 | 403    | 403     | yes   |
| POST /admin/federation/instances/{host}/circuit           | 403 | 403    | 403     | yes   |
| POST /admin/federation/instances/{host}/retry             | 403 | 403    | 403     | yes   |
| POST /admin/federation/deliveries/{id}/retry              | 403 | 403    | 403     | yes   |
| GET  /admin/reports                                       | 403 | 403    | yes     | yes   |
| GET  /admin/reports/{id}                                  | 403 | 403    | yes     | yes   |
| POST /admin/reports/{id}/resolve                          | 403 | 403    | yes     | yes   |
| POST /admin/reports/{id}/dismiss                          | 403 | 403    | yes     | yes   |
| GET  /admin/live                                          | 403 | 403    | yes     | yes   |
| POST /admin/live/end                                      | 403 | 403    | yes     | yes   |
| GET  /admin/devices                                       | 403 | 403    | yes     | yes   |
| GET  /admin/devices/{id}                                  | 403 | 403    | yes     | yes   |
| POST /admin/devices  (register)                           | 403 | 403    | 403     | yes   |
| POST /admin/devices/{id}/{revoke,quarantine,release}      | 403 | 403    | 403     | yes   |
| POST /admin/held-plays/{id}/release                       | 403 | 403    | 403     | yes   |
| GET  /admin/clearing                                      | 403 | 403    | yes     | yes   |
| POST /admin/clearing/{run,reissue}                        | 403 | 403    | 403     | yes   |
| POST /admin/clearing/transfers/{pay,confirm}              | 403 | 403    | 403     | yes   |
| POST /admin/clearing/payouts/{run,paid}                   | 403 | 403    | 403     | yes   |
| POST /admin/clearing/grants  (propose)                    | 403 | 403    | 403     | yes   |
| POST /admin/clearing/grants/decide                        | 403 | 403    | yes     | yes   |
| GET  /admin/royalties, /admin/royalties/held               | 403 | 403    | yes     | yes   |
| POST /admin/royalties/{close,release-play,licences}       | 403 | 403    | 403     | yes   |
| POST /admin/royalties/subscriptions/grant                 | 403 | 403    | 403     | yes   |
| GET  /admin/static/admin.css                              | anyone (the stylesheet) |

Why: curators moderate what the node shows, so they see the people on it
and the record of what admins did; changing who holds power (roles,
disabling, new accounts) and operating the machinery (jobs) is the admin's.
Curators see queue health on the dashboard but not job payloads and errors,
and not email addresses. Federation is public by nature: curators see the
instances, the delivery queue and the inbound log (raw payloads included),
and handle reports; whom the node federates with (instance policy, circuits)
and retrying deliveries are the admin's. The node never loses its last
active admin.
`tests/admin/test_role_matrix.py` holds the same table and fails when a
route is added without an entry; `docs/admin.md` documents it for people.
"""

from __future__ import annotations

from aiohttp import web

from node.errors import NodeError

from . import (  # noqa: F401 - each module declares its pages
    audit,
    clearing,
    dashboard,
    devices,
    federation,
    jobs,
    live,
    media,
    reports,
    royalties,
    users,
)
from .console import CONSOLE, Section, View, authorize
from .render import CONSOLE_KEY, JINJA, ROUTER, STATIC, make_environment, render_error, url_for

__all__ = ["CONSOLE", "Section", "View", "create_admin"]


def create_admin() -> web.Application:
    """Build the console sub-app; the composition root mounts it at /admin."""
    app = web.Application(middlewares=[console_middleware])
    app[JINJA] = make_environment()
    app[CONSOLE_KEY] = CONSOLE
    app[ROUTER] = app.router
    app.router.add_get("/", front, name="admin.root")
    CONSOLE.install(app)
    app.router.add_static("/static", STATIC, name="admin.static")
    return app


async def front(request: web.Request) -> web.StreamResponse:
    """/admin/ is the dashboard's door: log in, be staff, go in."""
    authorize(request, "curator", json=False)
    raise web.HTTPFound(url_for(request, "admin.dashboard"))


# The console's responses are private and never framed (clickjacking on a
# role form would be an attack on the node itself).
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


HTTP_DETAILS = {
    404: "There is no such page in the console.",
    405: "This address does not answer that method.",
}


@web.middleware
async def console_middleware(request: web.Request, handler):
    """HTML errors inside the console render in the console (or the site's
    error page for non-staff); `.json` errors go on to the core's problem+json."""
    is_json = request.path.endswith(".json")
    try:
        response = await handler(request)
    except NodeError as err:
        if is_json:
            raise
        response = await render_error(request, err.status, err.title, err.detail)
    except web.HTTPException as exc:
        if exc.status < 400 or is_json:
            raise
        detail = HTTP_DETAILS.get(exc.status, exc.reason)
        response = await render_error(request, exc.status, exc.reason, detail)
    if not request.path.startswith("/admin/static/"):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
    return response
