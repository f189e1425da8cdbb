"""Keyset (cursor) pagination: deep pages cost the same as the first.

A cursor is an opaque, URL-safe encoding of the last row's sort key and id;
the next page is `WHERE (key, id) > (:key, :id)` over a covering index.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_

from .errors import BadRequest

MAX_LIMIT = 100


def encode_cursor(values: list[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return (
        base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode())
        .decode()
        .rstrip("=")
    )


def decode_cursor(cursor: str, n: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("invalid cursor") from None
    if not isinstance(values, list) or len(values) != n:
        raise BadRequest("invalid cursor")
    return values


def parse_limit(raw: str | None, default: int = 20) -> int:
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


async def keyset_page(
    session,
    stmt: Select,
    key_col,
    id_col,
    *,
    cursor: str | None,
    limit: int,
    descending: bool = False,
    key_of=None,
) -> Page:
    """Run `stmt` ordered by (key, id) after `cursor`; key_col may hold NULLs only if never sorted on."""
    if cursor:
        key_raw, last_id = decode_cursor(cursor, 2)
        key = _revive(key_col, key_raw)
        if not isinstance(last_id, int):
            raise BadRequest("invalid cursor")
        if descending:
            stmt = stmt.where(or_(key_col < key, and_(key_col == key, id_col < last_id)))
        else:
            stmt = stmt.where(or_(key_col > key, and_(key_col == key, id_col > last_id)))
    order = (key_col.desc(), id_col.desc()) if descending else (key_col.asc(), id_col.asc())
    rows = list((await session.scalars(stmt.order_by(*order).limit(limit + 1))).unique().all())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        key_value = key_of(last) if key_of else getattr(last, key_col.key)
        next_cursor = encode_cursor([key_value, last.id])
    return Page(rows, next_cursor)


def _revive(col, raw: Any) -> Any:
    from .validation import parse_datetime

    python_type = None
    try:
        python_type = col.type.python_type
    except NotImplementedError:
        pass
    if python_type is datetime or (
        isinstance(raw, str) and col.type.__class__.__name__ == "UTCDateTime"
    ):
        try:
            return parse_datetime(raw if raw.endswith(("Z", "+00:00")) else raw + "+00:00")
        except (ValueError, AttributeError):
            raise BadRequest("invalid cursor") from None
    if python_type is not None and raw is not None and not isinstance(raw, python_type):
        raise BadRequest("invalid cursor")
    return raw
