"""`/rest/{method}` and `/rest/{method}.view`: authenticate, call the method, render.

Every outcome a Subsonic client can act on is a `subsonic-response`: an
error is `status="failed"` with its code, sent with HTTP 200 as the
reference server does (clients read the body, not the status). Methods
register with `@method("name")`; a method returns a payload dict (wrapped in
the envelope) or a ready response (stream, download, cover art).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.appkeys import CTX
from node.auth import check_login_rate, record_login_failure
from node.context import NodeContext
from node.errors import NodeError, RateLimited
from node.web_helpers import client_ip

from . import errors
from .catalog import PageCursors, Viewer
from .credentials import Caller, authenticate
from .params import Params, read_params
from .response import envelope, error_payload, render
from .serialize import Annotations

log = logging.getLogger("nycmg.subsonic")

Handler = Callable[["Call"], Awaitable[dict[str, Any] | web.StreamResponse]]


@dataclass(frozen=True)
class Method:
    name: str
    handler: Handler
    auth: bool = True


METHODS: dict[str, Method] = {}


def method(name: str, *, auth: bool = True) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        METHODS[name] = Method(name, fn, auth)
        return fn

    return register


@dataclass
class State:
    """Per-app state of the Subsonic API: paging cursors and who is playing what now."""

    cursors: PageCursors = field(default_factory=PageCursors)
    now_playing: dict[int, tuple[int, float, str]] = field(default_factory=dict)


STATE: web.AppKey[State] = web.AppKey("subsonic_state", State)


@dataclass
class Call:
    """One Subsonic request as handlers see it."""

    request: web.Request
    ctx: NodeContext
    params: Params
    caller: Caller | None
    state: State

    @property
    def viewer(self) -> Viewer:
        assert self.caller is not None
        return Viewer(self.caller.account.id, self.caller.account.actor_id)

    @asynccontextmanager
    async def read(self):
        async with self.ctx.db.read_session() as session:
            yield session

    @asynccontextmanager
    async def write(self):
        async with self.ctx.db.transaction() as session:
            yield session

    async def annotations(self, session: AsyncSession, items: list[tuple[str, int]]) -> Annotations:
        """The caller's stars and ratings for these (kind, id) items, in two queries."""
        from .models import Rating, Star

        notes = Annotations()
        if not items or self.caller is None:
            return notes
        ids = {row_id for _, row_id in items}
        wanted = set(items)
        account_id = self.caller.account.id
        for kind, row_id, at in await session.execute(
            select(Star.kind, Star.item_id, Star.created_at).where(
                Star.account_id == account_id, Star.item_id.in_(ids)
            )
        ):
            if (kind, row_id) in wanted:
                notes.starred[(kind, row_id)] = at
        for kind, row_id, rating in await session.execute(
            select(Rating.kind, Rating.item_id, Rating.rating).where(
                Rating.account_id == account_id, Rating.item_id.in_(ids)
            )
        ):
            if (kind, row_id) in wanted:
                notes.ratings[(kind, row_id)] = rating
        return notes


async def _authenticate(request: web.Request, ctx: NodeContext, params: Params) -> Caller:
    """Check the credentials, with the same failure limits as the web sign-in
    (`auth.login_attempts` per username and per address in `auth.login_window_seconds`),
    counted apart from it: token auth is an MD5 a patient client could guess at."""
    limits = ctx.settings.auth
    user = (params.str("u", max_length=64) or "").lower()
    keys = [f"subsonic:ip:{client_ip(request)}"] + ([f"subsonic:user:{user}"] if user else [])
    async with ctx.db.read_session() as session:
        try:
            await check_login_rate(
                session, keys, limits.login_attempts, limits.login_window_seconds
            )
        except RateLimited:
            raise errors.SubsonicError(
                errors.GENERIC, "Too many failed sign-ins; wait a few minutes"
            ) from None
        try:
            return await authenticate(session, ctx.settings.node.secret_key, params)
        except errors.SubsonicError as err:
            if err.code not in (errors.WRONG_CREDENTIALS, errors.INVALID_API_KEY):
                raise
            failure = err
    async with ctx.db.transaction() as session:
        await record_login_failure(session, keys, limits.login_window_seconds)
    raise failure


def _format(request: web.Request) -> tuple[str, str | None]:
    fmt = request.query.get("f", "xml")
    return (fmt if fmt in ("xml", "json", "jsonp") else "xml"), request.query.get("callback")


async def handle(request: web.Request) -> web.StreamResponse:
    name = request.match_info["method"]
    if name.endswith(".view"):
        name = name[: -len(".view")]
    fmt, callback = _format(request)
    entry = METHODS.get(name)
    if entry is None:
        body = error_payload(errors.GENERIC, f"Unknown method '{name[:64]}'")
        return render(body, fmt, callback, status=404)
    ctx = request.config_dict[CTX]
    try:
        params = await read_params(request)
        if request.method == "POST" and "f" in params.values and "f" not in request.query:
            fmt, callback = params.str("f", "xml"), params.str("callback")
            fmt = fmt if fmt in ("xml", "json", "jsonp") else "xml"
        caller = await _authenticate(request, ctx, params) if entry.auth else None
        call = Call(request, ctx, params, caller, request.app[STATE])
        result = await entry.handler(call)
    except errors.SubsonicError as err:
        return render(error_payload(err.code, err.message), fmt, callback)
    except NodeError as err:
        # A core service refused (a bad play time, a conflict): the client sees why.
        code = errors.NOT_FOUND if err.status == 404 else errors.GENERIC
        return render(error_payload(code, err.detail or err.title), fmt, callback)
    except web.HTTPException:
        raise
    except Exception:  # noqa: BLE001 - the client gets a Subsonic error, the log the traceback
        log.exception("subsonic method failed", extra={"method": name})
        return render(error_payload(errors.GENERIC, "Internal error"), fmt, callback)
    if isinstance(result, web.StreamResponse):
        return result
    return render(envelope(result), fmt, callback)


def setup_routes(app: web.Application) -> None:
    app[STATE] = State()
    for path in ("/rest/{method}",):
        app.router.add_get(path, handle, name="subsonic.get")
        app.router.add_post(path, handle, name="subsonic.post")
