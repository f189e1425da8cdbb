"""Looking up people on other nodes for the web: `@handle@domain` to a stored actor.

Both the follow form and a visit to `/@jay@queens.example` (an artist this
node has not heard of yet) ask the node's directory (WebFinger, then a
signed fetch of the actor; federation/directory.py). A web request must
not hang on another server, and a page anyone can open must not become a
way to make this node fetch things, so here:

- every lookup has a deadline (`deadline` seconds); a lookup that misses
  it carries on in the background and its result is stored for next time;
- one lookup per handle at a time (single flight), at most `PARALLEL`
  in all;
- a handle that could not be found is not looked up again for
  `FORGET_FAILURES_SECONDS` (a negative cache).

Errors come back as `LookupProblem`, with a sentence to show people.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict

from aiohttp import web

from node.appkeys import CTX
from node.directory import LocalDirectory, parse_handle
from node.errors import BadRequest, NodeError, NotFound, ValidationFailed

log = logging.getLogger("nycmg.web")

PARALLEL = 4
FORGET_FAILURES_SECONDS = 300.0
MAX_FAILURES_KEPT = 2048
MAX_TARGET = 512


class LookupProblem(Exception):
    """Why a handle could not be looked up, for people (`message`) and for HTTP (`status`)."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def normalize(target: str) -> str:
    """`@jay@queens.example`, `jay@queens.example`, `acct:...` or an actor URL, tidied."""
    target = target.strip()
    if target.startswith(("http://", "https://")):
        return target
    return "@" + target.removeprefix("acct:").lstrip("@")


class RemoteLookups:
    """Single-flight, deadline-bound, failure-remembering lookups (see the module docstring)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._running: dict[str, asyncio.Task] = {}
        self._failures: OrderedDict[str, tuple[float, str, int]] = OrderedDict()
        self._slots = asyncio.Semaphore(PARALLEL)
        self.fetches = 0  # lookups that asked the directory, for tests

    def forget_failures(self) -> None:
        self._failures.clear()

    async def resolve(self, target: str, *, deadline: float) -> int:
        """The actor id for `target`, known here or fetched now; else `LookupProblem`."""
        ctx = self.app[CTX]
        target = normalize(target)
        if not target or len(target) > MAX_TARGET or target == "@":
            raise LookupProblem(
                "Type a handle like @name@node.example, or paste the address of a profile.", 422
            )
        try:
            parsed = parse_handle(target, ctx.domain)
        except BadRequest:
            raise LookupProblem(
                f"“{target[:80]}” is not a handle. Type it as @name@node.example, "
                "or paste the address of a profile.",
                422,
            ) from None
        key = target.lower() if parsed is None else f"{parsed[0]}@{parsed[1]}"
        directory = ctx.directory or LocalDirectory(ctx)
        known = await directory.find_actor(target)
        if known is not None:
            return known
        if parsed is not None and parsed[1] == ctx.domain.lower():
            raise LookupProblem(f"There is nobody called @{parsed[0]} on this node.")
        failed = self._failures.get(key)
        if failed is not None:
            expires, message, status = failed
            if expires > time.monotonic():
                raise LookupProblem(message, status)
            del self._failures[key]
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(self._lookup(key, target, parsed))
            self._running[key] = task
            task.add_done_callback(lambda t: self._done(key, t))
        try:
            return await asyncio.wait_for(asyncio.shield(task), deadline)
        except TimeoutError:
            where = parsed[1] if parsed else target
            raise LookupProblem(
                f"{where} did not answer in time. It may be busy or down; try again in a moment.",
                504,
            ) from None

    async def _lookup(self, key: str, target: str, parsed: tuple[str, str] | None) -> int:
        ctx = self.app[CTX]
        shown = f"@{parsed[0]}@{parsed[1]}" if parsed else target
        try:
            async with self._slots:
                self.fetches += 1
                return await (ctx.directory or LocalDirectory(ctx)).resolve_actor(target)
        except (NotFound, ValidationFailed) as e:
            if "could not be" in e.detail:  # the fetch failed (federation/directory.py)
                where = parsed[1] if parsed else "its node"
                message = (
                    f"Could not find {shown}. Check the spelling; if it is right, {where} "
                    "may be down, or has nobody by that name."
                )
            else:  # the node answered, but not with an actor we can follow, or policy says no
                message = f"Could not find {shown}: {_short(e.detail)}."
            log.info("remote lookup failed", extra={"target": target[:200], "detail": e.detail})
            problem = LookupProblem(message, 404)
        except NodeError as e:
            problem = LookupProblem(f"Could not look up {shown} ({_short(e.detail)}).", 502)
        except Exception:  # noqa: BLE001 - another server's answer must never become a 500
            log.exception("remote lookup failed", extra={"target": target[:200]})
            problem = LookupProblem(f"Could not look up {shown}: its node answered strangely.", 502)
        self._failures[key] = (
            time.monotonic() + FORGET_FAILURES_SECONDS,
            problem.message,
            problem.status,
        )
        while len(self._failures) > MAX_FAILURES_KEPT:
            self._failures.popitem(last=False)
        raise problem

    def _done(self, key: str, task: asyncio.Task) -> None:
        self._running.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: a lookup nobody waited for any more is not an error

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()


def _short(detail: str, limit: int = 160) -> str:
    detail = " ".join(str(detail).split())
    return detail if len(detail) <= limit else detail[: limit - 1] + "…"


LOOKUPS: web.AppKey[RemoteLookups] = web.AppKey("web_remote_lookups", RemoteLookups)


def install(app: web.Application) -> RemoteLookups:
    lookups = RemoteLookups(app)
    app[LOOKUPS] = lookups

    async def _close(_app: web.Application) -> None:
        await lookups.close()

    app.on_cleanup.append(_close)
    return lookups
