"""Many rows in one driver call, for the batch ingest's hot path.

SQLAlchemy's per-row parameter processing costs more than the database's
own work at the ingest target (tens of thousands of declared plays a
second), so new plays and items go straight to the DBAPI's executemany.
Only the column types these tables use are converted: aware datetimes
become what `UTCDateTime` stores (naive UTC text on SQLite, exactly as
SQLAlchemy writes it, so comparisons in SQL keep working; the aware value
on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession


def sqlite_time(dt: datetime) -> str:
    """A UTC datetime as SQLAlchemy stores it in SQLite (always with microseconds)."""
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    return dt.replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_time_fast(dt: datetime) -> str:
    # isoformat of a UTC time ends in "+00:00": the first 26 characters are
    # exactly `sqlite_time`'s (years 1970-2200, which parse_datetime bounds).
    if dt.tzinfo is not UTC:
        dt = dt.astimezone(UTC)
    return dt.isoformat(" ", "microseconds")[:26]


def _same(dt: datetime) -> datetime:
    return dt


def db_time(dialect: str) -> Callable[[datetime], Any]:
    """How an aware datetime is passed to the DBAPI of `dialect` (see the module doc):
    callers convert while they build rows, and `insert_many` has nothing left to do."""
    return _sqlite_time_fast if dialect == "sqlite" else _same


async def insert_many(
    session: AsyncSession, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """INSERT `rows` (tuples in the order of `columns`) with one executemany.

    A column holds datetimes in every row or in none (the first row tells)."""
    if not rows:
        return
    conn = await session.connection()
    sqlite = conn.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    times = [i for i, v in enumerate(rows[0]) if isinstance(v, datetime)] if sqlite else []
    if times:
        converted = []
        for row in rows:
            row = list(row)
            for i in times:
                if row[i] is not None:
                    row[i] = sqlite_time(row[i])
            converted.append(tuple(row))
        rows = converted
    await conn.exec_driver_sql(sql, rows)
