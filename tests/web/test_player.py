"""A fan listens in a real browser (headless Debian Chromium): plays a release,
seeks on the waveform, keeps listening while browsing to the artist's page,
skips with the keyboard, and the finished listen is counted as a play."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from sqlalchemy import func, select

pytestmark = pytest.mark.browser

SECONDS = 12


def synth_mp3(seconds: float, freq: float) -> bytes:
    """A short stereo mp3 of a chord, encoded with PyAV (no fixture files)."""
    import av

    rate = 44100
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(2 * np.pi * freq * 1.5 * t)).astype(
        np.float32
    )
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate)
        stream.bit_rate = 128_000
        stream.layout = "stereo"
        frame_size = 1152
        for i in range(0, len(wave), frame_size):
            block = wave[i : i + frame_size]
            planar = np.stack([block, block])
            frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout="stereo")
            frame.sample_rate = rate
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


async def make_playable(node, uuid: str, handle: str, freq: float) -> None:
    """What the media pipeline leaves behind: the mp3 and peaks in storage."""
    from media.storage import STORAGE
    from node.models import Track

    storage = node.app[STORAGE]
    key = f"audio/{handle}/{uuid}/mp3_128.mp3"
    obj = await storage.put_bytes(key, synth_mp3(SECONDS, freq), "audio/mpeg")
    peaks = [round(abs(float(np.sin(i / 9))) * 0.9 + 0.05, 3) for i in range(400)]
    wave_key = f"audio/{handle}/{uuid}/waveform.json"
    await storage.put_bytes(
        wave_key,
        json.dumps({"version": 1, "duration_ms": SECONDS * 1000, "peaks": peaks}).encode(),
        "application/json",
    )
    async with node.ctx.db.transaction() as s:
        track = await s.scalar(select(Track).where(Track.uuid == uuid))
        track.media = {
            "files": {"mp3_128": {"key": key, "mime": "audio/mpeg", "size": obj.size}},
            "waveform": wave_key,
        }
        track.state = "ready"
        track.duration_ms = SECONDS * 1000


@pytest.fixture
async def scene(network, seed):
    """A live node (plays count after 2 s here) with a published two-track EP."""
    import aiohttp

    (node,) = await network(1, **{"royalties.min_play_ms": 2000})
    async with aiohttp.ClientSession(node.base_url) as http:
        node.client = http
        await node.user("jay", "artist", name="Jay Fulton")
        await node.user("maya", "fan", password="correct horse battery")
        ep = await seed.release(
            node, "jay", "Kings County", [("Fulton St", 12_000), ("Myrtle Ave", 12_000)]
        )
        for t, freq in zip(ep["tracks"], (220.0, 330.0), strict=True):
            await make_playable(node, t["uuid"], "jay", freq)
        yield node, ep
        node.client = None


async def sign_in(page, base: str) -> None:
    await page.goto(base + "/login")
    await page.get_by_label("Username").fill("maya")
    await page.get_by_label("Password").fill("correct horse battery")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(base + "/")


async def position(page) -> int:
    return int(await page.locator("[data-player-wave]").get_attribute("aria-valuenow"))


async def wait_for_position(page, at_least: int) -> None:
    for _ in range(200):
        if await position(page) >= at_least:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"playback never reached {at_least}s")


async def wait_for_position_below(page, seconds: int) -> None:
    for _ in range(200):
        if await position(page) < seconds:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"playback never went back under {seconds}s")


async def plays_of(node) -> int:
    from node.models import Play

    async with node.ctx.db.read_session() as s:
        return await s.scalar(select(func.count()).select_from(Play))


async def test_a_fan_plays_seeks_and_keeps_listening_while_browsing(scene, page):
    node, ep = scene
    base = node.base_url
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    await sign_in(page, base)

    await page.goto(f"{base}/releases/{ep['uuid']}")
    bar = page.locator("[data-player]")
    assert await bar.is_hidden()
    await page.get_by_role("button", name="Play all").click()

    await bar.wait_for(state="visible")
    await page.wait_for_selector("[data-player][data-state=playing]")
    assert await page.locator("[data-player-title]").inner_text() == "Fulton St"
    assert await page.locator("[data-player-artist]").inner_text() == "Jay Fulton"
    assert await page.locator("[data-player-count]").inner_text() == "2"
    await wait_for_position(page, 1)

    # Seek by clicking the middle of the waveform.
    wave = page.locator("[data-player-wave]")
    box = await wave.bounding_box()
    await page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    await wait_for_position(page, SECONDS // 2 - 1)
    assert await position(page) <= SECONDS // 2 + 2

    # Browse to the artist: the page changes, the music does not stop.
    await page.evaluate("window.__sameDocument = true")
    await page.locator(".release-by a").first.click()
    await page.wait_for_url(f"{base}/@jay")
    await page.get_by_role("heading", name="Jay Fulton").wait_for()
    assert await page.evaluate("window.__sameDocument === true")
    assert await page.title() != ""
    before = await position(page)
    await wait_for_position(page, before + 2)  # and over the 2 s that make a play
    assert await bar.get_attribute("data-state") == "playing"

    # Following the artist (a form post) does not interrupt the music either.
    await page.get_by_role("button", name="Follow Jay Fulton").click()
    await page.locator(".follow-state", has_text="Following").wait_for()
    assert await page.evaluate("window.__sameDocument === true")
    assert await bar.get_attribute("data-state") == "playing"

    # The keyboard skips to the next track; the first listen is reported.
    await page.locator("body").click(position={"x": 5, "y": 5})
    await page.keyboard.press("n")
    await page.locator("[data-player-title]", has_text="Myrtle Ave").wait_for()
    for _ in range(100):
        if await plays_of(node) >= 1:
            break
        await asyncio.sleep(0.1)
    assert await plays_of(node) == 1

    # The OS media controls know what is playing.
    assert await page.evaluate("navigator.mediaSession.metadata.title") == "Myrtle Ave"
    assert await page.evaluate("navigator.mediaSession.metadata.artist") == "Jay Fulton"

    # Arrow keys skip 5 s; "p" early in a track goes back to the previous one.
    await wait_for_position(page, 0)
    start = await position(page)
    await page.keyboard.press("ArrowRight")
    await wait_for_position(page, start + 4)
    for _ in range(3):
        await page.keyboard.press("ArrowLeft")
    await wait_for_position_below(page, 2)
    await page.keyboard.press("p")
    await page.locator("[data-player-title]", has_text="Fulton St").wait_for()

    # Volume.
    await page.locator("[data-player-volume]").fill("0.3")
    assert await page.evaluate("document.querySelector('[data-player-audio]').volume") == 0.3

    # Space pauses (not while typing in a field), and Back returns to the
    # release with the player intact.
    await page.keyboard.press("Space")
    assert await bar.get_attribute("data-state") == "playing"  # focus is on the slider
    await page.locator("body").click(position={"x": 5, "y": 5})
    await page.keyboard.press("Space")
    await page.wait_for_selector("[data-player][data-state=paused]")
    await page.go_back()
    await page.wait_for_url(f"{base}/releases/{ep['uuid']}")
    await page.get_by_role("heading", name="Kings County").wait_for()
    assert await page.evaluate("window.__sameDocument === true")
    assert await bar.is_visible()
    assert errors == []


async def test_a_short_listen_is_not_counted_and_anonymous_listeners_can_play(scene, page):
    node, ep = scene
    base = node.base_url
    first = ep["tracks"][0]["uuid"]
    await page.goto(f"{base}/tracks/{first}")
    await page.get_by_role("button", name="Play", exact=True).click()
    await page.wait_for_selector("[data-player][data-state=playing]")
    await wait_for_position(page, 1)
    # The waveform was fetched and drawn: some pixels are in the played colour.
    painted = await page.evaluate(
        """() => {
          const c = document.querySelector('[data-player-wave]');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
          return n;
        }"""
    )
    assert painted > 0
    await page.keyboard.press("Space")
    await page.wait_for_selector("[data-player][data-state=paused]")
    await page.goto(base + "/")  # a full page load: the listen is abandoned
    await asyncio.sleep(0.5)
    assert await plays_of(node) == 0  # anonymous: nobody to count it for
