"""The change and the message about it commit together, or not at all."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from node.errors import ValidationFailed
from node.events import EventBus
from node.models import Job, Release
from node.services.accounts import create_account
from node.services.catalog import create_release, publish_release


async def test_a_subscriber_writes_its_job_in_the_publishing_transaction(node):
    @node.ctx.bus.on("release.published")
    async def federate(session, event):
        await node.ctx.enqueue(session, "test.federate", {"uri": event.payload["uri"]})

    async with node.ctx.db.transaction() as s:
        jay = await create_account(node.ctx, s, "jay", "a long password", "artist")
        from node.services.catalog import create_track

        track = await create_track(node.ctx, s, jay, {"title": "One"})
        release = await create_release(node.ctx, s, jay, {"title": "EP", "tracks": [track.uuid]})

    # A publish that fails after the event leaves neither the state nor the job.
    @node.ctx.bus.on("release.published")
    async def explode(session, event):
        raise RuntimeError("subscriber failed")

    with pytest.raises(RuntimeError):
        async with node.ctx.db.transaction() as s:
            r = await s.get(Release, release.id)
            await publish_release(node.ctx, s, await s.merge(jay), r)
    async with node.ctx.db.read_session() as s:
        assert (await s.get(Release, release.id)).state == "draft"
        assert (await s.scalars(select(Job).where(Job.kind == "test.federate"))).all() == []

    node.ctx.bus.subscribers["release.published"].remove(explode)
    async with node.ctx.db.transaction() as s:
        r = await s.get(Release, release.id)
        await publish_release(node.ctx, s, await s.merge(jay), r)
    async with node.ctx.db.read_session() as s:
        jobs = (await s.scalars(select(Job).where(Job.kind == "test.federate"))).all()
    assert [j.payload["uri"] for j in jobs] == [release.uri]


async def test_publishing_an_empty_release_is_refused_and_emits_nothing(node):
    emitted = []
    node.ctx.bus.subscribe("release.published", lambda s, e: emitted.append(e) or _done())
    async with node.ctx.db.transaction() as s:
        jay = await create_account(node.ctx, s, "jay", "a long password", "artist")
        release = await create_release(node.ctx, s, jay, {"title": "Empty"})
        with pytest.raises(ValidationFailed):
            await publish_release(node.ctx, s, jay, release)
    assert emitted == []


async def _done() -> None:
    return None


def test_unknown_event_names_are_typos():
    with pytest.raises(ValueError):
        EventBus().subscribe("release.publish", lambda s, e: None)
