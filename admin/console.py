"""The console's declarations: sections, pages and actions, and the one place
that turns them into routes with authorization, CSRF and `.json` twins.

Each console module declares what it adds with the `CONSOLE` decorators,
the way the JSON API declares endpoints (`node/api/routing.py`):

    @CONSOLE.page("/users", name="admin.users", template="users.html")
    async def users(view: View) -> dict: ...

A page is served twice: `/admin/users` renders the template and
`/admin/users.json` answers the same dict as JSON (after Datasette: the JSON
twin makes every page scriptable and testable). An action is a POST at
`PATH` (an HTML form, answered with a redirect) and at `PATH.json` (a JSON
body, answered with JSON).

Who may do what is part of each declaration (`role=`), never an `if` inside
a handler, so the role matrix in `admin/__init__.py` can be read off the
declarations and the test that enumerates every route keeps them honest.
Sections are the sidebar: a registry that later packages (federation, media,
royalties, detection, live) extend with `CONSOLE.section(...)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from yarl import URL

from node.api.routing import read_json
from node.appkeys import ACCOUNT, CTX, SESSION_SECRET
from node.auth import ROLE_RANK, check_csrf, has_role, require_role
from node.context import NodeContext
from node.errors import Forbidden, NodeError, Unauthorized, ValidationFailed
from node.models import Account
from node.validation import Schema

from .render import LOGIN_URL, json_response, redirect_with_notice, render_page, url_for

# Errors an HTML action answers by re-rendering its form with the message;
# anything else (401, 403, 404, 500) gets an error page.
FORM_ERRORS = (400, 409, 413, 415, 422)


@dataclass(frozen=True)
class Section:
    """One entry of the sidebar; `route` is a page name, `role` who sees it."""

    key: str
    title: str
    route: str
    role: str = "curator"
    order: int = 100


@dataclass
class View:
    """What a page or action handler receives: the request, already authorized."""

    request: web.Request
    ctx: NodeContext
    account: Account
    json: bool
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def query(self) -> Any:
        return self.request.query

    def arg(self, name: str) -> str:
        return self.request.match_info[name]

    def url(self, name: str, query: dict[str, Any] | None = None, **parts: str) -> str:
        """A console URL by route name (`admin.user`, `admin.user.json`)."""
        return url_for(self.request, name, query, **parts)

    @property
    def is_admin(self) -> bool:
        return has_role(self.account, "admin")


PageHandler = Callable[[View], Awaitable[dict[str, Any]]]


@dataclass
class Done:
    """A successful action: `data` for the JSON twin, `redirect` and `notice` for browsers."""

    data: dict[str, Any]
    redirect: str
    notice: str
    status: int = 200


ActionHandler = Callable[[View], Awaitable[Done]]


@dataclass
class Page:
    path: str
    name: str
    template: str
    handler: PageHandler
    role: str
    section: str | None


@dataclass
class Action:
    path: str
    name: str
    handler: ActionHandler
    role: str
    back: str  # the page re-rendered with the error when an HTML form fails
    body: Schema | None


@dataclass
class Console:
    """The registry every console module adds to at import time."""

    sections: list[Section] = field(default_factory=list)
    pages: dict[str, Page] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)

    def section(self, section: Section) -> Section:
        if any(s.key == section.key for s in self.sections):
            raise ValueError(f"console section {section.key!r} registered twice")
        self.sections.append(section)
        self.sections.sort(key=lambda s: (s.order, s.title))
        return section

    def page(
        self,
        path: str,
        *,
        name: str,
        template: str,
        role: str = "curator",
        section: str | None = None,
    ) -> Callable[[PageHandler], PageHandler]:
        def deco(fn: PageHandler) -> PageHandler:
            self._unique(name)
            self.pages[name] = Page(path, name, template, fn, _known(role), section)
            return fn

        return deco

    def action(
        self, path: str, *, name: str, back: str, role: str = "admin", body: Schema | None = None
    ) -> Callable[[ActionHandler], ActionHandler]:
        def deco(fn: ActionHandler) -> ActionHandler:
            self._unique(name)
            self.actions[name] = Action(path, name, fn, _known(role), back, body)
            return fn

        return deco

    def visible_sections(self, account: Account | None) -> list[Section]:
        return [s for s in self.sections if has_role(account, s.role)]

    def install(self, app: web.Application) -> None:
        """Add every page (HTML and `.json`) and action (form and `.json`) to `app`."""
        for page in self.pages.values():
            app.router.add_get(page.path, _page_handler(self, page, json=False), name=page.name)
            app.router.add_get(
                page.path + ".json", _page_handler(self, page, json=True), name=page.name + ".json"
            )
        for action in self.actions.values():
            app.router.add_post(
                action.path, _action_handler(self, action, json=False), name=action.name
            )
            app.router.add_post(
                action.path + ".json",
                _action_handler(self, action, json=True),
                name=action.name + ".json",
            )

    def _unique(self, name: str) -> None:
        if name in self.pages or name in self.actions:
            raise ValueError(f"console route {name!r} declared twice")


def _known(role: str) -> str:
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")
    return role


CONSOLE = Console()


def authorize(request: web.Request, role: str, *, json: bool) -> Account:
    """401 for JSON callers without a login, a trip to the login page for
    browsers, 403 below `role` (the decision itself is node.auth's)."""
    account = request[ACCOUNT]
    if account is None:
        if json:
            raise Unauthorized("sign in first: a session cookie or an Authorization: Bearer token")
        # After logging in, come back here (for a form post, to the console's front page).
        back = request.path_qs if request.method == "GET" else url_for(request, "admin.root")
        location = str(URL(LOGIN_URL).with_query(next=back))
        raise (web.HTTPFound if request.method == "GET" else web.HTTPSeeOther)(location=location)
    return require_role(account, role)


def check_form_csrf(request: web.Request, presented: str | None) -> None:
    """Cookie-authenticated posts must prove they came from our own page.

    A Bearer token is never sent by a browser on its own, so a Bearer request
    cannot be forged cross-site and needs no token.
    """
    secret = request[SESSION_SECRET]
    if secret is None:
        return
    presented = presented or request.headers.get("X-CSRF-Token")
    if not check_csrf(request.config_dict[CTX].settings.node.secret_key, secret, presented):
        raise Forbidden(
            "the form's security token is missing or out of date; reload the page and try again"
        )


def _page_handler(console: Console, page: Page, *, json: bool):
    async def handler(request: web.Request) -> web.StreamResponse:
        account = authorize(request, page.role, json=json)
        view = View(request, request.config_dict[CTX], account, json)
        data = await page.handler(view)
        if json:
            return json_response(data)
        return render_page(request, console, page, view, data)

    handler.__name__ = page.handler.__name__ + ("_json" if json else "_html")
    return handler


def _action_handler(console: Console, action: Action, *, json: bool):
    async def handler(request: web.Request) -> web.StreamResponse:
        account = authorize(request, action.role, json=json)
        ctx = request.config_dict[CTX]
        view = View(request, ctx, account, json)
        if json:
            check_form_csrf(request, None)
            raw = await read_json(request, ctx.settings.node.max_request_bytes)
        else:
            form = await request.post()
            raw = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
            check_form_csrf(
                request, form.get("csrf_token") if isinstance(form.get("csrf_token"), str) else None
            )
        try:
            view.body = action.body.validate(raw) if action.body is not None else _no_fields(raw)
            done = await action.handler(view)
        except NodeError as err:
            if json or err.status not in FORM_ERRORS:
                raise
            back = console.pages[action.back]
            page_view = View(request, ctx, account, False)
            data = await back.handler(page_view)
            return render_page(
                request,
                console,
                back,
                page_view,
                data,
                status=err.status,
                failure=(action.name, err, raw),
            )
        if json:
            return json_response(done.data, status=done.status)
        return redirect_with_notice(request, done.redirect, done.notice)

    handler.__name__ = action.handler.__name__ + ("_json" if json else "_html")
    return handler


def _no_fields(raw: Any) -> dict[str, Any]:
    if raw in ({}, None):
        return {}
    if not isinstance(raw, dict):
        raise ValidationFailed([{"field": "", "message": "expected a JSON object"}])
    raise ValidationFailed([{"field": k, "message": "unknown field"} for k in raw])
