"""The agent's local SQLite file: buffered items, the next sequence number and
how far each input has been read.

A window is stored, its sequence number taken and the input's read position
advanced in ONE transaction, so an agent killed at any instant restarts
exactly after the last stored window: no window is lost or cut twice. An
item stays until the node has answered for it; one sent again after a crash
is answered `duplicate` by the node, so no play is counted twice.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inputs (
    key TEXT PRIMARY KEY, epoch REAL NOT NULL, position INTEGER NOT NULL, done INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY,
    captured_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    status TEXT,
    track TEXT,
    play TEXT
);
CREATE INDEX IF NOT EXISTS ix_items_sent ON items (sent, seq);
"""


@dataclass(frozen=True)
class InputState:
    key: str
    epoch: float  # wall-clock time (Unix seconds) of the input's first sample
    position: int  # samples already cut into windows (at the fingerprint rate)
    done: bool


@dataclass(frozen=True)
class Pending:
    seq: int
    captured_at: str
    duration_ms: int
    fingerprint: str


class Buffer:
    """One connection per thread that uses it (the reader and the uploader)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        # Sequence numbers start at the buffer's creation time in microseconds,
        # so a device whose buffer was lost never reuses a number the node has.
        self.db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('next_seq', ?)",
            (str(int(time.time() * 1_000_000)),),
        )

    def close(self) -> None:
        self.db.close()

    def input_state(self, key: str) -> InputState:
        self.db.execute(
            "INSERT OR IGNORE INTO inputs (key, epoch, position, done) VALUES (?, ?, 0, 0)",
            (key, time.time()),
        )
        epoch, position, done = self.db.execute(
            "SELECT epoch, position, done FROM inputs WHERE key = ?", (key,)
        ).fetchone()
        return InputState(key, epoch, position, bool(done))

    def add_window(
        self,
        input_key: str,
        next_position: int,
        captured_at: datetime,
        duration_ms: int,
        fingerprint: str,
    ) -> int:
        """Store one window and move the input's position past it, atomically."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            (seq,) = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
            seq = int(seq)
            db.execute(
                "INSERT INTO items (seq, captured_at, duration_ms, fingerprint) VALUES (?, ?, ?, ?)",
                (seq, _iso(captured_at), duration_ms, fingerprint),
            )
            db.execute("UPDATE meta SET value = ? WHERE key = 'next_seq'", (str(seq + 1),))
            db.execute("UPDATE inputs SET position = ? WHERE key = ?", (next_position, input_key))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return seq

    def finish_input(self, key: str, position: int) -> None:
        self.db.execute("UPDATE inputs SET position = ?, done = 1 WHERE key = ?", (position, key))

    def pending(self, limit: int) -> list[Pending]:
        rows = self.db.execute(
            "SELECT seq, captured_at, duration_ms, fingerprint FROM items"
            " WHERE sent = 0 ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [Pending(*r) for r in rows]

    def mark_answered(self, answers: list[dict]) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            for a in answers:
                db.execute(
                    "UPDATE items SET sent = 1, status = ?, track = ?, play = ?, fingerprint = ''"
                    " WHERE seq = ?",
                    (a.get("status"), a.get("track"), a.get("play"), int(a["seq"])),
                )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def counts(self) -> dict[str, int]:
        total, unsent = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(sent = 0), 0) FROM items"
        ).fetchone()
        return {"items": total, "unsent": unsent}


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
