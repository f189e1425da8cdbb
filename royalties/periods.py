"""Royalty periods: calendar months in UTC, spelled "YYYY-MM"."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from .errors import BadPeriod

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


def parse_period(period: str) -> tuple[int, int]:
    """(year, month) of "YYYY-MM", or BadPeriod."""
    m = _PERIOD.match(period or "") if isinstance(period, str) else None
    if not m:
        raise BadPeriod(f"not a period (YYYY-MM): {period!r}")
    year, month = int(m.group(1)), int(m.group(2))
    if not 2000 <= year <= 9998 or not 1 <= month <= 12:
        raise BadPeriod(f"not a period (YYYY-MM): {period!r}")
    return year, month


def bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of the month in UTC."""
    year, month = parse_period(period)
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def period_of(when: datetime) -> str:
    """The period a moment falls in."""
    w = when.astimezone(UTC)
    return f"{w.year:04d}-{w.month:02d}"


def shift(period: str, months: int) -> str:
    """The period `months` after (or before) `period`."""
    year, month = parse_period(period)
    idx = year * 12 + (month - 1) + months
    return f"{idx // 12:04d}-{idx % 12 + 1:02d}"


def has_ended(period: str, now: datetime) -> bool:
    return bounds(period)[1] <= now
