"""What the pages show about follows: whom a fan follows, who asks to follow
an artist, and the follow button and audience figures of an artist's page.

Read-only; the forms that change follows are in web.social. Kept apart from
it so that the account and artist pages can import these reads without
importing the forms (which import web.accounts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from node.appkeys import ACCOUNT, CTX
from node.models import Account, Follow

from .audience import AUDIENCE
from .cache import do_not_cache

FOLLOWING_SHOWN = 200
REQUESTS_SHOWN = 100


@dataclass(frozen=True)
class FollowState:
    """The signed-in visitor's follow of one actor: its id (for Unfollow) and state."""

    id: int
    state: str  # pending | accepted | rejected


async def following_of(session: AsyncSession, actor_id: int, limit: int) -> list[Follow]:
    """Whom `actor_id` follows, newest first, with each target (uq_follows_pair)."""
    rows = await session.scalars(
        select(Follow)
        .options(raiseload(Follow.follower))
        .where(Follow.follower_id == actor_id)
        .order_by(Follow.id.desc())
        .limit(limit)
    )
    return list(rows.all())


async def requests_for(session: AsyncSession, actor_id: int, limit: int) -> list[Follow]:
    """Pending requests to follow `actor_id`, oldest first (ix_follows_target_state)."""
    rows = await session.scalars(
        select(Follow)
        .options(raiseload(Follow.target))
        .where(Follow.target_id == actor_id, Follow.state == "pending")
        .order_by(Follow.id)
        .limit(limit)
    )
    return list(rows.all())


async def me_context(request: web.Request, account: Account) -> dict[str, Any]:
    """The account page's follows: whom the fan follows, and who asks to follow them."""
    async with request.config_dict[CTX].db.read_session() as s:
        following = await following_of(s, account.actor_id, FOLLOWING_SHOWN + 1)
        requests = await requests_for(s, account.actor_id, REQUESTS_SHOWN)
    return {
        "following": following[:FOLLOWING_SHOWN],
        "following_more": len(following) > FOLLOWING_SHOWN,
        "follow_requests": requests,
    }


async def artist_context(request: web.Request, artist_id: int) -> dict[str, Any]:
    """The artist page's follow panel: the audience by node for everyone, and
    the follow button's state for a signed-in visitor only.

    Anonymous pages are cached (web.cache), so nothing here that depends on
    the visitor may be computed for them: `follow` stays None and the panel
    shows "Sign in to follow".
    """
    audience = await request.config_dict[AUDIENCE].get(artist_id)
    if audience is None:
        do_not_cache(request)  # the figures are still being counted
    account = request.get(ACCOUNT)
    follow = None
    if account is not None and account.actor_id != artist_id:
        async with request.config_dict[CTX].db.read_session() as s:
            row = (
                await s.execute(
                    select(Follow.id, Follow.state).where(
                        Follow.follower_id == account.actor_id, Follow.target_id == artist_id
                    )
                )
            ).first()
        if row is not None and row.state != "rejected":
            follow = FollowState(row.id, row.state)
    return {
        "audience": audience,
        "viewer_follow": follow,
        "viewer_is_artist": account is not None and account.actor_id == artist_id,
        "here_domain": request.config_dict[CTX].domain,
    }
