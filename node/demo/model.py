"""The running demo: its nodes and network, as the seeding steps and the banner see them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..errors import NodeError
from .data import SEED, NodeSpec

DEMO_PASSWORD = "nycmg-demo"
ADMIN = "demo_admin"


class DemoError(NodeError):
    """The demo could not start (a port in use, a data folder from another run,
    a seeding step refused)."""

    status = 500
    type_slug = "demo"
    title = "Demo failed"


@dataclass
class DemoNode:
    """One running node: its spec, app, and what seeding made (for later steps)."""

    spec: NodeSpec
    port: int
    app: web.Application
    runner: web.AppRunner | None = None
    accounts: dict[str, Any] = field(default_factory=dict)  # username -> Account
    venues: list[Any] = field(default_factory=list)
    releases: list[Any] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # username -> API token, this run
    seeded: bool = False
    search_ready: bool = False

    @property
    def ctx(self) -> Any:
        from ..appkeys import CTX

        return self.app[CTX]

    @property
    def url(self) -> str:
        return self.ctx.settings.base_url

    @property
    def domain(self) -> str:
        return self.ctx.settings.node.domain

    def rng(self, step: str) -> random.Random:
        return random.Random(f"{SEED}:{self.spec.key}:{step}")

    def artists(self) -> list[Any]:
        return [a for a in self.accounts.values() if a.role == "artist"]


@dataclass
class DemoNetwork:
    nodes: list[DemoNode]
    data_dir: Path
    temporary: bool
    wait_seconds: float = 30.0  # how long a cross-node step waits for federation
    notes: list[str] = field(default_factory=list)  # what did not arrive in time, for the banner
    # The cross-node seeding steps, in order (the core's, then the subsystems').
    steps: list[tuple[str, NetworkStep]] = field(default_factory=list)


NodeStep = Callable[[DemoNode], Awaitable[None]]
NetworkStep = Callable[[DemoNetwork], Awaitable[None]]


async def run_all(jobs: list[Coroutine[Any, Any, Any]], limit: int | None = None) -> list[Any]:
    """Run coroutines side by side (at most `limit` at once) and return their
    results in order; the first failure cancels the rest and is raised as is
    (a DemoError stays one clear line)."""
    sem = asyncio.Semaphore(limit or max(1, len(jobs)))

    async def one(job: Coroutine[Any, Any, Any]) -> Any:
        async with sem:
            return await job

    tasks = [asyncio.ensure_future(one(job)) for job in jobs]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
