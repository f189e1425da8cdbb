"""The issue's story, end to end on a real node: a venue manager registers a
device, runs the agent on a noisy recording of a catalog track, and the play
shows at the venue, in the artist's venue stats, and in the next royalty
close, where the venue's licence fee goes to the artist who was played."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import numpy as np
import tomli_w
from sqlalchemy import select

from detection import synth
from detection.audio import encode_pcm
from detection.fingerprint import SAMPLE_RATE
from node.models import Actor, Venue

ROOT = Path(__file__).resolve().parents[2]


async def test_a_venue_device_hears_a_song_and_the_artist_is_paid_at_close(
    live_node, catalog, songs, tmp_path
):
    from royalties.close import close_period
    from royalties.ledger import artist_account, balance
    from royalties.money import Money
    from royalties.venues import set_licence

    ids = await catalog(live_node, seeds=(3, 8))
    # The synthesized catalog's songs are 24 s long; a play counts from 20 s here.
    live_node.settings.values["royalties.min_play_ms"] = 20_000
    token = await live_node.user("nightowl", "artist")
    auth = {"Authorization": f"Bearer {token}"}

    # The venue's manager adds the venue and registers a device for it.
    async with aiohttp.ClientSession(live_node.base_url) as http:
        venue = await (
            await http.post(
                "/api/v1/venues", json={"name": "Mood Ring", "borough": "Queens"}, headers=auth
            )
        ).json()
        created = await http.post("/api/v1/devices", json={"venue": venue["uuid"]}, headers=auth)
        assert created.status == 201
        credential = (await created.json())["credential"]
    config = tmp_path / "mood-ring.toml"
    config.write_text(tomli_w.dumps({"device": credential}))
    async with live_node.ctx.db.transaction() as s:
        place = (await s.scalars(select(Venue).where(Venue.uuid == venue["uuid"]))).one()
        await set_licence(s, place, Money(10_000, "USD"))

    # A noisy recording of song 8 in the room: crowd babble 5 dB below it.
    music = songs[8]
    room = synth.mix_at_snr(
        synth.lowpass(music, 3200.0), synth.babble(5, music.size / SAMPLE_RATE), 5.0
    )
    wav = tmp_path / "room.wav"
    wav.write_bytes(encode_pcm(np.asarray(room, np.float32), "wav"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "node.cli",
        "device",
        "run",
        "--config",
        str(config),
        "--input",
        str(wav),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    assert out.decode().count("recognised") == 1

    # The play is at the venue and in the artist's venue stats.
    async with aiohttp.ClientSession(live_node.base_url) as http:
        venue_page = await (await http.get(f"/venues/{venue['uuid']}")).text()
        stats = await (await http.get("/@synthband/venues")).text()
    assert "Song 8" in venue_page and "Song 3" not in venue_page
    assert "Mood Ring" in stats and "1 venue play" in stats

    # The month closes: the venue's fee, less the node's and foundation's
    # shares, goes to the one artist whose track was heard there.
    now = datetime.now(UTC)
    period = f"{now.year:04d}-{now.month:02d}"
    next_month = (now.replace(day=1) + timedelta(days=32)).replace(day=1, hour=1)
    await close_period(live_node.ctx, period, closed_by="test", now=next_month)
    async with live_node.ctx.db.read_session() as s:
        artist = (await s.scalars(select(Actor).where(Actor.handle == "synthband"))).one()
        earned = await balance(s, artist_account(artist.uri), "USD")
    r = live_node.settings.royalties
    assert earned == Money(
        10_000 * (10_000 - r.node_share_bps - r.foundation_share_bps) // 10_000, "USD"
    )
    assert ids[8]
