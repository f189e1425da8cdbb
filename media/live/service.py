"""Live session rows: start, end, count viewers; emits `live.started` / `live.ended`.

Every write happens in the caller's transaction, so the federation outbox
(subscribed to these events) stores its activity with the change.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.context import NodeContext
from node.models import Actor, Follow, utcnow

from .models import LiveSession


def whep_url(ctx: NodeContext, handle: str) -> str:
    return f"{ctx.settings.base_url}/live/{handle}/whep"


async def start_session(
    ctx: NodeContext,
    session: AsyncSession,
    actor: Actor,
    *,
    title: str,
    has_video: bool,
    recording: bool,
) -> LiveSession:
    # A crash can leave a session "live" in the table; going live again ends it.
    stale = await session.scalars(
        select(LiveSession).where(
            LiveSession.actor_id == actor.id, LiveSession.state == "live", LiveSession.local
        )
    )
    for old in stale:
        await end_session(ctx, session, old, "superseded")
    live = LiveSession(
        actor_id=actor.id,
        local=True,
        state="live",
        title=title[:200],
        uri="",
        whep_url=whep_url(ctx, actor.handle),
        has_video=has_video,
        recording=recording,
        started_at=utcnow(),
    )
    session.add(live)
    await session.flush()
    live.uri = ctx.urls.obj("live", live.uuid)
    await session.flush()
    await ctx.bus.emit(session, "live.started", session_id=live.id, actor_id=actor.id)
    return live


async def end_session(
    ctx: NodeContext, session: AsyncSession, live: LiveSession, reason: str
) -> None:
    if live.state == "ended":
        return
    live.state = "ended"
    live.ended_at = utcnow()
    live.end_reason = reason[:64]
    await session.flush()
    await ctx.bus.emit(session, "live.ended", session_id=live.id, actor_id=live.actor_id)


async def end_all_local(ctx: NodeContext, reason: str) -> None:
    """On shutdown (or start-up after a crash): nothing local is on the air any more."""
    async with ctx.db.transaction() as s:
        rows = (
            await s.scalars(
                select(LiveSession).where(LiveSession.state == "live", LiveSession.local)
            )
        ).all()
        for live in rows:
            await end_session(ctx, s, live, reason)


async def live_now(session: AsyncSession, limit: int = 20) -> list[LiveSession]:
    """Sessions on the air, local and remote, newest first."""
    rows = await session.scalars(
        select(LiveSession)
        .where(LiveSession.state == "live")
        .order_by(LiveSession.started_at.desc(), LiveSession.id.desc())
        .limit(limit)
    )
    return list(rows)


async def live_followed(session: AsyncSession, actor_id: int, limit: int = 20) -> list[LiveSession]:
    """Sessions on the air of the actors `actor_id` follows (accepted), newest first."""
    followed = select(Follow.target_id).where(
        Follow.follower_id == actor_id, Follow.state == "accepted"
    )
    rows = await session.scalars(
        select(LiveSession)
        .where(LiveSession.state == "live", LiveSession.actor_id.in_(followed))
        .order_by(LiveSession.started_at.desc(), LiveSession.id.desc())
        .limit(limit)
    )
    return list(rows)


def on_air_json(ctx: NodeContext, live: LiveSession, viewers: int) -> dict:
    """A session on the air as the API shows it; `watch` and `whep` are on this
    node (a remote artist's session is played through this node's relay)."""
    actor = live.actor
    key = actor.handle if live.local else f"{actor.handle}@{actor.domain}"
    base = ctx.settings.base_url
    return {
        "uri": live.uri,
        "artist": f"@{actor.handle}@{actor.domain}",
        "name": actor.name or actor.handle,
        "title": live.title,
        "local": live.local,
        "video": live.has_video,
        "started_at": live.started_at.isoformat(),
        "viewers": viewers,
        "watch": f"{base}/live/{key}",
        "whep": f"{base}/live/{key}/whep",
    }


async def mark_remote_ended(session: AsyncSession, uri: str) -> None:
    await session.execute(
        update(LiveSession)
        .where(LiveSession.uri == uri, LiveSession.local.is_(False))
        .values(state="ended", ended_at=utcnow())
    )
