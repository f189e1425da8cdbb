"""Follows, the feed, plays, likes, comments, reposts and reports."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..directory import LocalDirectory
from ..errors import Forbidden, NotFound, ValidationFailed
from ..models import Actor, Comment, Follow, Track
from ..serializers import actor_brief, event_json, release_json
from ..services import social
from ..validation import F, Schema, iso
from . import API
from .routing import Call

# Extra keys of the feed's first page, added by subsystems without the core
# importing them: `ctx.extras[FEED_EXTRAS][key] = async (session, actor_id) -> list`
# (media/live adds `live`, the followed artists on the air now).
FEED_EXTRAS = "api.feed.extras"

FollowIn = Schema(
    "FollowRequest",
    F("target", required=True, max_len=512, description="@handle@domain or an actor URI"),
)
PlayIn = Schema(
    "PlayReport",
    F("track", required=True, max_len=512, description="the track's URI (local or remote)"),
    F("started_at", "datetime", required=True),
    F("ms_listened", "int", required=True, min=0, max=social.MAX_PLAY_MS),
    F(
        "id",
        max_len=64,
        pattern=r"[A-Za-z0-9_.:-]{8,64}",
        description="client-chosen play id; a retry with the same id is not counted twice",
    ),
    F("source", choices=("stream", "subsonic", "radio", "dj")),
)
ObjectIn = Schema(
    "ObjectRef",
    F("object", required=True, max_len=512, description="a track, release or event URI"),
)
ObjectQ = Schema("ObjectQuery", F("object", required=True, max_len=512))
CommentIn = Schema(
    "CommentCreate",
    F("object", required=True, max_len=512),
    F("content", "text", required=True, max_len=5000),
)
ReportIn = Schema(
    "ReportCreate",
    F("targets", "strlist", required=True, max_items=20, max_len=512),
    F("reason", "text", max_len=5000),
)
FeedQ = Schema("FeedQuery", F("cursor", max_len=500), F("limit", "int", min=1, max=100))


def directory(call: Call):
    return call.ctx.directory or LocalDirectory(call.ctx)


def follow_json(f: Follow) -> dict:
    return {
        "id": f.id,
        "uri": f.uri,
        "state": f.state,
        "follower": actor_brief(f.follower),
        "target": actor_brief(f.target),
        "created_at": iso(f.created_at),
        "accepted_at": iso(f.accepted_at),
    }


@API.route(
    "POST",
    "/api/v1/follows",
    name="api.follows.create",
    summary="Follow an actor on any node: `@jay@brooklyn.example` or a URI",
    tag="social",
    body=FollowIn,
    role="fan",
    status=201,
)
async def create_follow(call: Call):
    target_id = await directory(call).resolve_actor(call.body["target"])
    async with call.ctx.db.transaction() as s:
        follower = await s.get(Actor, call.account.actor_id)
        target = await s.get(Actor, target_id)
        return follow_json(await social.request_follow(call.ctx, s, follower, target))


@API.route(
    "GET",
    "/api/v1/follows",
    name="api.follows",
    summary="Who the caller follows, with each follow's state",
    tag="social",
    role="fan",
    response="array",
)
async def list_follows(call: Call):
    async with call.ctx.db.read_session() as s:
        return [follow_json(f) for f in await social.follows_of(s, call.account.actor_id)]


@API.route(
    "DELETE",
    "/api/v1/follows/{id:\\d+}",
    name="api.follows.delete",
    summary="Unfollow",
    tag="social",
    role="fan",
    status=204,
)
async def delete_follow(call: Call):
    async with call.ctx.db.transaction() as s:
        follow = await s.get(Follow, int(call.path("id")))
        if follow is None or follow.follower_id != call.account.actor_id:
            raise NotFound("no such follow")
        await social.undo_follow(call.ctx, s, follow)


@API.route(
    "GET",
    "/api/v1/follow-requests",
    name="api.follow_requests",
    summary="Pending requests to follow the caller (artists who approve followers)",
    tag="social",
    role="fan",
    response="array",
)
async def follow_requests(call: Call):
    async with call.ctx.db.read_session() as s:
        rows = await s.scalars(
            select(Follow)
            .where(Follow.target_id == call.account.actor_id, Follow.state == "pending")
            .order_by(Follow.id)
        )
        return [follow_json(f) for f in rows.all()]


async def _decide(call: Call, accept: bool) -> dict:
    async with call.ctx.db.transaction() as s:
        follow = await s.get(Follow, int(call.path("id")))
        if follow is None or follow.target_id != call.account.actor_id:
            raise NotFound("no such follow request")
        fn = social.accept_follow if accept else social.reject_follow
        return follow_json(await fn(call.ctx, s, follow))


@API.route(
    "POST",
    "/api/v1/follow-requests/{id:\\d+}/accept",
    name="api.follow_requests.accept",
    summary="Accept a follower",
    tag="social",
    role="fan",
)
async def accept_request(call: Call):
    return await _decide(call, True)


@API.route(
    "POST",
    "/api/v1/follow-requests/{id:\\d+}/reject",
    name="api.follow_requests.reject",
    summary="Reject a follower",
    tag="social",
    role="fan",
)
async def reject_request(call: Call):
    return await _decide(call, False)


@API.route(
    "GET",
    "/api/v1/feed",
    name="api.feed",
    summary="Releases and events of followed actors, local or remote, newest first",
    tag="social",
    role="fan",
    query=FeedQ,
)
async def get_feed(call: Call):
    first_page = not call.query.get("cursor")
    async with call.ctx.db.read_session() as s:
        items, nxt = await social.feed(
            s,
            call.account.actor_id,
            cursor=call.query.get("cursor"),
            limit=call.query.get("limit", 20),
        )
        out = []
        for item in items:
            obj = item["object"]
            if item["kind"] == "release":
                body = release_json(obj)
            else:
                body = event_json(obj)
            out.append({"kind": item["kind"], "at": iso(item["at"]), item["kind"]: body})
        result: dict[str, Any] = {"items": out, "next": nxt}
        # What subsystems add to the first page (media/live: `live`, followed artists on the air).
        for key, extra in call.ctx.extras.get(FEED_EXTRAS, {}).items():
            result[key] = await extra(s, call.account.actor_id) if first_page else []
    return result


@API.route(
    "POST",
    "/api/v1/plays",
    name="api.plays.create",
    summary="Report a listen (recorded once per id; remote plays are reported to the track's node)",
    tag="social",
    body=PlayIn,
    role="fan",
    status=201,
)
async def create_play(call: Call):
    kind, track_id = await directory(call).resolve_object(call.body["track"])
    if kind != "track":
        raise ValidationFailed([{"field": "track", "message": f"is a {kind}, not a track"}])
    async with call.ctx.db.transaction() as s:
        listener = await s.get(Actor, call.account.actor_id)
        track = await s.get(Track, track_id)
        await s.refresh(track, ["artist"])
        result = await social.record_play(
            call.ctx,
            s,
            listener,
            track,
            started_at=call.body["started_at"],
            ms_listened=call.body["ms_listened"],
            source=call.body.get("source", "stream"),
            play_id=call.body.get("id"),
        )
        p = result.play
    return {
        "id": p.uuid,
        "uri": p.uri,
        "track": p.track_uri,
        "started_at": iso(p.started_at),
        "ms_listened": p.ms_listened,
        "source": p.source,
        "new": result.created,
    }


async def _object(call: Call, uri: str) -> str:
    await directory(call).resolve_object(uri)
    return uri


@API.route(
    "POST",
    "/api/v1/likes",
    name="api.likes.create",
    summary="Like a track, release or event",
    tag="social",
    body=ObjectIn,
    role="fan",
    status=201,
)
async def create_like(call: Call):
    uri = await _object(call, call.body["object"])
    async with call.ctx.db.transaction() as s:
        row = await social.like(call.ctx, s, await s.get(Actor, call.account.actor_id), uri)
        return {"uri": row.uri, "object": row.object_uri, "created_at": iso(row.created_at)}


@API.route(
    "DELETE",
    "/api/v1/likes",
    name="api.likes.delete",
    summary="Take a like back",
    tag="social",
    query=ObjectQ,
    role="fan",
    status=204,
)
async def delete_like(call: Call):
    async with call.ctx.db.transaction() as s:
        if not await social.unlike(
            call.ctx, s, await s.get(Actor, call.account.actor_id), call.query["object"]
        ):
            raise NotFound("you had not liked that")


def comment_json(c: Comment) -> dict:
    return {
        "uuid": c.uuid,
        "uri": c.uri,
        "object": c.object_uri,
        "author": actor_brief(c.actor),
        "content": c.content,
        "local": c.local,
        "created_at": iso(c.created_at),
    }


@API.route(
    "GET",
    "/api/v1/comments",
    name="api.comments",
    summary="Comments on an object, oldest first",
    tag="social",
    query=ObjectQ,
    response="array",
)
async def list_comments(call: Call):
    async with call.ctx.db.read_session() as s:
        return [comment_json(c) for c in await social.comments_on(s, call.query["object"])]


@API.route(
    "POST",
    "/api/v1/comments",
    name="api.comments.create",
    summary="Comment on a track, release or event (plain text)",
    tag="social",
    body=CommentIn,
    role="fan",
    status=201,
)
async def create_comment(call: Call):
    uri = await _object(call, call.body["object"])
    content = social.plain_text_to_html(call.body["content"])
    if not content:
        raise ValidationFailed([{"field": "content", "message": "may not be empty"}])
    async with call.ctx.db.transaction() as s:
        row = await social.add_comment(
            call.ctx, s, await s.get(Actor, call.account.actor_id), uri, content
        )
        await s.refresh(row, ["actor"])
        return comment_json(row)


@API.route(
    "DELETE",
    "/api/v1/comments/{uuid}",
    name="api.comments.delete",
    summary="Delete a comment (its author, curators)",
    tag="social",
    role="fan",
    status=204,
)
async def delete_comment(call: Call):
    from ..auth import has_role

    async with call.ctx.db.transaction() as s:
        row = await s.scalar(select(Comment).where(Comment.uuid == call.path("uuid")))
        if row is None:
            raise NotFound("no such comment")
        if row.actor_id != call.account.actor_id and not has_role(call.account, "curator"):
            raise Forbidden("not yours")
        await social.delete_comment(call.ctx, s, row)


@API.route(
    "POST",
    "/api/v1/announces",
    name="api.announces.create",
    summary="Repost an object or an artist to your followers (collectives do this)",
    tag="social",
    body=ObjectIn,
    role="artist",
    status=201,
)
async def create_announce(call: Call):
    ref = call.body["object"]
    try:
        await directory(call).resolve_object(ref)
    except NotFound:
        await directory(call).resolve_actor(ref)
    async with call.ctx.db.transaction() as s:
        row = await social.announce(call.ctx, s, await s.get(Actor, call.account.actor_id), ref)
        return {"uri": row.uri, "object": row.object_uri, "created_at": iso(row.created_at)}


@API.route(
    "POST",
    "/api/v1/reports",
    name="api.reports.create",
    summary="Report actors or objects to this node's moderators",
    tag="social",
    body=ReportIn,
    role="fan",
    status=201,
)
async def create_report(call: Call):
    async with call.ctx.db.transaction() as s:
        row = await social.file_report(
            call.ctx, s, call.account.actor.uri, call.body["targets"], call.body.get("reason", "")
        )
        return {"uri": row.uri, "state": row.state, "created_at": iso(row.created_at)}
