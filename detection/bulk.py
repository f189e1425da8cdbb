"""Many rows in one driver call, for the batch ingest's hot path.

SQLAlchemy's per-row parameter processing costs more than the database's
own work at the ingest target (tens of thousands of declared plays a
second), so new plays and items go straight to the driver: psycopg's
executemany on PostgreSQL, a multi-row statement on SQLite (`insert_many`).
Only the column types these tables use are converted: aware datetimes
become what `UTCDateTime` stores (naive UTC text on SQLite, exactly as
SQLAlchemy writes it, so comparisons in SQL keep working; the aware value
on PostgreSQL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.exc import DBAPIError
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


def from_db(value: Any) -> datetime:
    """A time read with `fetch_all` as an aware UTC datetime: SQLite gives
    `sqlite_time`'s text, PostgreSQL an aware datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def db_time(dialect: str) -> Callable[[datetime], Any]:
    """How an aware datetime is passed to the DBAPI of `dialect` (see the module doc):
    callers convert while they build rows, and `insert_many` has nothing left to do."""
    return _sqlite_time_fast if dialect == "sqlite" else _same


async def insert_many(
    session: AsyncSession, table: Table, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    """INSERT `rows` (tuples in the order of `columns`): one executemany on
    PostgreSQL, one statement per 1,024 rows on SQLite (see below).

    A column holds datetimes in every row or in none (the first row tells)."""
    if not rows:
        return
    aio = await _aiosqlite(session)
    if aio is None:
        marks = ", ".join("?" * len(columns))
        await execute_many(
            session, f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", rows
        )
        return
    times = [i for i, v in enumerate(rows[0]) if isinstance(v, datetime)]
    if times:
        converted = []
        for row in rows:
            row = list(row)
            for i in times:
                if row[i] is not None:
                    row[i] = sqlite_time(row[i])
            converted.append(tuple(row))
        rows = converted
    await _insert_select(aio, table.name, columns, rows)


# SQLite's executemany gives up the GIL around every row's step and must
# take it back for the next row. While the event loop runs other batches'
# Python, each of those hand-overs can wait for the interpreter's switch
# interval (5 ms), so a thousand-row executemany in the writer's thread
# crawled exactly when the node was busiest. So on SQLite the rows go in as
# one statement, `INSERT ... SELECT ... FROM (VALUES ...)`, which steps once.
# Its number of rows is a power of two (the unused ones are padding that a
# marker column filters out): a table has a handful of distinct statements
# and sqlite3 keeps them compiled, where a statement per row count would be
# compiled again for most batches. SQLite takes at most 32,766 parameters
# (since 3.32; 999 before), which bounds the rows per statement.
MAX_PARAMS = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999


def rows_per_statement(n: int, width: int, most: int = 1024) -> int:
    """The padded row count of a statement for `n` rows of `width` values
    (plus the marker): the power of two at or above `n`, at least 8, within
    SQLite's parameter bound; larger inserts take several statements."""
    fit = MAX_PARAMS // (width + 1)
    top = 1 << (min(fit, most).bit_length() - 1)
    return min(max(8, 1 << (n - 1).bit_length()), top)


async def _insert_select(
    aio: Any, name: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    width = len(columns)
    one = "(" + ", ".join("?" * (width + 1)) + ")"
    picked = ", ".join(f"column{i}" for i in range(2, width + 2))
    head = f"INSERT INTO {name} ({', '.join(columns)}) SELECT {picked} FROM (VALUES "
    pad = (None,) * (width + 1)
    start = 0
    while start < len(rows):
        size = rows_per_statement(len(rows) - start, width)
        chunk = rows[start : start + size]
        start += len(chunk)
        sql = f"{head}{', '.join([one] * size)}) WHERE column1 IS NOT NULL"
        params = [v for row in chunk for v in (1, *row)]
        params.extend(pad * (size - len(chunk)))
        try:
            await aio.execute(sql, params)
        except sqlite3.Error as e:
            raise _wrapped(sql, e) from e


# On SQLite every statement is a round trip to aiosqlite's thread, and
# SQLAlchemy's adapter makes three or four of them per statement (cursor,
# execute, fetch, close). Each costs about 0.3 ms of thread wake-up and event
# loop turn while the writer is held: measured on `bench._detection_ingest`,
# 37 round trips per batch were a fifth of the writer's time. The hot
# statements below make one, on the same connection and transaction. Their
# SQL is written once, with `?` marks, which become psycopg's `%s` on
# PostgreSQL (none of it has a literal `?`).


async def _aiosqlite(session: AsyncSession) -> Any | None:
    conn = await session.connection()
    if conn.dialect.name != "sqlite":
        return None
    return (await conn.get_raw_connection()).driver_connection


def _wrapped(sql: str, e: Exception) -> Exception:
    """The driver's error as SQLAlchemy raises it (callers catch IntegrityError)."""
    return DBAPIError.instance(sql, None, e, sqlite3.Error)


async def execute_many(session: AsyncSession, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """`sql` (with `?` marks) once per row, in one driver call."""
    aio = await _aiosqlite(session)
    if aio is None:
        conn = await session.connection()
        await conn.exec_driver_sql(sql.replace("?", "%s"), list(rows))
        return
    try:
        await aio.executemany(sql, rows)
    except sqlite3.Error as e:
        raise _wrapped(sql, e) from e


async def fetch_all(
    session: AsyncSession, sql: str, params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    """The rows of one query (with `?` marks), with no type conversion."""
    aio = await _aiosqlite(session)
    if aio is None:
        conn = await session.connection()
        result = await conn.exec_driver_sql(sql.replace("?", "%s"), tuple(params))
        return [tuple(r) for r in result.all()]
    try:
        return [tuple(r) for r in await aio.execute_fetchall(sql, params)]
    except sqlite3.Error as e:
        raise _wrapped(sql, e) from e
