"""`nycmg device run`: cut the input into overlapping windows, fingerprint each
one here, buffer them, and upload signed batches until everything is answered.

The reader (a thread: decoding and fingerprinting are CPU work) and the
uploader (the event loop) share only the SQLite buffer. While the node is
unreachable the reader keeps going and the uploader backs off
exponentially (0.5 s doubling up to `--max-backoff`); when the node is back
the buffer drains in order of sequence number.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import numpy as np

from ..fingerprint import SAMPLE_RATE, encode, fingerprint
from .buffer import Buffer
from .config import AgentConfig
from .source import chunks, input_key
from .upload import TIMEOUT, Refused, Retry, batch_body, send

log = logging.getLogger("nycmg.agent")

MIN_TAIL_SECONDS = 3.0
FIRST_BACKOFF = 0.5


@dataclass(frozen=True)
class AgentOptions:
    input: str
    format: str | None
    rate: int
    channels: int
    window_seconds: float
    hop_seconds: float
    batch_size: int
    state_path: Path
    max_backoff: float = 60.0
    give_up_after: float = 0.0
    pace: float = 0.0  # read at this many times real time; 0 = as fast as it decodes


@dataclass
class ReaderState:
    done: threading.Event
    stop: threading.Event
    error: str | None = None
    windows: int = 0


def read_input(options: AgentOptions, state: ReaderState) -> None:
    """Cut the input into windows from where the last run stopped; store each."""
    buf = Buffer(options.state_path)
    try:
        key = input_key(options.input)
        progress = buf.input_state(key)
        if progress.done:
            log.info("input already read to its end; only uploading what is buffered")
            return
        window = int(options.window_seconds * SAMPLE_RATE)
        hop = int(options.hop_seconds * SAMPLE_RATE)
        start = progress.position  # the next window starts at this sample
        pending = np.zeros(0, np.float32)
        pending_at = 0  # absolute sample index of pending[0]
        total = 0
        began = time.monotonic()
        for chunk in chunks(options.input, options.format, options.rate, options.channels):
            if state.stop.is_set():
                return
            total += chunk.size
            if options.pace > 0:  # replay a recording as if it were heard live
                ahead = total / SAMPLE_RATE / options.pace - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
            pending = np.concatenate([pending, chunk]) if pending.size else chunk
            if pending_at < start:  # resuming: drop what earlier runs already cut
                drop = min(start - pending_at, pending.size)
                pending, pending_at = pending[drop:], pending_at + drop
            while pending_at + pending.size >= start + window:
                lo = start - pending_at
                _store(buf, key, progress.epoch, pending[lo : lo + window], start, start + hop)
                state.windows += 1
                start += hop
                if start > pending_at:
                    drop = min(start - pending_at, pending.size)
                    pending, pending_at = pending[drop:], pending_at + drop
        # The tail: audio after the last full window, if there is enough of it.
        heard_to = start - hop + window if start >= hop else 0
        if total > heard_to and total - start >= MIN_TAIL_SECONDS * SAMPLE_RATE:
            lo = start - pending_at
            _store(buf, key, progress.epoch, pending[lo:], start, total)
            state.windows += 1
        buf.finish_input(key, total)
    except Exception as e:  # noqa: BLE001 - reported in one line by the runner
        state.error = f"{type(e).__name__}: {e}"
    finally:
        buf.close()
        state.done.set()


def _store(buf: Buffer, key: str, epoch: float, samples: np.ndarray, start: int, nxt: int) -> None:
    fp = encode(fingerprint(np.ascontiguousarray(samples, dtype=np.float32)))
    captured = datetime.fromtimestamp(epoch, UTC) + timedelta(seconds=start / SAMPLE_RATE)
    buf.add_window(key, nxt, captured, int(1000 * samples.size / SAMPLE_RATE), fp)


async def run_agent(config: AgentConfig, options: AgentOptions) -> int:
    """Run until the input is read and every window is answered; the exit code."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    buf = Buffer(options.state_path)
    state = ReaderState(threading.Event(), threading.Event())
    reader = threading.Thread(target=read_input, args=(options, state), daemon=True)
    reader.start()
    seen_plays: set[str] = set()
    backoff = FIRST_BACKOFF
    failing_since: float | None = None
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
            while True:
                batch = buf.pending(options.batch_size)
                if not batch:
                    if state.done.is_set():
                        if state.error:
                            print(
                                f"nycmg: cannot read {options.input}: {state.error}",
                                file=sys.stderr,
                            )
                            return 1
                        if not buf.pending(1):
                            break
                    await asyncio.sleep(0.2)
                    continue
                try:
                    answer = await send(http, config, batch_body(config, batch))
                except Retry as e:
                    now = time.monotonic()
                    failing_since = failing_since or now
                    if options.give_up_after and now - failing_since > options.give_up_after:
                        print(
                            f"nycmg: node unreachable ({e}); items stay buffered", file=sys.stderr
                        )
                        return 3
                    log.warning("upload failed (%s); retrying in %.1f s", e, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, options.max_backoff)
                    continue
                except Refused as e:
                    print(f"nycmg: the node refused this device's batch: {e}", file=sys.stderr)
                    return 1
                backoff, failing_since = FIRST_BACKOFF, None
                buf.mark_answered(answer.items)
                _report(answer.items, seen_plays)
    finally:
        state.stop.set()
        counts = buf.counts()
        buf.close()
    log.info("done: %d windows buffered in all, %d unsent", counts["items"], counts["unsent"])
    return 0


def _report(items: list[dict], seen_plays: set[str]) -> None:
    """One line per play recognised (a play spans many windows)."""
    for a in items:
        play = a.get("play")
        if a.get("status") in ("matched", "duplicate") and play and play not in seen_plays:
            seen_plays.add(play)
            held = f" (held: {a['held']})" if a.get("held") else ""
            print(f"recognised {a.get('track')} -> play {play}{held}", flush=True)
