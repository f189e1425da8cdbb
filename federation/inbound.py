"""What each inbound activity does here. One handler per (activity, object type)."""

from __future__ import annotations

import hashlib

from sqlalchemy import delete, select

from node.models import Actor, Announce, Comment, Event, Follow, Like, Release, Track
from node.services import social

from .actors import forget_remote_actor, upsert_remote_actor
from .errors import BadActivity
from .handlers import HANDLERS, Inbound
from .objects import parse_time, upsert_remote_event, upsert_remote_release, upsert_remote_track
from .policy import get_instance, is_limited
from .sanitize import clean_html
from .vocab import host_of, id_of, text_of, type_of


def _object(inb: Inbound):
    return inb.activity.get("object")


async def _local_actor(inb: Inbound, uri: str | None) -> Actor | None:
    if not uri:
        return None
    return await inb.session.scalar(select(Actor).where(Actor.uri == uri, Actor.local.is_(True)))


# ---- follows -------------------------------------------------------------------


@HANDLERS.on("Follow")
async def on_follow(inb: Inbound) -> str | None:
    target = await _local_actor(inb, id_of(_object(inb)))
    if target is None:
        return "the followed actor is not on this node"
    instance = await get_instance(inb.session, host_of(inb.actor.uri))
    await social.request_follow(
        inb.ctx,
        inb.session,
        inb.actor,
        target,
        uri=id_of(inb.activity),
        auto_accept=not is_limited(instance),
    )
    return None


async def _our_follow(inb: Inbound) -> Follow | None:
    """The Follow an Accept or Reject answers: by its id, or by (follower, target) for
    servers that send a fresh object (Mastodon embeds ours; some only reference it)."""
    obj = _object(inb)
    follow = (
        await inb.session.scalar(select(Follow).where(Follow.uri == id_of(obj)))
        if id_of(obj)
        else None
    )
    if follow is None and isinstance(obj, dict):
        follower = await _local_actor(inb, id_of(obj.get("actor")))
        if follower is not None:
            follow = await social.find_follow(inb.session, follower.id, inb.actor.id)
    if follow is not None and follow.target_id != inb.actor.id:
        raise BadActivity("only the followed actor may answer a follow")
    return follow


@HANDLERS.on("Accept", "Follow")
async def on_accept_follow(inb: Inbound) -> str | None:
    follow = await _our_follow(inb)
    if follow is None:
        return "no such follow request"
    await inb.session.refresh(follow, ["follower", "target"])
    await social.accept_follow(inb.ctx, inb.session, follow)
    return None


@HANDLERS.on("Reject", "Follow")
async def on_reject_follow(inb: Inbound) -> str | None:
    follow = await _our_follow(inb)
    if follow is None:
        return "no such follow request"
    await social.reject_follow(inb.ctx, inb.session, follow)
    return None


@HANDLERS.on("Accept")
@HANDLERS.on("Reject")
async def on_answer_by_reference(inb: Inbound) -> str | None:
    """Accept/Reject whose object is a bare id: look it up as one of our follows."""
    follow = await _our_follow(inb)
    if follow is None:
        return "nothing of ours to accept or reject"
    await inb.session.refresh(follow, ["follower", "target"])
    fn = social.accept_follow if inb.activity.get("type") == "Accept" else social.reject_follow
    await fn(inb.ctx, inb.session, follow)
    return None


@HANDLERS.on("Undo", "Follow")
async def on_undo_follow(inb: Inbound) -> str | None:
    obj = _object(inb)
    follow = (
        await inb.session.scalar(select(Follow).where(Follow.uri == id_of(obj)))
        if id_of(obj)
        else None
    )
    if follow is None and isinstance(obj, dict):
        target = await _local_actor(inb, id_of(obj.get("object")))
        if target is not None:
            follow = await social.find_follow(inb.session, inb.actor.id, target.id)
    if follow is None:
        return "no such follow"
    if follow.follower_id != inb.actor.id:
        raise BadActivity("only the follower may undo a follow")
    await inb.session.refresh(follow, ["follower", "target"])
    await social.undo_follow(inb.ctx, inb.session, follow)
    return None


@HANDLERS.on("Undo", "Like")
async def on_undo_like(inb: Inbound) -> str | None:
    obj = _object(inb)
    like = await inb.session.scalar(
        select(Like).where(Like.uri == id_of(obj), Like.actor_id == inb.actor.id)
    )
    if like is None:
        return "no such like"
    await social.unlike(inb.ctx, inb.session, inb.actor, like.object_uri)
    return None


@HANDLERS.on("Undo", "Announce")
async def on_undo_announce(inb: Inbound) -> str | None:
    result = await inb.session.execute(
        delete(Announce).where(
            Announce.uri == id_of(_object(inb)), Announce.actor_id == inb.actor.id
        )
    )
    return None if result.rowcount else "no such repost"


@HANDLERS.on("Undo")
async def on_undo_other(inb: Inbound) -> str | None:
    return f"nothing to undo for a {type_of(_object(inb)) or 'reference'}"


# ---- catalog -------------------------------------------------------------------


async def _embedded_or_fetched(inb: Inbound, obj) -> dict | None:
    """Trust an embedded object only from its own host (the signer's); fetch the rest."""
    if isinstance(obj, dict) and host_of(id_of(obj) or "") == host_of(inb.actor.uri):
        return obj
    uri = id_of(obj)
    if not uri:
        return None
    return await inb.directory.client.get_json(uri)


async def _announce_locally(inb: Inbound, kind: str, row) -> None:
    """Tell this node's own subscribers (search) that a remote object changed.

    The outbox ignores remote objects, so nothing is sent back out.
    """
    await inb.ctx.bus.emit(inb.session, f"{kind}.updated", **{f"{kind}_id": row.id}, uri=row.uri)


@HANDLERS.on("Create", "Album")
@HANDLERS.on("Update", "Album")
async def on_album(inb: Inbound) -> str | None:
    doc = await _embedded_or_fetched(inb, _object(inb))
    release = await upsert_remote_release(inb.ctx, inb.session, doc, inb.actor)
    await _announce_locally(inb, "release", release)
    return None


@HANDLERS.on("Create", "Audio")
@HANDLERS.on("Update", "Audio")
async def on_audio(inb: Inbound) -> str | None:
    doc = await _embedded_or_fetched(inb, _object(inb))
    track = await upsert_remote_track(inb.ctx, inb.session, doc, inb.actor)
    await _announce_locally(inb, "track", track)
    inb.actor.is_artist = True
    return None


@HANDLERS.on("Create", "Event")
@HANDLERS.on("Update", "Event")
async def on_event(inb: Inbound) -> str | None:
    doc = await _embedded_or_fetched(inb, _object(inb))
    event = await upsert_remote_event(inb.ctx, inb.session, doc, inb.actor)
    await _announce_locally(inb, "event", event)
    return None


@HANDLERS.on("Create", "Note")
@HANDLERS.on("Update", "Note")
async def on_note(inb: Inbound) -> str | None:
    """A release post (its Album rides along), or a comment on something we know."""
    note = await _embedded_or_fetched(inb, _object(inb))
    if note is None:
        return "empty note"
    if note.get("release") is not None:
        release = await _embedded_or_fetched(inb, note["release"])
        if release is not None and type_of(release) == "Album":
            row = await upsert_remote_release(inb.ctx, inb.session, release, inb.actor)
            await _announce_locally(inb, "release", row)
            return None
    target = id_of(note.get("inReplyTo"))
    if not target:
        return "a post that is not about anything we know"
    known = False
    for model in (Track, Release, Event):
        if await inb.session.scalar(select(model.id).where(model.uri == target)):
            known = True
    if not known:
        return "a reply to something we do not know"
    uri = id_of(note)
    if host_of(uri or "") != host_of(inb.actor.uri):
        raise BadActivity("a note from another host than its author")
    content = clean_html(text_of(note.get("content"), 20_000))
    existing = await inb.session.scalar(select(Comment).where(Comment.uri == uri))
    if existing is not None:
        if existing.actor_id != inb.actor.id:
            raise BadActivity("that comment belongs to someone else")
        existing.content = content
        return None
    await social.add_comment(
        inb.ctx,
        inb.session,
        inb.actor,
        target,
        content,
        uri=uri,
        local=False,
        created_at=parse_time(note.get("published")),
    )
    return None


@HANDLERS.on("Update", "Person")
@HANDLERS.on("Update", "Group")
@HANDLERS.on("Update", "Organization")
@HANDLERS.on("Update", "Service")
@HANDLERS.on("Update", "Application")
async def on_actor_update(inb: Inbound) -> str | None:
    obj = _object(inb)
    if id_of(obj) != inb.actor.uri:
        raise BadActivity("actors update only themselves")
    doc = obj if isinstance(obj, dict) else await inb.directory.client.get_json(inb.actor.uri)
    actor = await upsert_remote_actor(inb.ctx, inb.session, doc, inb.actor.uri)
    await inb.ctx.bus.emit(inb.session, "actor.updated", actor_id=actor.id, uri=actor.uri)
    return None


@HANDLERS.on("Create")
@HANDLERS.on("Update")
async def on_other_object(inb: Inbound) -> str | None:
    return f"we do not keep {type_of(_object(inb)) or 'untyped'} objects"


@HANDLERS.on("Delete")
async def on_delete(inb: Inbound) -> str | None:
    uri = id_of(_object(inb))
    if not uri:
        raise BadActivity("Delete without an object")
    if uri == inb.actor.uri:
        await forget_remote_actor(inb.session, inb.actor)
        return None
    if host_of(uri) != host_of(inb.actor.uri):
        raise BadActivity("an actor may only delete objects on its own host")
    for model, owner in (
        (Release, Release.artist_id),
        (Track, Track.artist_id),
        (Event, Event.organizer_id),
    ):
        row = await inb.session.scalar(
            select(model).where(model.uri == uri, owner == inb.actor.id, model.local.is_(False))
        )
        if row is not None:
            kind = {Release: "release", Track: "track", Event: "event"}[model]
            await inb.session.delete(row)
            await inb.session.flush()
            await inb.ctx.bus.emit(
                inb.session, f"{kind}.deleted", uri=uri, was_public=True, owner_uri=inb.actor.uri
            )
            return None
    comment = await inb.session.scalar(
        select(Comment).where(Comment.uri == uri, Comment.actor_id == inb.actor.id)
    )
    if comment is not None:
        await social.delete_comment(inb.ctx, inb.session, comment)
        return None
    return "nothing of that id here"


# ---- reactions ---------------------------------------------------------------------


async def _known_uri(inb: Inbound, uri: str | None) -> bool:
    if not uri:
        return False
    for model in (Track, Release, Event, Actor):
        if await inb.session.scalar(select(model.id).where(model.uri == uri)):
            return True
    return False


@HANDLERS.on("Like")
async def on_like(inb: Inbound) -> str | None:
    target = id_of(_object(inb))
    if not await _known_uri(inb, target):
        return "a like of something we do not know"
    await social.like(inb.ctx, inb.session, inb.actor, target, uri=id_of(inb.activity))
    return None


@HANDLERS.on("Announce")
async def on_announce(inb: Inbound) -> str | None:
    target = id_of(_object(inb))
    if not target:
        raise BadActivity("Announce without an object")
    await social.announce(inb.ctx, inb.session, inb.actor, target, uri=id_of(inb.activity))
    return None


@HANDLERS.on("Flag")
async def on_flag(inb: Inbound) -> str | None:
    from .vocab import ids_of

    targets = ids_of(_object(inb))
    if not targets:
        raise BadActivity("Flag without an object")
    await social.file_report(
        inb.ctx,
        inb.session,
        inb.actor.uri,
        targets,
        text_of(inb.activity.get("content"), 5000),
        uri=id_of(inb.activity),
        origin_host=host_of(inb.actor.uri),
    )
    return None


@HANDLERS.on("Listen")
async def on_listen(inb: Inbound) -> str | None:
    """A play of one of our tracks on another node (DESIGN.md 6): counted once per activity id."""
    activity = inb.activity
    track_uri = id_of(_object(inb))
    track = await inb.session.scalar(
        select(Track).where(Track.uri == track_uri, Track.local.is_(True))
    )
    if track is None:
        return "a listen of a track that is not ours"
    await inb.session.refresh(track, ["artist"])
    started = parse_time(activity.get("startTime")) or parse_time(activity.get("published"))
    if started is None:
        raise BadActivity("Listen without a time")
    ms = activity.get("msListened")
    if not isinstance(ms, int) or isinstance(ms, bool):
        obj = _object(inb)
        from .objects import parse_duration_ms

        ms = (
            parse_duration_ms(obj.get("duration")) if isinstance(obj, dict) else None
        )  # Funkwhale: the whole track
        ms = ms or track.duration_ms or 0
    source = text_of(activity.get("source"), 16) or "stream"
    if source not in ("stream", "subsonic", "venue", "dj", "radio"):
        source = "stream"
    play_id = hashlib.sha256(id_of(activity).encode()).hexdigest()
    await social.record_play(
        inb.ctx,
        inb.session,
        inb.actor,
        track,
        started_at=started,
        ms_listened=ms,
        source=source,
        play_id=play_id,
        uri=id_of(activity),
        origin="remote",
    )
    return None
