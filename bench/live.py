"""Live relay benchmark: one publisher, N viewers, the node against aiortc's stock MediaRelay.

    python -m bench.live [--quick] [--viewers N] [--stock-viewers M] [--seconds S]

What runs where (each in its own process, all on 127.0.0.1):
- the node (`bench._serve node`), and the anchor: a minimal WHIP/WHEP
  server on aiortc's stock `MediaRelay` (decoded frames, one encoder per
  viewer), `python -m bench.live --serve-stock PORT`;
- viewers in client processes (`--client`): the "probe" viewers in a
  process of their own, each a full aiortc receiver that decodes what it
  gets and detects the tone bursts; the rest in other processes, counting
  the RTP packets that reach their sockets (ICE, DTLS, consent checks and
  RTCP as any viewer, but no SRTP, RTP parsing, jitter buffer or decoding,
  so a client process can hold many without being what runs out of CPU). The node's
  own CPU is read from its process alone; the clients' is reported beside
  it, to tell the node's cost from the bench's;
- the publisher, in this process: an aiortc WHIP client sending Opus.

Figures, for the node and the anchor:
- the server's CPU per viewer (percent of one core: its process's CPU time
  from /proc over the steady window, less its rate with the publisher and
  no viewer, divided by the viewers) and the viewers one core would serve
  at that rate;
- frames delivered: frames received by viewers / (frames sent x viewers);
- glass-to-glass latency: the publisher's tone starts a 40 ms burst at
  every wall-clock second (its frames are paced to the wall clock); a probe
  viewer notes when the burst's first decoded frame arrives. Probes decode
  on arrival (no jitter buffer: that delay is the listener's choice);
- after loss: for 3 s the publisher drops 1% of its RTP packets (every
  100th, counted) on the way to the server; the latency after the burst,
  and how long after it ended latency was back (and stayed) under 200 ms.

Targets (issue 7): >= 200 audio viewers per core with >= 99% of frames;
latency < 150 ms on loopback, back < 200 ms within 5 s after the loss.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ._common import (
    ROOT,
    emit,
    free_port,
    log,
    machine,
    percentiles,
    proc_cpu_seconds,
    start_server,
)

RATE = 48000
FRAME = 960  # 20 ms
BURST_S = 0.04
LOSS = 0.01


# ---- the publisher ----------------------------------------------------------------------


def burst_packets() -> list[bytes]:
    """One second of Opus: quiet noise with a 40 ms 1 kHz burst at its start.

    Encoded once, before anything is timed, and sent in a loop: the publisher
    then costs almost nothing, so on a busy machine it still keeps to the
    wall clock (a late publisher would read as relay latency).
    """
    import av

    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = RATE
    enc.layout = "stereo"
    enc.format = "s16"
    enc.bit_rate = 96000
    rng = np.random.default_rng(1)
    t = np.arange(3 * RATE) / RATE
    phase = t - np.floor(t)
    signal = rng.normal(0, 0.005, len(t))
    signal[phase < BURST_S] += 0.5 * np.sin(2 * np.pi * 1000 * t[phase < BURST_S])
    pcm = (np.clip(signal, -1, 1) * 32767).astype(np.int16)
    packets: list[bytes] = []
    for k in range(len(t) // FRAME):
        chunk = np.repeat(pcm[k * FRAME : (k + 1) * FRAME], 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = k * FRAME
        packets += [bytes(p) for p in enc.encode(frame)]
    per_second = RATE // FRAME
    return packets[per_second : 2 * per_second]


def make_tone_track():
    import av
    from aiortc import MediaStreamTrack

    class BurstTrack(MediaStreamTrack):
        """Pre-encoded Opus packets, a burst at each wall-clock second, paced to the wall clock."""

        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.packets = burst_packets()
            self.t0 = math.ceil(time.time()) + 1.0
            self.k = 0
            self.sent_at: list[float] = []
            self.late: list[float] = []

        async def recv(self) -> av.Packet:
            at = self.t0 + self.k * FRAME / RATE
            wait = at - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:
                self.late.append(-wait)
            packet = av.Packet(self.packets[self.k % len(self.packets)])
            packet.pts = self.k * FRAME
            packet.time_base = fractions.Fraction(1, RATE)
            self.k += 1
            self.sent_at.append(at)
            return packet

    return BurstTrack()


def lossy(pc, window: list[float], counts: dict[str, int]) -> None:
    """Drop 1% of the publisher's RTP packets (not RTCP) while now is in `window`:
    every 100th one, starting from a random one of the first 100."""
    start = random.randrange(int(1 / LOSS))
    for sender in pc.getSenders():
        transport = sender.transport
        original = transport._send_rtp

        async def send(data: bytes, original=original) -> None:
            is_rtp = len(data) > 1 and not 192 <= data[1] <= 223
            if is_rtp and window[0] <= time.time() < window[1]:
                counts["in_window"] += 1
                if (counts["in_window"] + start) % int(1 / LOSS) == 0:
                    counts["dropped"] += 1
                    return
            await original(data)

        transport._send_rtp = send


# ---- viewer clients (child processes) ---------------------------------------------------


class Counter:
    """Stands in for a relay on a viewer's receiver: counts frames, probes decode them."""

    kind = "audio"

    def __init__(self, probe: bool) -> None:
        self.per_second: dict[int, int] = {}
        self.probe = probe
        self.receiver = None
        self.onsets: list[tuple[float, float]] = []  # (burst second, latency s)
        self._loud = False
        self._decoder = None

    def push(self, codec: Any, frame: Any) -> None:
        now = time.time()
        second = int(now)
        self.per_second[second] = self.per_second.get(second, 0) + 1
        if not self.probe:
            return
        import av

        if self._decoder is None:
            self._decoder = av.CodecContext.create("opus", "r")
        try:
            decoded = self._decoder.decode(av.Packet(frame.data))
        except av.FFmpegError:
            return
        for f in decoded:
            a = f.to_ndarray().astype(np.float64)
            if f.format.name.startswith("s16"):
                a /= 32768.0
            loud = float(np.sqrt(np.mean(a * a))) > 0.1
            if loud and not self._loud:
                second = math.floor(now)
                if now - second > 0.9:  # (latency is never near a second on loopback)
                    second += 1
                self.onsets.append((second, now - second))
            self._loud = loud


def count_rtp(pc: Any, counter: Counter) -> None:
    """Count the RTP packets reaching `pc`'s sockets; everything else (STUN, DTLS,
    RTCP) goes on to aioice and aiortc as usual, so the peer stays a viewer."""
    connection = pc.getTransceivers()[0].receiver.transport.transport._connection
    per_second = counter.per_second
    for protocol in connection._protocols:
        original = protocol.datagram_received

        def datagram_received(data: bytes, addr: Any, original=original) -> None:
            if len(data) > 12 and 127 < data[0] < 192 and not 192 <= data[1] <= 223:
                second = int(time.time())
                per_second[second] = per_second.get(second, 0) + 1
                return
            original(data, addr)

        protocol.datagram_received = datagram_received


async def run_client(url: str, viewers: int, probes: int) -> dict:
    """Join `viewers`, print "joined", count until stdin closes, then print the JSON result."""
    import aiohttp

    from media.live.client import play
    from media.live.relay import tap_receiver

    counters: list[Counter] = []
    sessions = []
    failed = 0
    sem = asyncio.Semaphore(8)
    t0 = time.time()

    async def one(i: int, http: aiohttp.ClientSession) -> None:
        nonlocal failed
        c = Counter(i < probes)

        def on_track(track: Any, receiver: Any) -> None:
            tap_receiver(receiver, c)

        async with sem:
            try:
                session = await play(http, url, on_track=on_track if c.probe else None)
                if not c.probe:
                    count_rtp(session.pc, c)
                sessions.append(session)
                counters.append(c)
            except Exception as exc:  # noqa: BLE001 - count it, keep going
                failed += 1
                print(f"viewer failed: {exc}", file=sys.stderr)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(one(i, http) for i in range(viewers)))
        joined = time.time() - t0
        print("joined", flush=True)
        await asyncio.to_thread(sys.stdin.read)  # the parent closes stdin to stop us
        for s in sessions:
            await s.pc.close()
    return {
        "viewers": len(counters),
        "failed": failed,
        "join_seconds": round(joined, 2),
        "per_second": [c.per_second for c in counters],
        "probes": sum(1 for c in counters if c.probe),
        "onsets": [o for c in counters for o in c.onsets],
    }


def spawn_clients(url: str, viewers: int, probes: int, procs: int):
    """Probe viewers get a process of their own, so the latency they see is the
    server's, not a busy client's; the counting viewers share `procs` processes."""

    def cmd(n: int, p: int) -> list[str]:
        return [
            sys.executable, "-m", "bench.live", "--client", url, "--viewers", str(n),
            "--probes", str(p),
        ]  # fmt: skip

    probes = min(probes, viewers)
    rest = viewers - probes
    per = [rest // procs + (1 if i < rest % procs else 0) for i in range(procs)]
    cmds = [cmd(probes, probes)] if probes else []
    cmds += [cmd(n, 0) for n in per if n]
    return [
        subprocess.Popen(c, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for c in cmds
    ]


# ---- the anchor: aiortc's stock MediaRelay ------------------------------------------------


def serve_stock(port: int) -> None:
    from aiohttp import web
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    relay = MediaRelay()
    state: dict[str, Any] = {"source": None, "pcs": set()}

    def new_pc() -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        state["pcs"].add(pc)
        return pc

    async def whip(request: web.Request) -> web.Response:
        pc = new_pc()

        @pc.on("track")
        def on_track(track):
            state["source"] = track

        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(
            status=201,
            text=pc.localDescription.sdp,
            content_type="application/sdp",
            headers={"Location": "/whip/1"},
        )

    async def whep(request: web.Request) -> web.Response:
        pc = new_pc()
        await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
        pc.addTrack(relay.subscribe(state["source"]))
        await pc.setLocalDescription(await pc.createAnswer())
        return web.Response(
            status=201,
            text=pc.localDescription.sdp,
            content_type="application/sdp",
            headers={"Location": f"/whep/{id(pc)}"},
        )

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/whip", whip)
    app.router.add_post("/whep", whep)
    app.router.add_get("/", ok)
    app.router.add_delete("/{tail:.*}", ok)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def start_stock(port: int) -> subprocess.Popen:
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.live", "--serve-stock", str(port)], cwd=ROOT
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
            break
        except OSError:
            time.sleep(0.1)
    return proc


# ---- one measured run --------------------------------------------------------------------


async def measure(
    name: str,
    pid: int,
    whip: str,
    whep: str,
    token: str | None,
    viewers: int,
    seconds: float,
    procs: int,
    probes: int,
) -> dict[str, Any]:
    import aiohttp

    from media.live.client import publish

    track = make_tone_track()
    async with aiohttp.ClientSession() as http:
        pub = await publish(http, whip, token, [track])
        loss_window = [0.0, 0.0]
        loss = {"in_window": 0, "dropped": 0}
        lossy(pub.pc, loss_window, loss)
        await asyncio.sleep(1.0)
        # The server with the publisher and no viewer: subtracted below, so the
        # per-viewer figure is what each viewer adds.
        idle0, idle_t0 = proc_cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(3.0)
        idle1, idle_t1 = proc_cpu_seconds(pid), time.monotonic()
        idle = (
            (idle1 - idle0) / (idle_t1 - idle_t0)
            if idle0 is not None and idle1 is not None
            else 0.0
        )
        log(f"{name}: {viewers} viewers joining")
        cpu_join0 = proc_cpu_seconds(pid)
        children = await asyncio.to_thread(spawn_clients, whep, viewers, probes, procs)
        for child in children:
            await asyncio.to_thread(child.stdout.readline)  # "joined"
        cpu_join1 = proc_cpu_seconds(pid)
        start = math.ceil(time.time()) + 2.0  # let the last ones settle
        end = start + seconds
        # Steady part, then 3 s of 1% loss, then 5 s to recover (inside the window).
        loss_window[0] = start + max(2.0, seconds - 9.0)
        loss_window[1] = loss_window[0] + 3.0
        log(f"{name}: measuring {seconds:.0f} s")
        await asyncio.sleep(max(0.0, start - time.time()))
        cpu0 = proc_cpu_seconds(pid)
        clients0 = [proc_cpu_seconds(c.pid) for c in children]
        own0 = time.process_time()
        await asyncio.sleep(max(0.0, end - time.time()))
        cpu1 = proc_cpu_seconds(pid)
        clients1 = [proc_cpu_seconds(c.pid) for c in children]
        own1 = time.process_time()
        results = []
        for child in children:
            stdout, _ = await asyncio.to_thread(child.communicate, "")
            results.append(json.loads(stdout.splitlines()[-1]))
        await pub.close(http, {"Authorization": f"Bearer {token}"} if token else {})
    sent = sum(1 for t in track.sent_at if start <= t < end)
    frames = [
        sum(n for sec, n in hist.items() if start <= int(sec) < end)
        for r in results
        for hist in r["per_second"]
    ]
    onsets = [tuple(o) for r in results for o in r["onsets"]]
    steady = [lat for sec, lat in onsets if start + 1 <= sec < loss_window[0]]
    after = sorted((sec, lat) for sec, lat in onsets if loss_window[1] <= sec < loss_window[1] + 5)
    # Recovered: from the first burst under 200 ms after the loss on, all stay under it.
    recovered = next(
        (
            sec - loss_window[1]
            for i, (sec, _) in enumerate(after)
            if all(lat < 0.2 for _, lat in after[i:])
        ),
        None,
    )
    during = [lat for sec, lat in onsets if loss_window[0] <= sec < loss_window[1]]
    connected = len(frames)
    # No frames sent in the window: the publisher dropped (seen when the machine is
    # too loaded for the server to answer ICE consent checks); nothing to rate.
    valid = bool(sent and connected)
    cpu = (cpu1 - cpu0) / (end - start) if cpu0 is not None and cpu1 is not None and valid else None
    per_viewer = max(cpu - idle, 0.0) / connected if cpu and connected else None
    return {
        "valid": valid,
        "viewers": connected,
        "failed_to_join": sum(r["failed"] for r in results),
        "join_seconds": max(r["join_seconds"] for r in results),
        "server_cpu_ms_per_join": round((cpu_join1 - cpu_join0) * 1000 / max(1, connected), 1)
        if cpu_join0 is not None and cpu_join1 is not None
        else None,
        "server_cpu_core_fraction": round(cpu, 3) if cpu is not None else None,
        "server_cpu_core_fraction_no_viewers": round(idle, 3),
        "cpu_percent_per_viewer": round(per_viewer * 100, 3) if per_viewer else None,
        "viewers_per_core": int(1 / per_viewer) if per_viewer else None,
        "viewer_clients_cpu_core_fraction": round(
            sum(b - a for a, b in zip(clients0, clients1, strict=True) if a is not None and b)
            / (end - start),
            3,
        ),
        "publisher_cpu_core_fraction": round((own1 - own0) / (end - start), 3),
        "frames_sent": sent,
        "frames_delivered_pct": round(100 * sum(frames) / (sent * connected), 2)
        if sent and connected
        else None,
        "worst_viewer_frames_pct": round(100 * min(frames) / sent, 2) if sent and frames else None,
        "latency_ms": percentiles(steady),
        "latency_during_loss_ms": percentiles(during),
        "latency_after_loss_ms": percentiles([lat for _, lat in after]),
        "recovered_under_200ms_within_s": round(recovered, 2) if recovered is not None else None,
        "loss_packets_sent_in_window": loss["in_window"],
        "loss_packets_dropped": loss["dropped"],
        "bursts_detected": len(onsets),
        "publisher_late_frames": sum(1 for x in track.late if x > 0.02),
    }


async def seed_node(tmp: Path, port: int, viewers: int) -> str:
    from node.auth import issue_token
    from node.bootstrap import init_data_dir
    from node.context import NodeContext
    from node.db import migrate, open_database
    from node.services.accounts import create_account

    settings = init_data_dir(
        tmp,
        domain=f"127.0.0.1:{port}",
        extra={
            "log.format": "text",
            "log.level": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "live.max_viewers": viewers + 10,
        },
    )
    db = open_database(settings.database_url)
    await migrate(db)
    ctx = NodeContext(settings=settings, db=db)
    async with db.transaction() as s:
        account = await create_account(ctx, s, "bench", "correct horse battery", "artist")
        secret, _ = await issue_token(s, account, "api", "bench")
    await db.dispose()
    return secret


async def main_async(args: argparse.Namespace) -> None:
    procs = max(1, min(4, math.ceil(args.viewers / 100)))
    result: dict[str, Any] = {"benchmark": "live", "quick": args.quick, "machine": machine()}
    with tempfile.TemporaryDirectory(prefix="nycmg-bench-live-") as tmp:
        logs = Path(os.environ["BENCH_LOG_DIR"]) if os.environ.get("BENCH_LOG_DIR") else Path(tmp)
        port = free_port()
        token = await seed_node(Path(tmp) / "node", port, args.viewers)
        with start_server(
            "node",
            "--data",
            str(Path(tmp) / "node"),
            port=port,
            ready_path="/healthz",
            log_dir=logs,
        ) as node:
            base = node.base_url
            result["node"] = await measure(
                "node",
                node.proc.pid,
                f"{base}/live/bench/whip",
                f"{base}/live/bench/whep",
                token,
                args.viewers,
                args.seconds,
                procs,
                args.probes,
            )
        stock_port = free_port()
        stock = await asyncio.to_thread(start_stock, stock_port)
        try:
            base = f"http://127.0.0.1:{stock_port}"
            result["anchor_stock_mediarelay"] = await measure(
                "stock MediaRelay",
                stock.pid,
                f"{base}/whip",
                f"{base}/whep",
                None,
                args.stock_viewers,
                args.seconds,
                1,
                min(args.probes, args.stock_viewers),
            )
        finally:
            stock.terminate()
            await asyncio.to_thread(stock.wait, 15)
    n, a = result["node"], result["anchor_stock_mediarelay"]
    if n.get("cpu_percent_per_viewer") and a.get("cpu_percent_per_viewer"):
        result["cpu_per_viewer_ratio_stock_over_node"] = round(
            a["cpu_percent_per_viewer"] / n["cpu_percent_per_viewer"], 1
        )
    result["targets"] = {
        "viewers_per_core_ge_200": n["valid"] and (n.get("viewers_per_core") or 0) >= 200,
        "frames_ge_99pct": (n.get("frames_delivered_pct") or 0) >= 99,
        "latency_p50_lt_150ms": 0 < n["latency_ms"]["p50"] < 150,
        "back_under_200ms_within_5s": n.get("recovered_under_200ms_within_s") is not None
        and n["recovered_under_200ms_within_s"] <= 5,
    }
    emit(result)


def main() -> None:
    p = argparse.ArgumentParser(prog="bench.live", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer viewers, shorter run")
    p.add_argument("--viewers", type=int)
    p.add_argument("--stock-viewers", type=int)
    p.add_argument("--seconds", type=float)
    p.add_argument("--probes", type=int, default=3)
    p.add_argument("--serve-stock", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--client", metavar="WHEP_URL", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_stock:
        serve_stock(args.serve_stock)
        return
    if args.client:
        out = asyncio.run(run_client(args.client, args.viewers, args.probes))
        print(json.dumps(out), flush=True)
        return
    args.viewers = args.viewers or (20 if args.quick else 200)
    args.stock_viewers = args.stock_viewers or (5 if args.quick else 17)
    args.seconds = args.seconds or (12.0 if args.quick else 20.0)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
