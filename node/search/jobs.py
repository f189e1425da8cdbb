"""Keeping the index current: bus subscribers enqueue `search.index` jobs; the
job reconciles one object's documents with the database.

Why a job and not a write in the request: the index has one writer, may live
in another process (`nycmg worker`), and must never make a request fail.
The subscriber writes the job in the change's own transaction (DESIGN.md 1),
so a committed change always reaches the index.

The job is op-agnostic: it loads the object's current row by URI and upserts
the document if the object is public, deletes it otherwise. That makes jobs
idempotent, safe to retry and safe to coalesce, whatever the order they run in.

Coalescing. A burst of changes to one object (create then upload, edit after
edit, an import) should give one job, but a change after that job has started
must give another, or it would be lost. `dedupe_key` is unique across every
job row, done ones included, so a constant key would block an object forever.
So the key is held only while the job waits: the handler's first act is to
clear its own `dedupe_key` (in a committed transaction of its own) before it
reads the database. A subscriber that finds the key locks that row (FOR UPDATE
on PostgreSQL; SQLite serializes writers anyway), so the handler cannot clear
the key, and therefore cannot read the state, until the subscriber's
transaction has committed. Either the waiting job sees the change, or the key
is free and a new job is queued.

Cascades, done inside the one job: a release's publication, edit or deletion
re-indexes its tracks (their visibility and subtitles follow it); an artist's
rename, borough or genre change re-indexes their releases, tracks and events;
a venue's change re-indexes its events. Documents found in the index (by
their `artist`/`release` fields) are reconciled too, so things that left the
database or a release are removed even when the database no longer links them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..events import DomainEvent
from ..models import Actor, Event, Job, Release, Track, Venue
from . import documents as D
from .index import SearchIndex

log = logging.getLogger("nycmg.search")

JOB_KIND = "search.index"
JOB_PRIORITY = 200  # after deliveries and media work; a second's lag in search is fine

# event name prefix -> the kind of object it is about
_SUBJECTS = {
    "actor": "artist",
    "release": "release",
    "track": "track",
    "event": "event",
    "venue": "venue",
}
EVENTS = (
    "actor.created",
    "actor.updated",
    "actor.deleted",
    "release.created",
    "release.updated",
    "release.published",
    "release.deleted",
    "track.created",
    "track.uploaded",
    "track.updated",
    "track.deleted",
    "event.created",
    "event.updated",
    "event.deleted",
    "venue.created",
    "venue.updated",
)


def dedupe_key(kind: str, uri: str) -> str:
    """The key a waiting job holds for one object (hashed: URIs can be 512 long)."""
    return f"{JOB_KIND}:{kind}:{hashlib.sha256(uri.encode()).hexdigest()[:40]}"


async def enqueue_index(
    ctx: Any, session: AsyncSession, kind: str, uri: str, obj_id: Any, op: str
) -> bool:
    """Queue (or join a waiting) `search.index` job for one object; True if a new job."""
    key = dedupe_key(kind, uri)
    payload = {"type": kind, "id": obj_id if obj_id is not None else uri, "uri": uri, "op": op}
    for _ in range(3):
        waiting = await session.scalar(
            select(Job.id).where(Job.dedupe_key == key).with_for_update()
        )
        if waiting is not None:
            return False
        try:
            job = await ctx.enqueue(
                session, JOB_KIND, payload, dedupe_key=key, priority=JOB_PRIORITY
            )
        except IntegrityError:  # pragma: no cover - enqueue handles it; belt and braces
            job = None
        if job is not None:
            return True
        # Lost a race with a concurrent enqueue: loop to lock the winner's row.
    # Could not join nor insert (keys churning): a keyless job is always safe.
    await ctx.enqueue(session, JOB_KIND, payload, priority=JOB_PRIORITY)
    return True


def register_search(ctx: Any, index: SearchIndex) -> None:
    """Subscribe to catalog events and register the `search.index` job handler."""

    async def on_event(session: AsyncSession, evt: DomainEvent) -> None:
        prefix, _, verb = evt.name.partition(".")
        kind = _SUBJECTS[prefix]
        uri = evt.payload.get("uri")
        if not uri:
            return
        obj_id = evt.payload.get(f"{prefix}_id")
        op = "delete" if verb == "deleted" else "upsert"
        await enqueue_index(ctx, session, kind, uri, obj_id, op)

    for name in EVENTS:
        ctx.bus.subscribe(name, on_event)

    async def handle(job: Job) -> None:
        if job.dedupe_key is not None:
            # Free the key first (see the module docstring), then read the state.
            async with ctx.db.transaction() as s:
                await s.execute(
                    update(Job)
                    .where(Job.id == job.id)
                    .values(dedupe_key=None)
                    .execution_options(synchronize_session=False)
                )
        payload = job.payload or {}
        kind, uri = payload.get("type"), payload.get("uri") or payload.get("id")
        if kind not in (*D.DOC_TYPES, "venue") or not isinstance(uri, str):
            from ..jobs import PermanentFailure

            raise PermanentFailure(f"bad search.index payload {payload!r}")
        await reconcile(ctx, index, kind, uri)

    ctx.jobs.register(JOB_KIND, handle)


# ---- reconciling ------------------------------------------------------------


@dataclass
class Plan:
    """The documents one job writes, in one commit."""

    upserts: dict[str, dict[str, Any]] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)

    def put(self, uri: str, doc: dict[str, Any] | None) -> None:
        if doc is None:
            self.upserts.pop(uri, None)
            self.deletes.add(uri)
        else:
            self.deletes.discard(uri)
            self.upserts[uri] = doc


async def reconcile(ctx: Any, index: SearchIndex, kind: str, uri: str) -> int:
    """Bring the documents of one object (and what depends on it) in line with the database."""
    return await reconcile_many(ctx, index, [(kind, uri)])


async def reconcile_many(ctx: Any, index: SearchIndex, items: Iterable[tuple[str, str]]) -> int:
    """Reconcile several objects and write the result in one commit."""
    plan = Plan()
    async with ctx.db.read_session() as s:
        for kind, uri in dict.fromkeys(items):
            if kind == "artist":
                await _artist(s, index, uri, plan)
            elif kind == "release":
                await _release(s, index, uri, plan)
            elif kind == "track":
                await _tracks(s, [uri], plan)
            elif kind == "event":
                await _events(s, plan, uris=[uri])
            elif kind == "venue":
                venue_id = await s.scalar(select(Venue.id).where(Venue.uri == uri))
                if venue_id is not None:
                    await _events(s, plan, where=Event.venue_id == venue_id)
    return await index.apply(plan.upserts.values(), plan.deletes)


async def _tracks(s: AsyncSession, uris: Iterable[str], plan: Plan) -> None:
    uris = list(dict.fromkeys(uris))
    for chunk in _chunks(uris, 500):
        rows = (await s.scalars(D.tracks_query().where(Track.uri.in_(chunk)))).unique().all()
        found = {t.uri: t for t in rows}
        for u in chunk:
            t = found.get(u)
            plan.put(u, D.track_doc(t) if D.track_public(t) else None)


async def _events(
    s: AsyncSession, plan: Plan, *, uris: list[str] | None = None, where: Any = None
) -> None:
    stmt = D.events_query()
    stmt = stmt.where(Event.uri.in_(uris)) if uris is not None else stmt.where(where)
    rows = (await s.scalars(stmt)).unique().all()
    found = {e.uri: e for e in rows}
    for u in uris or ():
        if u not in found:
            plan.put(u, None)
    for e in rows:
        plan.put(e.uri, D.event_doc(e) if D.event_public(e) else None)


async def _release(s: AsyncSession, index: SearchIndex, uri: str, plan: Plan) -> None:
    release = (await s.scalars(D.releases_query().where(Release.uri == uri))).unique().one_or_none()
    plan.put(uri, D.release_doc(release) if D.release_public(release) else None)
    tracks = list(release.tracks) if release is not None else []
    for t in tracks:
        plan.put(t.uri, D.track_doc(t) if D.track_public(t) else None)
    # Tracks indexed as part of this release but no longer in it (removed, or the
    # release is gone): reconcile each on its own.
    current = {t.uri for t in tracks}
    stale = [f["uri"] for f in await index.lookup("release", uri) if f.get("type") == "track"]
    await _tracks(s, [u for u in stale if u not in current], plan)


async def _artist(s: AsyncSession, index: SearchIndex, uri: str, plan: Plan) -> None:
    actor = (await s.scalars(D.artists_query().where(Actor.uri == uri))).one_or_none()
    doc = D.artist_doc(actor) if D.artist_public(actor) else None
    plan.put(uri, doc)
    indexed = await index.lookup("artist", uri)
    mine = next((f for f in indexed if f.get("uri") == uri), None)
    if actor is not None and mine is not None and doc is not None and not _shown_changed(mine, doc):
        return  # nothing their releases, tracks or events show has changed
    others = [f for f in indexed if f.get("uri") != uri]
    if actor is not None:
        rel = (
            (await s.scalars(D.releases_query().where(Release.artist_id == actor.id)))
            .unique()
            .all()
        )
        for r in rel:
            plan.put(r.uri, D.release_doc(r) if D.release_public(r) else None)
        trk = (await s.scalars(D.tracks_query().where(Track.artist_id == actor.id))).unique().all()
        for t in trk:
            plan.put(t.uri, D.track_doc(t) if D.track_public(t) else None)
        await _events(s, plan, where=Event.organizer_id == actor.id)
    handled = set(plan.upserts) | plan.deletes
    leftovers = [f for f in others if f["uri"] not in handled]
    # Documents the database no longer ties to this artist: look each one up again.
    by_type: dict[str, list[str]] = {}
    for f in leftovers:
        by_type.setdefault(f.get("type", ""), []).append(f["uri"])
    await _tracks(s, by_type.get("track", []), plan)
    if by_type.get("event"):
        await _events(s, plan, uris=by_type["event"])
    for u in by_type.get("release", []):
        r = (await s.scalars(D.releases_query().where(Release.uri == u))).unique().one_or_none()
        plan.put(u, D.release_doc(r) if D.release_public(r) else None)


def _shown_changed(stored: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Did anything other documents show about an artist change (name, borough, genres)?"""
    return (
        stored.get("name", "") != doc["name"]
        or stored.get("borough") != doc["borough"]
        or list(stored.get("genres") or []) != doc["genres"]
    )


def _chunks(items: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


__all__ = [
    "register_search",
    "reconcile",
    "reconcile_many",
    "enqueue_index",
    "dedupe_key",
    "JOB_KIND",
]
