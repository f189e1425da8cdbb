"""Media in the console: storage use, the transcode queue, and failed tracks with a retry.

Curators see it (it says nothing private: counts, track titles and why a
master could not be processed); starting a transcode again is machinery,
so retrying is the admin's, written to the audit log.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from media.pipeline import JOB_KIND, retry_track
from media.storage import storage_of
from node.errors import BadRequest
from node.models import TRACK_STATES, Job, Track
from node.validation import F, Schema, iso

from .audit import record, register_audit_action
from .console import CONSOLE, Done, Section, View

CONSOLE.section(Section("media", "Media", "admin.media", role="curator", order=55))
register_audit_action("media.retry", "Retried a track's transcode")

RetryIn = Schema("ConsoleMediaRetry", F("track", "uuid"))
SHOWN = 50


def _track(t: Track) -> dict[str, Any]:
    media = t.media or {}
    return {
        "uuid": t.uuid,
        "title": t.title,
        "artist": t.artist.handle,
        "state": t.state,
        "error": media.get("error"),
        "attempts": media.get("attempts", 0),
        "original_filename": media.get("original_filename"),
        "updated_at": iso(t.updated_at),
    }


@CONSOLE.page("/media", name="admin.media", template="media.html", role="curator", section="media")
async def media_overview(view: View) -> dict[str, Any]:
    """Storage objects and bytes, local tracks by state, the transcode jobs, failures."""
    objects, size = await storage_of(view.ctx).usage()
    async with view.ctx.db.read_session() as s:
        by_state = dict(
            (
                await s.execute(
                    select(Track.state, func.count())
                    .where(Track.local.is_(True))
                    .group_by(Track.state)
                )
            ).all()
        )
        jobs = dict(
            (
                await s.execute(
                    select(Job.state, func.count()).where(Job.kind == JOB_KIND).group_by(Job.state)
                )
            ).all()
        )
        failed = (
            await s.scalars(
                select(Track)
                .where(Track.local.is_(True), Track.state == "failed")
                .order_by(Track.updated_at.desc(), Track.id.desc())
                .limit(SHOWN)
            )
        ).all()
        processing = (
            await s.scalars(
                select(Track)
                .where(Track.local.is_(True), Track.state == "processing")
                .order_by(Track.updated_at, Track.id)
                .limit(SHOWN)
            )
        ).all()
    return {
        "storage": {
            "backend": view.ctx.settings.media.storage,
            "objects": objects,
            "bytes": size,
        },
        "tracks": {state: by_state.get(state, 0) for state in TRACK_STATES},
        "jobs": {state: jobs.get(state, 0) for state in ("queued", "running", "done", "dead")},
        "processing": [_track(t) for t in processing],
        "failed": [_track(t) for t in failed],
    }


@CONSOLE.action(
    "/media/retry", name="admin.media.retry", back="admin.media", role="admin", body=RetryIn
)
async def retry(view: View) -> Done:
    """Queue a failed track's transcode again, with a fresh set of attempts."""
    uuid = view.body.get("track")
    if not uuid:
        raise BadRequest("name the track to retry (field `track`)")
    async with view.ctx.db.transaction() as s:
        track = await retry_track(view.ctx, s, uuid)
        await record(s, view, "media.retry", f"track:{track.uuid}", {"title": track.title})
        data = {"track": _track(track)}
    view.ctx.wake_worker()
    return Done(data, view.url("admin.media"), f"“{track.title}” is queued for transcoding again.")
