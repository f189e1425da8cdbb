"""Shared fixtures: real nodes with real databases (SQLite files, or fresh
PostgreSQL databases when NYCMG_TEST_DATABASE_URL is set).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from node.app import create_app
from node.appkeys import CTX, SEARCH
from node.bootstrap import init_data_dir
from node.config import Settings
from node.context import NodeContext
from node.db import migrate
from node.jobs import Worker
from node.services.accounts import create_account

PG_URL = os.environ.get("NYCMG_TEST_DATABASE_URL", "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Databases:
    """Creates a fresh PostgreSQL database per node and drops them all at the end."""

    def __init__(self) -> None:
        self.created: list[str] = []

    def url_for(self, tmp: Path) -> str | None:
        if not PG_URL:
            return None
        import psycopg

        name = f"nycmg_t_{secrets.token_hex(6)}"
        admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        base, _, _ = PG_URL.rpartition("/")
        return f"{base}/{name}"

    def drop_all(self) -> None:
        if not self.created:
            return
        import psycopg

        admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


@pytest.fixture(scope="session")
def databases():
    dbs = Databases()
    yield dbs
    dbs.drop_all()


def make_settings(
    tmp: Path, databases: Databases, *, domain: str | None = None, **extra: Any
) -> Settings:
    values = {
        "federation.allow_private_addresses": True,
        "log.format": "text",
        "jobs.poll_seconds": 0.2,
    }
    values.update(extra)
    return init_data_dir(
        tmp,
        domain=domain or f"127.0.0.1:{free_port()}",
        database_url=databases.url_for(tmp),
        extra=values,
    )


@dataclass
class Node:
    """A node under test: its app, context and helpers to act as its users."""

    app: web.Application
    client: TestClient | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def ctx(self) -> NodeContext:
        return self.app[CTX]

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    async def user(
        self, username: str, role: str = "fan", password: str = "correct horse battery", **kw: Any
    ) -> str:
        """Create an account and return a bearer token for it."""
        from node.auth import issue_token

        async with self.ctx.db.transaction() as s:
            account = await create_account(self.ctx, s, username, password, role, **kw)
            secret, _ = await issue_token(s, account, "api", "test")
        self.tokens[username] = secret
        return secret

    def auth(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    async def run_jobs(self) -> int:
        """Run every due job now, as the worker would."""
        worker = Worker(self.ctx.db, self.ctx.jobs, concurrency=4)
        return await worker.run_until_idle()


async def build_node(
    tmp: Path, databases: Databases, *, worker: bool = False, **extra: Any
) -> Node:
    settings = make_settings(tmp, databases, **extra)
    app = create_app(settings, worker=worker)
    patient_audience(app)
    await migrate(app[CTX].db)
    return Node(app)


def patient_audience(app: web.Application) -> None:
    """A visitor's first view of an artist waits 0.5 s for the audience figures, then
    renders without them; a loaded CI machine can take longer than that, and the pages'
    tests are about the figures. The test of the slow path sets its own wait."""
    from web.audience import AUDIENCE

    if AUDIENCE in app:
        app[AUDIENCE].wait = 15.0


@dataclass
class LiveNode(Node):
    """A node serving real HTTP on a loopback port, with its worker running."""

    runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return self.settings.base_url


async def start_live_node(tmp: Path, databases: Databases, **extra: Any) -> LiveNode:
    port = free_port()
    settings = make_settings(tmp, databases, domain=f"127.0.0.1:{port}", **extra)
    app = create_app(settings, worker=True)
    patient_audience(app)
    await migrate(app[CTX].db)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return LiveNode(app=app, runner=runner)


@pytest.fixture
async def live_node(tmp_path, databases) -> AsyncIterator[LiveNode]:
    """One real node on a loopback port (for browsers, CLI clients, benchmarks)."""
    n = await start_live_node(tmp_path / "live", databases)
    yield n
    await n.runner.cleanup()


@pytest.fixture
async def node(tmp_path, databases, aiohttp_client) -> AsyncIterator[Node]:
    """One node behind aiohttp's test client, with no background worker
    (tests run jobs explicitly with `node.run_jobs()`)."""
    n = await build_node(tmp_path / "node", databases)
    n.client = await aiohttp_client(n.app)
    yield n


@pytest.fixture
def search_index(node):
    return node.app[SEARCH]


@pytest.fixture
async def network(tmp_path, databases):
    """`nodes = await network(3)`: N real nodes on loopback ports, each with its
    own database, real HTTP between them, real signatures, real workers."""
    started: list[LiveNode] = []

    async def start(n: int = 2, **extra: Any) -> list[LiveNode]:
        for _ in range(n):
            started.append(
                await start_live_node(tmp_path / f"node{len(started)}", databases, **extra)
            )
        return started[-n:]

    yield start
    for n in reversed(started):
        if n.runner is not None:
            await n.runner.cleanup()
