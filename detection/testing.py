"""Rows for the console's role-matrix test: a venue, a device, a held play.

Kept in the package (not in tests/) because the matrix test lives with the
admin tests and only needs one call; real code paths never use it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from node.context import NodeContext
from node.models import Play, Venue, new_uuid, utcnow

from .device_models import PlayHold
from .devices import register_device

MATRIX_VENUE = "Matrix Hall"


async def matrix_device(ctx: NodeContext, *, held_play: bool = False) -> int:
    """A fresh device at "Matrix Hall" (made once); its id, or a held play's id."""
    async with ctx.db.transaction() as s:
        venue = await s.scalar(select(Venue).where(Venue.name == MATRIX_VENUE))
        if venue is None:
            venue = Venue(uri=ctx.urls.obj("venues", new_uuid()), name=MATRIX_VENUE, local=True)
            s.add(venue)
            await s.flush()
        device, _ = await register_device(ctx, s, venue, registered_by="matrix")
        if not held_play:
            return device.id
        uuid = new_uuid()
        play = Play(
            uuid=uuid,
            uri=ctx.urls.obj("plays", uuid),
            listener_uri=ctx.urls.node_actor(),
            track_uri=ctx.urls.obj("tracks", new_uuid()),
            started_at=utcnow() - timedelta(minutes=5),
            ms_listened=60_000,
            source="venue",
            device_id=device.id,
            venue_id=venue.id,
        )
        s.add(play)
        await s.flush()
        s.add(PlayHold(play_id=play.id, device_id=device.id, rule="rate", reason="matrix"))
        return play.id
