"""`nycmg check`: the things an admin should know are right before going live."""

from __future__ import annotations

import os
import stat
import tempfile
from datetime import UTC, datetime

from sqlalchemy import text

from .config import Settings
from .db import current_revision, head_revision, open_database
from .keys import ED25519_FILE, RSA_FILE, load_private

Result = tuple[str, bool, str]


async def run_checks(settings: Settings) -> list[Result]:
    results: list[Result] = [
        ("config", True, f"{settings.data_dir / 'nycmg.toml'} for {settings.base_url}")
    ]
    db = open_database(settings.database_url)
    try:
        async with db.read_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            if db.is_sqlite:
                db_now = None
                mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar()
                results.append(("database", True, f"SQLite ({mode})"))
            else:
                db_now = (await conn.execute(text("SELECT now()"))).scalar()
                results.append(("database", True, f"PostgreSQL {conn.dialect.server_version_info}"))
        current, head = await current_revision(db), head_revision()
        results.append(("migrations", current == head, f"at {current}, head {head}"))
    except Exception as e:  # noqa: BLE001 - report, do not crash
        results.append(("database", False, f"{type(e).__name__}: {str(e).splitlines()[0]}"))
        db_now = None
    finally:
        await db.dispose()

    for sub in ("uploads", "media"):
        path = settings.data_dir / sub
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path):
                pass
            results.append((f"storage {sub}", True, f"{path} writable"))
        except OSError as e:
            results.append((f"storage {sub}", False, f"{path}: {e.strerror}"))

    for name in (RSA_FILE, ED25519_FILE):
        path = settings.keys_dir / name
        if not path.exists():
            results.append((f"key {name}", False, "missing"))
            continue
        mode = stat.S_IMODE(os.stat(path).st_mode)
        try:
            load_private(path)
            ok = mode & 0o077 == 0
            results.append(
                (f"key {name}", ok, f"mode {mode:o}" + ("" if ok else " (should be 600)"))
            )
        except ValueError as e:
            results.append((f"key {name}", False, f"unreadable: {e}"))

    now = datetime.now(UTC)
    if db_now is not None:
        skew = abs((db_now - now).total_seconds())
        results.append(
            (
                "clock",
                skew < 30,
                f"{skew:.1f} s from the database server (federation allows little skew)",
            )
        )
    else:
        results.append(("clock", now.year >= 2025, now.isoformat(timespec="seconds")))
    return results
