"""Engines, sessions and migrations, the same on SQLite and PostgreSQL.

SQLite (the embedded default) runs in WAL mode with two engines on one file:
writers open transactions with `BEGIN IMMEDIATE`, so two writers queue on
the busy timeout instead of failing when a deferred read tries to upgrade
(SQLITE_BUSY_SNAPSHOT); readers keep plain deferred transactions so pages
never wait for a writer. On PostgreSQL both names point at one pooled engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).parent / "migrations"


def _sqlite_engine(url: str, immediate: bool, echo: bool) -> AsyncEngine:
    # SQLite admits one writer at a time. With a pool of writer connections,
    # the losers of BEGIN IMMEDIATE wait in SQLite's busy handler, which
    # sleeps 1, 2, 5 ... up to 100 ms between tries: under load (an inbox at
    # 1,000+ requests/s) that turns a 1 ms transaction into seconds of
    # latency. One writer connection makes them queue in the pool instead,
    # in order, on the event loop, and each starts the moment the last ends.
    # The readers keep a pool: WAL readers never wait for the writer.
    pool = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 30} if immediate else {}
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30}, **pool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised by every test
        # Take transaction control away from the sqlite3 module so BEGIN is ours.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        if immediate:
            # The one writer keeps the hot index pages of its tables (plays,
            # detection items) in memory: at SQLite's default 2 MiB, a
            # batch of a thousand plays rereads index pages from the OS
            # cache for every row (bench.detection's ingest: +25% plays/s).
            cur.execute("PRAGMA cache_size=-65536")
            # Copy the WAL back into the database every 10,000 pages (40 MiB)
            # instead of SQLite's 1,000. A checkpoint writes each page once
            # however many commits changed it, and a batch of a thousand
            # plays dirties more than 1,000 index pages: at the default the
            # writer checkpointed after every batch, which was two thirds of
            # its commit time. The file is cut back to 64 MiB after a reset.
            cur.execute("PRAGMA wal_autocheckpoint=10000")
            cur.execute("PRAGMA journal_size_limit=67108864")
            # Savepoints (the group writer puts each batch in one) and
            # multi-row statements keep the original of every page they
            # change, so they can roll back: in a temporary file by default,
            # one write per page. In memory it is a copy: the detection
            # ingest's inserts took 18.5 ms per batch of a thousand plays
            # instead of 21.3. The copies last until the savepoint is
            # released, a few MiB per batch.
            cur.execute("PRAGMA temp_store=MEMORY")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn):  # pragma: no cover
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@dataclass
class Database:
    """The node's database: a writer and a reader session factory."""

    url: str
    engine: AsyncEngine
    read_engine: AsyncEngine
    session: async_sessionmaker[AsyncSession]
    read_session: async_sessionmaker[AsyncSession]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write session that commits on success and rolls back on error."""
        async with self.session() as s, s.begin():
            yield s

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()


def open_database(url: str, pool_size: int = 10, echo: bool = False) -> Database:
    if url.startswith("sqlite"):
        engine = _sqlite_engine(url, immediate=True, echo=echo)
        read_engine = _sqlite_engine(url, immediate=False, echo=echo)
    else:
        engine = create_async_engine(
            url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
        read_engine = engine
    return Database(
        url=url,
        engine=engine,
        read_engine=read_engine,
        session=async_sessionmaker(engine, expire_on_commit=False),
        read_session=async_sessionmaker(read_engine, expire_on_commit=False),
    )


def _alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


async def migrate(db: Database, revision: str = "head") -> None:
    """Apply Alembic migrations on the node's own connection (no second event loop)."""

    def _upgrade(sync_conn) -> None:
        cfg = _alembic_config(db.url)
        cfg.attributes["connection"] = sync_conn
        command.upgrade(cfg, revision)

    if db.is_sqlite:
        # WAL is a property of the file; set it before the first migration.
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    async with db.engine.begin() as conn:
        await conn.run_sync(_upgrade)


async def current_revision(db: Database) -> str | None:
    def _current(sync_conn) -> str | None:
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(sync_conn).get_current_revision()

    async with db.read_engine.connect() as conn:
        return await conn.run_sync(_current)


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head()
