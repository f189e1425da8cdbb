"""An artist's audience by node: followers and plays, as the artist's page shows them.

The figures come from the core (`node.services.social.follower_counts` and
`play_counts`), but they are aggregates over every follow and every play of
an artist, which is too much to recount for each view of the site's hottest
page. So they are counted lazily and kept for a while:

- a count is kept for `TTL_SECONDS`; after that the page is still served
  from the old figures while one refresh runs in the background
  ("stale while revalidate");
- the first view of an artist waits at most `WAIT_SECONDS` for its count;
  a slow count finishes in the background and the next view has it;
- one count per artist at a time, however many visitors ask (single flight);
- a follow accepted, rejected or undone on this node forgets the counts when
  its transaction commits, so a fan who has just followed sees the change.

Plays arrive all the time and do not invalidate: the figures are at most a
minute old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.appkeys import CTX
from node.context import NodeContext
from node.events import DomainEvent
from node.models import Actor
from node.services import social

log = logging.getLogger("nycmg.web")

TTL_SECONDS = 60.0
WAIT_SECONDS = 0.5
MAX_ENTRIES = 4096
SHOWN = 6  # nodes listed by name; the rest are summed as "other nodes"


@dataclass(frozen=True)
class Audience:
    """Followers and plays of one artist, by the node of the follower or listener."""

    followers: list[tuple[str, int]]  # (domain, count), most first
    plays: list[tuple[str, int]]
    origin_url: str | None  # a remote artist's own page, on their node

    @property
    def followers_total(self) -> int:
        return sum(n for _, n in self.followers)

    @property
    def plays_total(self) -> int:
        return sum(n for _, n in self.plays)


def by_node(counts: dict[str, int], shown: int = SHOWN) -> list[tuple[str, int]]:
    """Most first (ties by name); past `shown` nodes, one "other nodes" line."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) <= shown + 1:
        return ranked
    rest = sum(n for _, n in ranked[shown:])
    return [*ranked[:shown], (f"{len(ranked) - shown} other nodes", rest)]


async def count(session: AsyncSession, artist_id: int) -> Audience | None:
    """Three indexed reads: the artist's URIs, its followers and its plays by node."""
    row = (
        await session.execute(
            select(Actor.uri, Actor.url, Actor.local).where(Actor.id == artist_id)
        )
    ).first()
    if row is None:
        return None
    followers = await social.follower_counts(session, artist_id)
    plays = await social.play_counts(session, row.uri)
    origin = None if row.local else (row.url or row.uri)
    return Audience(by_node(followers), by_node(plays), origin)


class AudienceCounts:
    """The counts of many artists, each kept for `ttl` seconds (see the module docstring)."""

    def __init__(
        self,
        ctx: NodeContext,
        ttl: float = TTL_SECONDS,
        wait: float = WAIT_SECONDS,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.ctx = ctx
        self.ttl = ttl
        self.wait = wait
        self.max_entries = max_entries
        self._entries: OrderedDict[int, tuple[float, Audience | None]] = OrderedDict()
        self._running: dict[int, asyncio.Task] = {}
        self._generation = 0  # bumped by clear(): a count started before it is not kept
        self.counted = 0  # counts made, for tests and curiosity

    async def get(self, artist_id: int) -> Audience | None:
        """The artist's audience, or None when the first count is still running."""
        entry = self._entries.get(artist_id)
        if entry is not None:
            self._entries.move_to_end(artist_id)
            expires, audience = entry
            if expires < time.monotonic():
                self._start(artist_id)  # the old figures now, new ones soon
            return audience
        task = self._start(artist_id)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.wait)
        except TimeoutError:
            return None

    def _start(self, artist_id: int) -> asyncio.Task:
        task = self._running.get(artist_id)
        if task is None:
            task = asyncio.ensure_future(self._count(artist_id, self._generation))
            self._running[artist_id] = task
            task.add_done_callback(lambda _t: self._running.pop(artist_id, None))
        return task

    async def _count(self, artist_id: int, generation: int) -> Audience | None:
        self.counted += 1
        try:
            async with self.ctx.db.read_session() as s:
                audience = await count(s, artist_id)
        except Exception:  # noqa: BLE001 - figures are an extra: the page renders without them
            log.exception("audience count failed", extra={"artist_id": artist_id})
            return None
        if generation == self._generation:
            self._entries[artist_id] = (time.monotonic() + self.ttl, audience)
            self._entries.move_to_end(artist_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return audience

    def clear(self) -> None:
        self._entries.clear()
        self._generation += 1

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


AUDIENCE: web.AppKey[AudienceCounts] = web.AppKey("web_audience", AudienceCounts)
FOLLOW_CHANGES = ("follow.accepted", "follow.rejected", "follow.undone")


def install(app: web.Application) -> AudienceCounts:
    """Create the app's counts; forget them whenever a change to a follow commits."""
    counts = AudienceCounts(app[CTX])
    app[AUDIENCE] = counts

    def _after_commit(_session: object) -> None:
        counts.clear()

    async def _forget(session: AsyncSession, _evt: DomainEvent) -> None:
        # Now and once committed, so a count read in between is not kept (as web.cache does).
        counts.clear()
        sync = session.sync_session
        if not sa_event.contains(sync, "after_commit", _after_commit):
            sa_event.listen(sync, "after_commit", _after_commit)

    for name in FOLLOW_CHANGES:
        app[CTX].bus.subscribe(name, _forget)

    async def _close(_app: web.Application) -> None:
        await counts.close()

    app.on_cleanup.append(_close)
    return counts
