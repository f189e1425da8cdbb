"""Migrations build the schema the models describe, from empty, on either database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from node.db import current_revision, head_revision, migrate
from node.models import Base


async def test_migrations_from_empty_match_the_models_exactly(node):
    def diff(sync_conn):
        ctx = MigrationContext.configure(sync_conn, opts={"compare_type": False})
        return compare_metadata(ctx, Base.metadata)

    async with node.ctx.db.engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == [], "models changed without a migration: " + repr(differences[:3])
    assert await current_revision(node.ctx.db) == head_revision()


async def test_migrating_twice_is_harmless(node):
    await migrate(node.ctx.db)
    await migrate(node.ctx.db)

    def tables(sync_conn):
        return set(inspect(sync_conn).get_table_names())

    async with node.ctx.db.engine.connect() as conn:
        names = await conn.run_sync(tables)
    assert {
        "actors",
        "accounts",
        "tokens",
        "releases",
        "tracks",
        "venues",
        "events",
        "follows",
        "plays",
        "jobs",
        "audit_log",
    } <= names


async def test_sqlite_runs_in_wal_mode(node):
    if not node.ctx.db.is_sqlite:
        return
    from sqlalchemy import text

    async with node.ctx.db.engine.connect() as conn:
        assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
        assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
