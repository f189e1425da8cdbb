"""`NodeContext`: what a domain service needs (settings, database, bus, jobs, URLs).

One per node process, built by the app factory and handed to services, so
services never reach into aiohttp's request or app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .config import Settings
from .db import Database
from .events import EventBus
from .jobs import JobRegistry


@dataclass(frozen=True)
class Urls:
    """Public URIs of local objects; the one place that spells them."""

    base: str

    def actor(self, handle: str) -> str:
        return f"{self.base}/actors/{handle}"

    def node_actor(self) -> str:
        return f"{self.base}/actor"

    def profile(self, handle: str) -> str:
        return f"{self.base}/@{handle}"

    def obj(self, kind: str, uuid: str) -> str:
        """kind: tracks, releases, events, venues, live, plays, follows, activities."""
        return f"{self.base}/{kind}/{uuid}"


class Directory(Protocol):
    """Finds actors and objects by handle or URI, local or (with federation) remote.

    The core ships `LocalDirectory`; federation installs one that also asks
    other nodes (WebFinger, signed fetches) and stores what it learns.
    Implementations manage their own transactions: no network I/O happens
    while a caller holds a write transaction.
    """

    async def resolve_actor(self, ref: str) -> int:
        """Actor id for `@handle`, `@handle@domain`, `handle@domain` or an actor URI."""
        ...

    async def resolve_object(self, uri: str) -> tuple[str, int]:
        """(`track`|`release`|`event`, id) for an object URI."""
        ...


@dataclass
class NodeContext:
    settings: Settings
    db: Database
    bus: EventBus = field(default_factory=EventBus)
    jobs: JobRegistry = field(default_factory=JobRegistry)
    wake_worker: Callable[[], None] = lambda: None
    extras: dict[str, Any] = field(default_factory=dict)
    directory: Directory | None = None
    # Set by media: `await upload_inspector(filename, mime, data)` decodes an upload
    # (bytes, or the Path of a spooled file) before anything is stored and returns
    # what it found (or raises a NodeError).
    upload_inspector: Callable[[str, str, Any], Awaitable[dict[str, Any]]] | None = None

    async def enqueue(
        self, session: Any, kind: str, payload: dict[str, Any] | None = None, **kw: Any
    ) -> Any:
        """Enqueue a job in `session`'s transaction and wake the worker when it commits."""
        from .jobs import enqueue

        kw.setdefault("max_attempts", self.settings.jobs.max_attempts)
        return await enqueue(session, kind, payload, wake=lambda: self.wake_worker(), **kw)

    @property
    def urls(self) -> Urls:
        return Urls(self.settings.base_url)

    @property
    def domain(self) -> str:
        return self.settings.node.domain
