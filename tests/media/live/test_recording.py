"""An artist records a live session; it becomes a draft track for the media pipeline."""

from __future__ import annotations

import asyncio

import av
from sqlalchemy import select

from media.live.client import publish
from media.live.models import LiveSession
from node.models import Track

from .conftest import ToneTrack, dominant_hz


async def test_a_recorded_session_becomes_a_track_with_the_same_tone(live_node, http):
    token = await live_node.user("jay", role="artist")
    session = await publish(
        http,
        f"{live_node.base_url}/live/jay/whip?record=1&title=Basement",
        token,
        [ToneTrack(523.0)],
    )
    await asyncio.sleep(3.0)
    assert await session.close(http, {"Authorization": f"Bearer {token}"}) == 200

    async with live_node.ctx.db.read_session() as s:
        live = await s.scalar(select(LiveSession))
        assert live.state == "ended" and live.recording
        track = await s.get(Track, live.recording_track_id)
    assert track.title.startswith("Basement")
    assert track.artist.handle == "jay"
    assert track.state in ("processing", "ready")  # the media pipeline takes it from here

    # The master is a real Ogg Opus file of the session: the same tone comes back.
    path = live_node.settings.data_dir / track.original_path
    with av.open(str(path)) as container:
        frames = [f for f in container.decode(audio=0)]
    seconds = sum(f.samples for f in frames) / 48000
    assert 1.5 < seconds < 5.0
    assert abs(dominant_hz(frames[len(frames) // 4 :]) - 523.0) < 8


async def test_sessions_are_not_recorded_unless_asked(live_node, http):
    token = await live_node.user("jay", role="artist")
    session = await publish(http, f"{live_node.base_url}/live/jay/whip", token, [ToneTrack()])
    await asyncio.sleep(1.5)
    await session.close(http, {"Authorization": f"Bearer {token}"})
    async with live_node.ctx.db.read_session() as s:
        live = await s.scalar(select(LiveSession))
        assert not live.recording and live.recording_track_id is None
        assert (await s.scalar(select(Track))) is None
