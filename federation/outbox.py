"""From domain events to activities: the transactional outbox (DESIGN.md 1).

Each subscriber runs inside the transaction that changed the domain, builds
the activity, stores it as an `OutboxItem` and enqueues one delivery job per
distinct inbox: a shared inbox once per host when the recipients have one.
A rollback takes the activity and its deliveries with it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from node.context import NodeContext
from node.events import DomainEvent
from node.models import Actor, Comment, Event, Follow, Like, Play, Release, Track, new_uuid, utcnow

from .models import OutboxItem
from .objects import comment_to_ap, document, event_to_ap, release_post, release_to_ap, track_to_ap
from .vocab import PUBLIC, host_of, with_context

DELIVERY_ATTEMPTS = 16  # with the 6 h backoff cap: about three days of retries


async def follower_inboxes(session: AsyncSession, actor_id: int) -> list[str]:
    """One inbox per remote host where the host has a shared inbox, else each follower's."""
    rows = await session.execute(
        select(func.coalesce(Actor.shared_inbox_url, Actor.inbox_url))
        .join(Follow, Follow.follower_id == Actor.id)
        .where(Follow.target_id == actor_id, Follow.state == "accepted", Actor.local.is_(False))
        .distinct()
    )
    return sorted({r[0] for r in rows.all() if r[0]})


async def send(
    ctx: NodeContext,
    session: AsyncSession,
    actor: Actor,
    activity: dict[str, Any],
    inboxes: list[str],
    *,
    public: bool = True,
) -> OutboxItem | None:
    """Store the activity and enqueue its deliveries, in the caller's transaction."""
    activity = with_context(
        {"id": activity.get("id") or ctx.urls.obj("activities", new_uuid()), **activity}
    )
    item = OutboxItem(
        activity_id=activity["id"],
        actor_id=actor.id,
        type=activity["type"],
        payload=activity,
        public=public,
        inboxes=len(inboxes),
        created_at=utcnow(),
    )
    session.add(item)
    await session.flush()
    for inbox in dict.fromkeys(inboxes):
        await ctx.enqueue(
            session,
            "federation.deliver",
            {"item": item.id, "inbox": inbox},
            max_attempts=DELIVERY_ATTEMPTS,
            priority=80,
        )
    return item


def _followers_audience(actor: Actor) -> dict[str, Any]:
    return {"to": [PUBLIC], "cc": [actor.followers_url] if actor.followers_url else []}


def register_outbox(ctx: NodeContext) -> None:
    bus = ctx.bus

    async def broadcast(
        session: AsyncSession, actor: Actor, kind: str, obj: dict[str, Any]
    ) -> None:
        if not actor.local:
            return
        inboxes = await follower_inboxes(session, actor.id)
        if not inboxes:
            return
        activity = {
            "type": kind,
            "actor": actor.uri,
            "object": obj,
            "published": utcnow().isoformat(),
            **_followers_audience(actor),
        }
        await send(ctx, session, actor, activity, inboxes)

    async def load_release(session: AsyncSession, release_id: int) -> Release | None:
        return await session.scalar(
            select(Release).options(selectinload(Release.tracks)).where(Release.id == release_id)
        )

    @bus.on("release.published")
    async def on_published(session: AsyncSession, e: DomainEvent) -> None:
        release = await load_release(session, e.payload["release_id"])
        if release is None or not release.local:
            return
        await session.refresh(release, ["artist", "tracks"])
        note = release_post(ctx, release)
        await broadcast(
            session, release.artist, "Create", {k: v for k, v in note.items() if v is not None}
        )

    @bus.on("release.updated")
    async def on_release_updated(session: AsyncSession, e: DomainEvent) -> None:
        release = await load_release(session, e.payload["release_id"])
        if release is None or not release.local or release.state != "published":
            return
        await session.refresh(release, ["artist", "tracks"])
        await broadcast(session, release.artist, "Update", document(release_to_ap(ctx, release)))

    @bus.on("track.updated")
    async def on_track_updated(session: AsyncSession, e: DomainEvent) -> None:
        track = await session.get(Track, e.payload["track_id"])
        if track is None or not track.local:
            return
        await session.refresh(track, ["artist", "release"])
        if not track.public:
            return
        await broadcast(
            session, track.artist, "Update", document(track_to_ap(ctx, track, track.release))
        )

    async def tombstone(session: AsyncSession, e: DomainEvent) -> None:
        if not e.payload.get("was_public", True):
            return
        owner_uri = e.payload.get("owner_uri")
        actor = (
            await session.scalar(select(Actor).where(Actor.uri == owner_uri)) if owner_uri else None
        )
        if actor is not None:
            await broadcast(session, actor, "Delete", {"id": e.payload["uri"], "type": "Tombstone"})

    bus.subscribe("release.deleted", tombstone)
    bus.subscribe("track.deleted", tombstone)
    bus.subscribe("event.deleted", tombstone)

    @bus.on("event.created", "event.updated")
    async def on_event(session: AsyncSession, e: DomainEvent) -> None:
        event = await session.get(Event, e.payload["event_id"])
        if event is None or not event.local:
            return
        await session.refresh(event, ["organizer", "venue"])
        kind = "Create" if e.name == "event.created" else "Update"
        await broadcast(session, event.organizer, kind, document(event_to_ap(ctx, event)))

    @bus.on("actor.updated")
    async def on_actor_updated(session: AsyncSession, e: DomainEvent) -> None:
        from .actors import actor_to_ap

        actor = await session.get(Actor, e.payload["actor_id"])
        if actor is None or not actor.local:
            return
        await session.refresh(actor, ["profile"])
        doc = actor_to_ap(ctx, actor, actor.profile)
        doc.pop("@context", None)
        await broadcast(session, actor, "Update", doc)

    # -- follows: directed, to the other side's own inbox --

    async def load_follow(session: AsyncSession, follow_id: int) -> Follow | None:
        follow = await session.get(Follow, follow_id)
        if follow is not None:
            await session.refresh(follow, ["follower", "target"])
        return follow

    @bus.on("follow.requested")
    async def on_follow_requested(session: AsyncSession, e: DomainEvent) -> None:
        f = await load_follow(session, e.payload["follow_id"])
        if f is None or not f.follower.local or f.target.local or not f.target.inbox_url:
            return
        activity = {
            "id": f.uri,
            "type": "Follow",
            "actor": f.follower.uri,
            "object": f.target.uri,
            "to": [f.target.uri],
        }
        await send(ctx, session, f.follower, activity, [f.target.inbox_url], public=False)

    async def answer(session: AsyncSession, e: DomainEvent, kind: str) -> None:
        f = await load_follow(session, e.payload["follow_id"])
        if f is None or not f.target.local or f.follower.local or not f.follower.inbox_url:
            return
        follow_obj = {
            "id": f.uri,
            "type": "Follow",
            "actor": f.follower.uri,
            "object": f.target.uri,
        }
        activity = {
            "type": kind,
            "actor": f.target.uri,
            "object": follow_obj,
            "to": [f.follower.uri],
        }
        await send(ctx, session, f.target, activity, [f.follower.inbox_url], public=False)

    bus.subscribe("follow.accepted", lambda s, e: answer(s, e, "Accept"))
    bus.subscribe("follow.rejected", lambda s, e: answer(s, e, "Reject"))

    @bus.on("follow.undone")
    async def on_unfollow(session: AsyncSession, e: DomainEvent) -> None:
        p = e.payload
        if not p["follower_local"] or p["target_local"]:
            return
        follower = await session.get(Actor, p["follower_id"])
        target = await session.get(Actor, p["target_id"])
        if follower is None or target is None or not target.inbox_url:
            return
        activity = {
            "type": "Undo",
            "actor": follower.uri,
            "object": {
                "id": p["uri"],
                "type": "Follow",
                "actor": follower.uri,
                "object": target.uri,
            },
            "to": [target.uri],
        }
        await send(ctx, session, follower, activity, [target.inbox_url], public=False)

    # -- plays, likes, comments, reposts, reports --

    @bus.on("play.recorded")
    async def on_play(session: AsyncSession, e: DomainEvent) -> None:
        """A local listener played a remote track: tell the track's node (DESIGN.md 6)."""
        if e.payload.get("track_local") or e.payload.get("origin") != "local":
            return
        play = await session.get(Play, e.payload["play_id"])
        track = await session.get(Track, play.track_id) if play and play.track_id else None
        if track is None:
            return
        await session.refresh(track, ["artist"])
        listener = await session.get(Actor, play.listener_id)
        if listener is None or not track.artist.inbox_url:
            return
        activity = {
            "id": play.uri,
            "type": "Listen",
            "actor": listener.uri,
            "object": track.uri,
            "to": [track.artist.uri],
            "published": play.started_at.isoformat().replace("+00:00", "Z"),
            "startTime": play.started_at.isoformat().replace("+00:00", "Z"),
            "msListened": play.ms_listened,
            "source": play.source,
        }
        await send(ctx, session, listener, activity, [track.artist.inbox_url], public=False)

    async def author_of(session: AsyncSession, object_uri: str) -> Actor | None:
        for model, owner in (
            (Track, Track.artist_id),
            (Release, Release.artist_id),
            (Event, Event.organizer_id),
        ):
            owner_id = await session.scalar(select(owner).where(model.uri == object_uri))
            if owner_id is not None:
                return await session.get(Actor, owner_id)
        return await session.scalar(select(Actor).where(Actor.uri == object_uri))

    @bus.on("like.created")
    async def on_like(session: AsyncSession, e: DomainEvent) -> None:
        if not e.payload.get("actor_local"):
            return
        like = await session.get(Like, e.payload["like_id"])
        author = await author_of(session, e.payload["object_uri"])
        if like is None or author is None or author.local or not author.inbox_url:
            return
        liker = await session.get(Actor, like.actor_id)
        activity = {
            "id": like.uri,
            "type": "Like",
            "actor": liker.uri,
            "object": like.object_uri,
            "to": [author.uri],
        }
        await send(ctx, session, liker, activity, [author.inbox_url], public=False)

    @bus.on("like.undone")
    async def on_unlike(session: AsyncSession, e: DomainEvent) -> None:
        p = e.payload
        if not p.get("actor_local"):
            return
        author = await author_of(session, p["object_uri"])
        liker = await session.scalar(select(Actor).where(Actor.uri == p["actor_uri"]))
        if author is None or author.local or liker is None or not author.inbox_url:
            return
        activity = {
            "type": "Undo",
            "actor": liker.uri,
            "object": {
                "id": p["uri"],
                "type": "Like",
                "actor": liker.uri,
                "object": p["object_uri"],
            },
            "to": [author.uri],
        }
        await send(ctx, session, liker, activity, [author.inbox_url], public=False)

    @bus.on("comment.created")
    async def on_comment(session: AsyncSession, e: DomainEvent) -> None:
        if not e.payload.get("local"):
            return
        comment = await session.get(Comment, e.payload["comment_id"])
        await session.refresh(comment, ["actor"])
        inboxes = await follower_inboxes(session, comment.actor_id)
        author = await author_of(session, comment.object_uri)
        if author is not None and not author.local and author.inbox_url:
            inboxes.append(author.shared_inbox_url or author.inbox_url)
        if inboxes:
            note = comment_to_ap(ctx, comment)
            activity = {
                "type": "Create",
                "actor": comment.actor.uri,
                "object": note,
                "to": note["to"],
                "cc": note["cc"],
            }
            await send(ctx, session, comment.actor, activity, inboxes)

    @bus.on("announce.created")
    async def on_announce(session: AsyncSession, e: DomainEvent) -> None:
        if not e.payload.get("actor_local"):
            return
        from node.models import Announce

        row = await session.get(Announce, e.payload["announce_id"])
        actor = await session.get(Actor, row.actor_id)
        inboxes = await follower_inboxes(session, actor.id)
        author = await author_of(session, row.object_uri)
        if author is not None and not author.local and author.inbox_url:
            inboxes.append(author.shared_inbox_url or author.inbox_url)
        if inboxes:
            activity = {
                "id": row.uri,
                "type": "Announce",
                "actor": actor.uri,
                "object": row.object_uri,
                **_followers_audience(actor),
            }
            await send(ctx, session, actor, activity, inboxes)

    @bus.on("report.created")
    async def on_report(session: AsyncSession, e: DomainEvent) -> None:
        """Forward a local report about remote actors or objects to their nodes, as a
        Flag from the node's own actor (Mastodon's convention: the reporter stays private)."""
        from node.models import Report

        report = await session.get(Report, e.payload["report_id"])
        if report is None or report.origin_host is not None:
            return  # it came from elsewhere; nothing to forward
        node_actor = await session.scalar(select(Actor).where(Actor.uri == ctx.urls.node_actor()))
        if node_actor is None:
            return
        by_host: dict[str, list[str]] = {}
        for uri in report.target_uris:
            host = host_of(uri)
            if host and host != ctx.domain.lower():
                by_host.setdefault(host, []).append(uri)
        for host, targets in by_host.items():
            author = await author_of(session, targets[0])
            inbox = None
            if author is not None and not author.local:
                inbox = author.shared_inbox_url or author.inbox_url
            if not inbox:
                continue
            activity = {
                "id": f"{report.uri}/{host}",
                "type": "Flag",
                "actor": node_actor.uri,
                "object": targets + ([author.uri] if author.uri not in targets else []),
                "content": report.reason,
                "to": [author.uri],
            }
            await send(ctx, session, node_actor, activity, [inbox], public=False)
