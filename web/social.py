"""Following on the web: the follow box, unfollowing, follow requests and the feed.

- `POST /follow` takes `target` = `@handle@domain` (or an actor's URL),
  finds the actor here or on its node (web.remote, with a deadline) and
  follows it (node.services.social.request_follow). It answers with a
  redirect back and a notice: "Following ..." or "Requested — waiting for
  approval ...". A handle that cannot be found, or a node that does not
  answer, shows the form again with what went wrong; never a 500.
- `POST /unfollow`, `POST /follow-requests/{id}/{accept|reject}`.
- `GET /feed`: releases and shows of everyone the fan follows, on this
  node or another, newest first, a page at a time (the core's cursor).

Every form carries a CSRF token; every page works without JavaScript.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from node.appkeys import ACCOUNT, CTX
from node.errors import BadRequest, ValidationFailed
from node.models import Account, Actor, Follow
from node.services import social

from . import audience, csrf, remote
from .accounts import read_form, safe_next
from .flash import set_flash
from .following import FOLLOWING_SHOWN, following_of
from .live_pages import followed_on_air
from .remote import LOOKUPS, MAX_TARGET, LookupProblem
from .render import redirect, render, route_url

log = logging.getLogger("nycmg.web")

FEED_PAGE = 20
# The follow form waits this long for another node (WebFinger, then the actor).
FOLLOW_DEADLINE_SECONDS = 15.0
FEED_FOLLOWING_SHOWN = 12


def _acct(actor: Actor) -> str:
    return f"@{actor.handle}@{actor.domain}"


def _sign_in_first(request: web.Request, back: str) -> web.Response:
    return redirect(request, route_url(request, "web.login", query={"next": back}), status=303)


def _back(request: web.Request, form: dict[str, str], default: str = "web.feed") -> str:
    return safe_next(form.get("next")) or str(route_url(request, default))


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 19 else None


# ---- follow ----------------------------------------------------------------------


def _follow_page(
    request: web.Request,
    *,
    target: str = "",
    next_url: str = "",
    error: str = "",
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "follow.html",
        {"target": target, "next": next_url, "error": error},
        status=status,
    )


async def follow_form(request: web.Request) -> web.Response:
    """The follow box on a page of its own (where the header and remote links lead)."""
    target = request.query.get("target", "").strip()[:MAX_TARGET]
    if request.get(ACCOUNT) is None:
        back = str(route_url(request, "web.follow", query={"target": target}))
        return redirect(request, route_url(request, "web.login", query={"next": back}), status=302)
    return _follow_page(request, target=target, next_url=safe_next(request.query.get("next")) or "")


async def follow_submit(request: web.Request) -> web.Response:
    form = await read_form(request)
    csrf.require(request, form)
    target = form.get("target", "").strip()[: MAX_TARGET + 1]
    next_url = safe_next(form.get("next")) or ""
    account = request.get(ACCOUNT)
    if account is None:
        return _sign_in_first(
            request, str(route_url(request, "web.follow", query={"target": target[:MAX_TARGET]}))
        )
    try:
        target_id = await request.config_dict[LOOKUPS].resolve(
            target, deadline=FOLLOW_DEADLINE_SECONDS
        )
        follow_state, acct = await _follow(request, account, target_id)
    except LookupProblem as p:
        return _follow_page(
            request, target=target[:MAX_TARGET], next_url=next_url, error=p.message, status=p.status
        )
    if follow_state == "accepted":
        text, kind = f"Following {acct}.", "ok"
    else:
        text, kind = f"Requested — waiting for approval from {acct}.", "info"
    response = redirect(request, next_url or route_url(request, "web.feed"))
    set_flash(request, response, kind, text)
    return response


async def _follow(request: web.Request, account: Account, target_id: int) -> tuple[str, str]:
    """Follow (or find the existing follow); its state and the target's handle."""
    ctx = request.config_dict[CTX]
    for attempt in (1, 2):
        try:
            async with ctx.db.transaction() as s:
                follower = await s.get(Actor, account.actor_id)
                target = await s.get(Actor, target_id)
                if follower is None or target is None:
                    raise LookupProblem("That account is gone.")
                follow = await social.request_follow(ctx, s, follower, target)
                return follow.state, _acct(target)
        except ValidationFailed:
            raise LookupProblem("That is you: you cannot follow yourself.", 422) from None
        except IntegrityError:
            # The same follow sent twice at once (a double click): the other one won.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# ---- unfollow and follow requests ----------------------------------------------------


async def unfollow_submit(request: web.Request) -> web.Response:
    form = await read_form(request)
    csrf.require(request, form)
    account = request.get(ACCOUNT)
    if account is None:
        return _sign_in_first(request, str(route_url(request, "web.me")))
    ctx = request.config_dict[CTX]
    follow_id = _int(form.get("follow"))
    text, kind = "You were not following that account.", "error"
    async with ctx.db.transaction() as s:
        follow = await s.get(Follow, follow_id) if follow_id is not None else None
        if follow is not None and follow.follower_id == account.actor_id:
            acct, pending = _acct(follow.target), follow.state == "pending"
            await social.undo_follow(ctx, s, follow)
            text = f"Cancelled your request to follow {acct}." if pending else f"Unfollowed {acct}."
            kind = "ok"
    response = redirect(request, _back(request, form, "web.me"))
    set_flash(request, response, kind, text)
    return response


async def decide_submit(request: web.Request) -> web.Response:
    """An artist who approves followers by hand accepts or rejects one request."""
    form = await read_form(request)
    csrf.require(request, form)
    account = request.get(ACCOUNT)
    if account is None:
        return _sign_in_first(request, str(route_url(request, "web.me")))
    ctx = request.config_dict[CTX]
    accept = request.match_info["decision"] == "accept"
    follow_id = _int(request.match_info["id"])
    text, kind = "That request is no longer waiting.", "error"
    async with ctx.db.transaction() as s:
        follow = await s.get(Follow, follow_id) if follow_id is not None else None
        if follow is not None and follow.target_id == account.actor_id:
            who = _acct(follow.follower)
            if accept:
                await social.accept_follow(ctx, s, follow)
                text, kind = f"{who} now follows you.", "ok"
            else:
                await social.reject_follow(ctx, s, follow)
                text, kind = f"Declined {who}'s request to follow you.", "info"
    response = redirect(request, _back(request, form, "web.me"))
    set_flash(request, response, kind, text)
    return response


# ---- the feed -------------------------------------------------------------------------


async def feed_page(request: web.Request) -> web.Response:
    account = request.get(ACCOUNT)
    if account is None:
        return redirect(
            request, route_url(request, "web.login", query={"next": request.path}), status=302
        )
    ctx = request.config_dict[CTX]
    cursor = request.query.get("cursor", "").strip()[:500] or None
    async with ctx.db.read_session() as s:
        try:
            items, next_cursor = await social.feed(
                s, account.actor_id, cursor=cursor, limit=FEED_PAGE
            )
        except (BadRequest, ValueError):  # a cursor from nowhere: start from the newest
            cursor = None
            items, next_cursor = await social.feed(s, account.actor_id, limit=FEED_PAGE)
        following = await following_of(s, account.actor_id, FEED_FOLLOWING_SHOWN + 1)
    context: dict[str, Any] = {
        "items": items,
        "next_cursor": next_cursor,
        "is_first_page": cursor is None,
        "following": following[:FEED_FOLLOWING_SHOWN],
        "following_more": len(following) > FEED_FOLLOWING_SHOWN,
        "following_limit": FOLLOWING_SHOWN,
        "live_followed": await followed_on_air(request, account.actor_id),
    }
    return render(request, "feed.html", context)


def setup(app: web.Application) -> None:
    """Routes, the audience counts and the remote lookups."""
    audience.install(app)
    remote.install(app)
    follow = app.router.add_resource("/follow", name="web.follow")
    follow.add_route("GET", follow_form)
    follow.add_route("POST", follow_submit)
    app.router.add_post("/unfollow", unfollow_submit, name="web.unfollow")
    app.router.add_post(
        r"/follow-requests/{id:\d+}/{decision:accept|reject}",
        decide_submit,
        name="web.follow_request",
    )
    app.router.add_get("/feed", feed_page, name="web.feed")
