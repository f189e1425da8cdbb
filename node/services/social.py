"""Follows, plays, likes, comments, reposts and reports: fans and artists
relating to each other, on this node or across the network.

Every function is idempotent on the object's id, because the same follow,
play or like may reach us more than once (retries, redelivery).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ..context import NodeContext
from ..errors import Conflict, NotFound, ValidationFailed
from ..models import (
    PLAY_SOURCES,
    Actor,
    Announce,
    Comment,
    Event,
    Follow,
    Like,
    Play,
    Release,
    Report,
    Track,
    new_uuid,
    utcnow,
)
from ..pagination import decode_cursor, encode_cursor

MAX_PLAY_MS = 6 * 3600 * 1000
PLAY_MAX_AGE = timedelta(days=30)
CLOCK_SLACK = timedelta(minutes=5)


# ---- follows ----------------------------------------------------------------


async def request_follow(
    ctx: NodeContext,
    session: AsyncSession,
    follower: Actor,
    target: Actor,
    *,
    uri: str | None = None,
    auto_accept: bool = True,
) -> Follow:
    """Start following. A local target accepts at once unless it approves followers
    by hand (or `auto_accept` is off, as for limited instances); a remote one
    answers later (federation calls `accept_follow`)."""
    if follower.id == target.id:
        raise ValidationFailed([{"field": "target", "message": "you cannot follow yourself"}])
    existing = await session.scalar(
        select(Follow).where(Follow.follower_id == follower.id, Follow.target_id == target.id)
    )
    if existing is not None and existing.state != "rejected":
        return existing
    if existing is not None:  # asking again after a rejection
        await session.delete(existing)
        await session.flush()
    follow = Follow(
        uri=uri or ctx.urls.obj("follows", new_uuid()),
        follower_id=follower.id,
        target_id=target.id,
        state="pending",
        created_at=utcnow(),
    )
    session.add(follow)
    await session.flush()
    await session.refresh(follow, ["follower", "target"])
    await ctx.bus.emit(session, "follow.requested", follow_id=follow.id, uri=follow.uri)
    if target.local and auto_accept and not target.manually_approves_followers:
        await accept_follow(ctx, session, follow)
    return follow


async def accept_follow(ctx: NodeContext, session: AsyncSession, follow: Follow) -> Follow:
    if follow.state == "accepted":
        return follow
    follow.state, follow.accepted_at = "accepted", utcnow()
    await session.flush()
    await ctx.bus.emit(session, "follow.accepted", follow_id=follow.id, uri=follow.uri)
    return follow


async def reject_follow(ctx: NodeContext, session: AsyncSession, follow: Follow) -> Follow:
    if follow.state == "rejected":
        return follow
    follow.state = "rejected"
    await session.flush()
    await ctx.bus.emit(session, "follow.rejected", follow_id=follow.id, uri=follow.uri)
    return follow


async def undo_follow(ctx: NodeContext, session: AsyncSession, follow: Follow) -> None:
    """Unfollow. The event carries everything, since the row is gone afterwards."""
    payload = {
        "uri": follow.uri,
        "follower_uri": follow.follower.uri,
        "target_uri": follow.target.uri,
        "follower_local": follow.follower.local,
        "target_local": follow.target.local,
        "follower_id": follow.follower_id,
        "target_id": follow.target_id,
    }
    await session.delete(follow)
    await session.flush()
    await ctx.bus.emit(session, "follow.undone", **payload)


async def find_follow(session: AsyncSession, follower_id: int, target_id: int) -> Follow | None:
    return await session.scalar(
        select(Follow).where(Follow.follower_id == follower_id, Follow.target_id == target_id)
    )


async def follows_of(session: AsyncSession, actor_id: int) -> list[Follow]:
    rows = await session.scalars(
        select(Follow).where(Follow.follower_id == actor_id).order_by(Follow.id.desc())
    )
    return list(rows.all())


async def follower_counts(session: AsyncSession, actor_id: int) -> dict[str, int]:
    """Accepted followers of an actor, by the follower's node (the artist page shows it)."""
    rows = await session.execute(
        select(Actor.domain, func.count())
        .join(Follow, Follow.follower_id == Actor.id)
        .where(Follow.target_id == actor_id, Follow.state == "accepted")
        .group_by(Actor.domain)
    )
    return {domain: n for domain, n in rows.all()}


# ---- plays ------------------------------------------------------------------


@dataclass(frozen=True)
class PlayResult:
    play: Play
    created: bool


def check_play(
    started_at: datetime, ms_listened: int, source: str, now: datetime | None = None
) -> list[dict[str, str]]:
    """Pure checks of a reported play; a bad report is refused, never stored."""
    now = now or utcnow()
    problems = []
    if not 0 <= ms_listened <= MAX_PLAY_MS:
        problems.append({"field": "ms_listened", "message": f"must be between 0 and {MAX_PLAY_MS}"})
    if started_at > now + CLOCK_SLACK:
        problems.append({"field": "started_at", "message": "is in the future"})
    elif started_at < now - PLAY_MAX_AGE:
        problems.append({"field": "started_at", "message": "is more than 30 days ago"})
    if source not in PLAY_SOURCES:
        problems.append({"field": "source", "message": "must be one of " + ", ".join(PLAY_SOURCES)})
    return problems


async def record_play(
    ctx: NodeContext,
    session: AsyncSession,
    listener: Actor,
    track: Track,
    *,
    started_at: datetime,
    ms_listened: int,
    source: str = "stream",
    play_id: str | None = None,
    uri: str | None = None,
    origin: str = "local",
    device_id: int | None = None,
    venue_id: int | None = None,
) -> PlayResult:
    """Record one listen, once: a report with a known play id changes nothing."""
    problems = check_play(started_at, ms_listened, source)
    if problems:
        raise ValidationFailed(problems)
    play_id = play_id or new_uuid()
    existing = await session.scalar(select(Play).where(Play.uuid == play_id))
    if existing is not None:
        if existing.listener_uri != listener.uri or existing.track_uri != track.uri:
            raise Conflict("this play id was already used for another play")
        return PlayResult(existing, False)
    play = Play(
        uuid=play_id,
        uri=uri or ctx.urls.obj("plays", play_id),
        listener_id=listener.id,
        listener_uri=listener.uri,
        track_id=track.id,
        track_uri=track.uri,
        artist_uri=track.artist.uri,
        started_at=started_at,
        ms_listened=ms_listened,
        source=source,
        origin=origin,
        device_id=device_id,
        venue_id=venue_id,
        created_at=utcnow(),
    )
    session.add(play)
    await session.flush()
    await ctx.bus.emit(
        session,
        "play.recorded",
        play_id=play.id,
        uri=play.uri,
        track_local=track.local,
        origin=origin,
    )
    return PlayResult(play, True)


async def play_counts(session: AsyncSession, artist_uri: str) -> dict[str, int]:
    """Plays of an artist's tracks, by the listener's node."""
    rows = await session.execute(
        select(Play.listener_uri, func.count())
        .where(Play.artist_uri == artist_uri)
        .group_by(Play.listener_uri)
    )
    counts: dict[str, int] = {}
    for listener_uri, n in rows.all():
        domain = listener_uri.split("/")[2] if "://" in listener_uri else listener_uri
        counts[domain] = counts.get(domain, 0) + n
    return counts


# ---- likes, comments, reposts, reports ---------------------------------------


async def _react(
    ctx: NodeContext,
    session: AsyncSession,
    model: type[Like] | type[Announce],
    kind: str,
    actor: Actor,
    object_uri: str,
    uri: str | None,
) -> Any:
    """Likes and reposts: one per actor and object, whoever reports it how often."""
    existing = await session.scalar(
        select(model).where(model.actor_id == actor.id, model.object_uri == object_uri)
    )
    if existing is not None:
        return existing
    row = model(
        uri=uri or ctx.urls.obj(f"{kind}s", new_uuid()),
        actor_id=actor.id,
        object_uri=object_uri,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    await ctx.bus.emit(
        session,
        f"{kind}.created",
        **{f"{kind}_id": row.id},
        uri=row.uri,
        object_uri=object_uri,
        actor_local=actor.local,
    )
    return row


async def like(
    ctx: NodeContext,
    session: AsyncSession,
    actor: Actor,
    object_uri: str,
    *,
    uri: str | None = None,
) -> Like:
    return await _react(ctx, session, Like, "like", actor, object_uri, uri)


async def unlike(ctx: NodeContext, session: AsyncSession, actor: Actor, object_uri: str) -> bool:
    row = await session.scalar(
        select(Like).where(Like.actor_id == actor.id, Like.object_uri == object_uri)
    )
    if row is None:
        return False
    payload = {
        "uri": row.uri,
        "object_uri": object_uri,
        "actor_uri": actor.uri,
        "actor_local": actor.local,
    }
    await session.delete(row)
    await session.flush()
    await ctx.bus.emit(session, "like.undone", **payload)
    return True


def plain_text_to_html(text: str) -> str:
    """Comments written here are plain text: escape, keep paragraphs and line breaks."""
    paragraphs = [p.strip() for p in text.strip().split("\n\n") if p.strip()]
    return "".join("<p>" + html.escape(p).replace("\n", "<br>") + "</p>" for p in paragraphs)


async def add_comment(
    ctx: NodeContext,
    session: AsyncSession,
    actor: Actor,
    object_uri: str,
    content_html: str,
    *,
    uri: str | None = None,
    local: bool = True,
    created_at: datetime | None = None,
) -> Comment:
    """Store a comment; `content_html` must already be safe (escaped or sanitized)."""
    if uri:
        existing = await session.scalar(select(Comment).where(Comment.uri == uri))
        if existing is not None:
            return existing
    comment_uuid = new_uuid()
    row = Comment(
        uuid=comment_uuid,
        uri=uri or ctx.urls.obj("comments", comment_uuid),
        actor_id=actor.id,
        object_uri=object_uri,
        content=content_html,
        local=local,
        created_at=created_at or utcnow(),
    )
    session.add(row)
    await session.flush()
    await ctx.bus.emit(
        session,
        "comment.created",
        comment_id=row.id,
        uri=row.uri,
        object_uri=object_uri,
        local=local,
    )
    return row


async def delete_comment(ctx: NodeContext, session: AsyncSession, comment: Comment) -> None:
    payload = {
        "uri": comment.uri,
        "object_uri": comment.object_uri,
        "local": comment.local,
        "actor_id": comment.actor_id,
    }
    await session.delete(comment)
    await session.flush()
    await ctx.bus.emit(session, "comment.deleted", **payload)


async def comments_on(session: AsyncSession, object_uri: str, limit: int = 50) -> list[Comment]:
    rows = await session.scalars(
        select(Comment)
        .where(Comment.object_uri == object_uri)
        .order_by(Comment.created_at, Comment.id)
        .limit(limit)
    )
    return list(rows.all())


async def announce(
    ctx: NodeContext,
    session: AsyncSession,
    actor: Actor,
    object_uri: str,
    *,
    uri: str | None = None,
) -> Announce:
    return await _react(ctx, session, Announce, "announce", actor, object_uri, uri)


async def file_report(
    ctx: NodeContext,
    session: AsyncSession,
    reporter_uri: str,
    targets: list[str],
    reason: str,
    *,
    uri: str | None = None,
    origin_host: str | None = None,
) -> Report:
    if uri:
        existing = await session.scalar(select(Report).where(Report.uri == uri))
        if existing is not None:
            return existing
    row = Report(
        uri=uri or ctx.urls.obj("reports", new_uuid()),
        reporter_uri=reporter_uri,
        target_uris=targets[:20],
        reason=reason[:5000],
        state="open",
        origin_host=origin_host,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    await ctx.bus.emit(session, "report.created", report_id=row.id, uri=row.uri)
    return row


# ---- the feed ------------------------------------------------------------------


async def feed(
    session: AsyncSession, actor_id: int, *, cursor: str | None = None, limit: int = 20
) -> tuple[list[dict[str, Any]], str | None]:
    """Releases and events of everyone the fan follows, newest first.

    Two keyset queries (releases by published_at, events by created_at) merged
    in time order; the cursor is the last item's (time, kind, id).
    """
    followed = select(Follow.target_id).where(
        Follow.follower_id == actor_id, Follow.state == "accepted"
    )
    before = None
    if cursor:
        t, kind, last_id = decode_cursor(cursor, 3)
        from ..validation import parse_datetime

        try:
            before = (parse_datetime(t), kind, int(last_id))
        except (ValueError, TypeError):
            from ..errors import BadRequest

            raise BadRequest("invalid cursor") from None

    def after(col, kind: str, id_col):
        """Rows that sort after the cursor in (time, kind, id) descending order."""
        if before is None:
            return True
        t, k, i = before
        if kind < k:
            return col <= t
        if kind > k:
            return col < t
        return or_(col < t, and_(col == t, id_col < i))

    releases = (
        await session.scalars(
            select(Release)
            .where(
                Release.artist_id.in_(followed),
                Release.state == "published",
                after(Release.published_at, "release", Release.id),
            )
            .order_by(Release.published_at.desc(), Release.id.desc())
            .limit(limit + 1)
        )
    ).all()
    events = (
        await session.scalars(
            select(Event)
            .where(Event.organizer_id.in_(followed), after(Event.created_at, "event", Event.id))
            .order_by(Event.created_at.desc(), Event.id.desc())
            .limit(limit + 1)
        )
    ).all()
    items = [("release", r.published_at, r.id, r) for r in releases] + [
        ("event", e.created_at, e.id, e) for e in events
    ]
    items.sort(key=lambda x: (x[1], x[0], x[2]), reverse=True)
    page, more = items[:limit], len(items) > limit
    next_cursor = encode_cursor([page[-1][1], page[-1][0], page[-1][2]]) if more and page else None
    return [{"kind": k, "at": t, "object": o} for k, t, _, o in page], next_cursor


async def get_track_by_uri(session: AsyncSession, uri: str) -> Track:
    track = await session.scalar(select(Track).where(Track.uri == uri))
    if track is None:
        raise NotFound(f"no track {uri!r} known here")
    return track


async def forget_actor(session: AsyncSession, actor_id: int) -> None:
    """A remote actor is gone (410, Delete): its follows go; its plays stay counted."""
    await session.execute(
        delete(Follow).where(or_(Follow.follower_id == actor_id, Follow.target_id == actor_id))
    )
