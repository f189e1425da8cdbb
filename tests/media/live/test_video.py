"""Video rides along: VP8 from the publisher reaches viewers untouched, late viewers included."""

from __future__ import annotations

import asyncio

from aiortc.mediastreams import VideoStreamTrack

from media.live.client import play, publish
from media.live.http import LIVE

from .conftest import ToneTrack, collect


async def test_vp8_video_is_relayed_and_a_late_viewer_starts_on_a_keyframe(live_node, http):
    token = await live_node.user("jay", role="artist")
    publisher = await publish(
        http, f"{live_node.base_url}/live/jay/whip", token, [ToneTrack(), VideoStreamTrack()]
    )
    b = live_node.app[LIVE].broadcasts["jay"]
    assert b.has_video
    assert b.relays["video"].codec.mimeType.lower() in ("video/vp8", "video/h264")

    early = await play(http, f"{live_node.base_url}/live/jay/whep", video=True)
    video = next(t for t in early.tracks if t.kind == "video")
    frames = await collect(video, 10)
    assert (frames[-1].width, frames[-1].height) == (640, 480)

    # A viewer joining minutes (here: seconds) later must not wait for the next
    # natural keyframe: joining asks the publisher for one (PLI).
    await asyncio.sleep(2.0)
    late = await play(http, f"{live_node.base_url}/live/jay/whep", video=True)
    late_video = next(t for t in late.tracks if t.kind == "video")
    frames = await collect(late_video, 5, timeout=10)
    assert frames[0].width == 640
    audio = next(t for t in late.tracks if t.kind == "audio")
    assert len(await collect(audio, 10)) == 10

    for s in (early, late):
        await s.pc.close()
    await publisher.close(http, {"Authorization": f"Bearer {token}"})


async def test_an_audio_only_viewer_of_a_video_session_gets_audio(live_node, http):
    token = await live_node.user("jay", role="artist")
    publisher = await publish(
        http, f"{live_node.base_url}/live/jay/whip", token, [ToneTrack(), VideoStreamTrack()]
    )
    fan = await play(http, f"{live_node.base_url}/live/jay/whep")
    assert [t.kind for t in fan.tracks] == ["audio"]
    assert len(await collect(fan.tracks[0], 10)) == 10
    await fan.pc.close()
    await publisher.close(http, {"Authorization": f"Bearer {token}"})
