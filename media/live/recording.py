"""Record a live session's audio into a draft track (through the core upload path).

The recorder is one more consumer of the audio relay: it gets the same Opus
packets as the viewers, and a worker thread decodes them and writes an Ogg
Opus file (decoding once here is cheap; the relay itself never decodes).
Gaps from packet loss are simply skipped. When the session ends, the file
goes through `node.services.catalog.create_track` as the artist's upload,
so the media pipeline transcodes it like any other master and the artist
finds a draft track to trim, title and publish.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import shutil
import tempfile
import threading
from pathlib import Path

import av

from node.context import NodeContext
from node.models import Account
from node.services.catalog import create_track

from .hub import Broadcast
from .models import LiveSession

log = logging.getLogger("nycmg.live.recording")


class Recorder:
    """Decodes Opus packets off the event loop and writes an Ogg Opus file."""

    def __init__(self, path: Path, max_seconds: int) -> None:
        self.path = path
        self.max_samples = max_seconds * 48000
        self.samples = 0
        self._q: queue.Queue = queue.Queue(maxsize=2000)
        self._thread = threading.Thread(target=self._run, name="live-recorder", daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> None:
        try:
            self._q.put_nowait(data)
        except queue.Full:
            pass  # the disk is slower than real time: drop rather than stall the relay

    def _run(self) -> None:
        decoder = av.CodecContext.create("opus", "r")
        out = av.open(str(self.path), "w", format="ogg")
        stream = out.add_stream("libopus", rate=48000)
        stream.layout = "stereo"
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=48000)
        try:
            while True:
                data = self._q.get()
                if data is None:
                    break
                if self.samples >= self.max_samples:
                    continue
                try:
                    frames = decoder.decode(av.Packet(data))
                except av.FFmpegError:
                    continue
                for frame in frames:
                    for rf in resampler.resample(frame):
                        rf.pts = None
                        self.samples += rf.samples
                        for p in stream.encode(rf):
                            out.mux(p)
            for p in stream.encode(None):
                out.mux(p)
        finally:
            out.close()

    def finish(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=30)


def start_recording(ctx: NodeContext, b: Broadcast) -> Recorder:
    tmp = Path(tempfile.mkdtemp(prefix="nycmg-live-", dir=ctx.settings.data_dir))
    rec = Recorder(tmp / f"{b.session_uuid}.ogg", ctx.settings.live.max_record_seconds)
    b.audio.consumers.append(rec.feed)

    async def finish(b: Broadcast, reason: str) -> None:
        await asyncio.to_thread(rec.finish)
        try:
            await save_recording(ctx, b, rec)
        finally:
            await asyncio.to_thread(shutil.rmtree, tmp, True)

    b.on_end.insert(0, finish)
    b.extras["recorder"] = rec
    return rec


async def save_recording(ctx: NodeContext, b: Broadcast, rec: Recorder) -> None:
    if rec.samples < 48000 or b.account_id is None:
        log.info("live: recording of %s too short to keep", b.key)
        return
    data = await asyncio.to_thread(rec.path.read_bytes)
    async with ctx.db.transaction() as s:
        account = await s.get(Account, b.account_id)
        live = await s.get(LiveSession, b.session_id)
        if account is None or live is None:
            return
        title = f"{live.title} ({live.started_at:%Y-%m-%d})"[:200]
        track = await create_track(
            ctx, s, account, {"title": title}, upload=(f"{b.key}-live.ogg", "audio/ogg", data)
        )
        live.recording_track_id = track.id
