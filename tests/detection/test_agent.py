"""The venue agent against a real node: it hears a noisy recording of catalog
songs, fingerprints it, buffers while the node is down, survives being
killed, and in the end every window is counted once and every song is one
play at the venue."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import aiohttp
import numpy as np
from aiohttp import web
from sqlalchemy import select

from detection import synth
from detection.audio import encode_pcm
from detection.device_models import DetectionItem
from detection.fingerprint import SAMPLE_RATE
from node.app import create_app
from node.appkeys import CTX
from node.models import Play

ROOT = Path(__file__).resolve().parents[2]


async def _register(node, tmp: Path) -> Path:
    """A venue manager registers a device over HTTP; the credential goes in a file."""
    token = await node.user("mo", "artist")
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(node.base_url) as http:
        venue = await (
            await http.post(
                "/api/v1/venues", json={"name": "Union Pool", "borough": "Brooklyn"}, headers=auth
            )
        ).json()
        body = await (
            await http.post("/api/v1/devices", json={"venue": venue["uuid"]}, headers=auth)
        ).json()
    import tomli_w

    path = tmp / "device.toml"
    path.write_text(tomli_w.dumps({"device": body["credential"]}))
    path.chmod(0o600)
    return path


def _recording(songs, seeds, snr_db: float = 10.0) -> np.ndarray:
    """The catalog songs back to back, as a room hears them: babble and a low-pass."""
    music = np.concatenate([songs[s] for s in seeds])
    room = synth.lowpass(music, 3000.0)
    return synth.mix_at_snr(room, synth.babble(99, music.size / SAMPLE_RATE), snr_db).astype(
        np.float32
    )


def _agent(config: Path, source: str, *extra: str, stdin=None) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "node.cli",
            "device",
            "run",
            "--config",
            str(config),
            "--input",
            source,
            "--max-backoff",
            "0.5",
            *extra,
        ],
        cwd=ROOT,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _buffered(state: Path) -> int:
    if not state.exists():
        return 0
    try:
        with sqlite3.connect(state, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


async def _wait(pred, seconds: float = 60.0) -> None:
    for _ in range(int(seconds * 10)):
        if pred():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out waiting")


async def _finish(proc: subprocess.Popen, seconds: float = 120.0) -> tuple[int, str, str]:
    out, err = await asyncio.to_thread(proc.communicate, timeout=seconds)
    return proc.returncode, out.decode(), err.decode()


async def test_the_agent_buffers_while_the_node_is_down_and_survives_a_kill(
    live_node, catalog, songs, tmp_path
):
    ids = await catalog(live_node, seeds=(2, 5, 9))
    config = await _register(live_node, tmp_path)
    state = Path(str(config) + ".agent.sqlite")
    wav = tmp_path / "night.wav"
    wav.write_bytes(encode_pcm(_recording(songs, (2, 5, 9)), "wav"))  # 72 s

    # The node goes down; the agent hears the first part of the night and is killed.
    settings = live_node.settings
    await live_node.runner.cleanup()
    first = _agent(config, str(wav), "--pace", "12")
    await _wait(lambda: _buffered(state) >= 4)
    first.send_signal(signal.SIGKILL)
    first.wait()
    buffered_before = _buffered(state)
    assert 4 <= buffered_before < 14  # killed in the middle of the file

    # The node comes back on the same address; the agent starts again.
    app = create_app(settings, worker=True)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(settings.node.domain.rsplit(":", 1)[1])).start()
    try:
        code, out, err = await _finish(_agent(config, str(wav)))
        assert code == 0, err

        async with app[CTX].db.read_session() as s:
            items = (await s.scalars(select(DetectionItem).order_by(DetectionItem.seq))).all()
            plays = (await s.scalars(select(Play).order_by(Play.started_at))).all()
    finally:
        await runner.cleanup()

    # Every window of the 72 s, once: starts 0, 5, ... 60 (10 s each) and the last 7 s.
    t0 = items[0].captured_at
    offsets = [round((i.captured_at - t0).total_seconds(), 1) for i in items]
    assert offsets == [5.0 * k for k in range(14)]
    assert [i.seq for i in items] == list(range(items[0].seq, items[0].seq + 14))
    # Each song is one venue play, in order; nothing was counted twice.
    assert [p.track_id for p in plays] == [ids[2], ids[5], ids[9]]
    assert all(p.source == "venue" for p in plays)
    assert all(20_000 <= p.ms_listened <= 40_000 for p in plays)
    assert out.count("recognised") == 3
    assert "retrying" in _stderr_of_first(first)


def _stderr_of_first(proc: subprocess.Popen) -> str:
    return proc.stderr.read().decode() if proc.stderr else ""


async def test_the_agent_reads_raw_pcm_from_stdin_and_logs_what_it_recognised(
    live_node, catalog, songs, tmp_path
):
    ids = await catalog(live_node, seeds=(4, 7))
    config = await _register(live_node, tmp_path)
    # 16 kHz stereo s16le, as `arecord -f S16_LE -r 16000 -c 2 -t raw` would give.
    room = _recording(songs, (7,), snr_db=5.0)
    up = np.repeat(room, 2)  # 8 kHz -> 16 kHz (crudely), the agent resamples back
    pcm = (np.clip(np.repeat(up[:, None], 2, axis=1), -1, 1) * 32767).astype("<i2").tobytes()

    proc = _agent(
        config,
        "-",
        "--format",
        "s16le",
        "--rate",
        "16000",
        "--channels",
        "2",
        stdin=subprocess.PIPE,
    )
    out, err = await asyncio.to_thread(proc.communicate, pcm, 120)

    assert proc.returncode == 0, err.decode()
    async with live_node.ctx.db.read_session() as s:
        plays = (await s.scalars(select(Play))).all()
    assert [p.track_id for p in plays] == [ids[7]]
    assert f"recognised {plays[0].track_uri} -> play {plays[0].uri}" in out.decode()


async def test_a_revoked_device_stops_the_agent_with_one_line(live_node, tmp_path, songs):
    config = await _register(live_node, tmp_path)
    token = live_node.tokens["mo"]
    device_uuid = _device_uuid(config)
    async with aiohttp.ClientSession(live_node.base_url) as http:
        r = await http.post(
            f"/api/v1/devices/{device_uuid}/revoke",
            json={"reason": "stolen"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status == 200
    wav = tmp_path / "x.wav"
    wav.write_bytes(encode_pcm(songs[1][: 12 * SAMPLE_RATE], "wav"))

    code, _out, err = await _finish(_agent(config, str(wav)))

    assert code == 1
    assert "revoked" in err and err.strip().splitlines()[-1].startswith("nycmg:")


def _device_uuid(config: Path) -> str:
    import tomllib

    return tomllib.loads(config.read_text())["device"]["device_url"].rsplit("/", 1)[1]
