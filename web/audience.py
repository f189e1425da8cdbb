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
- one count per artist at a time, however many visitors ask (single flight),
  and the artists asked for while a count runs are counted together by the
  next one (three grouped reads for up to `MAX_BATCH` artists), so a burst
  of first visits to many artists does not cost three reads each;
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
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.appkeys import CTX
from node.context import NodeContext
from node.events import DomainEvent
from node.models import Actor, Follow, Play

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
    """One artist's audience (None when there is no such actor)."""
    return (await count_many(session, [artist_id])).get(artist_id)


async def count_many(session: AsyncSession, artist_ids: list[int]) -> dict[int, Audience]:
    """Three grouped, indexed reads for many artists: their URIs, followers and plays
    by node (the same figures as `node.services.social.follower_counts` and
    `play_counts`, for several artists at once)."""
    actors = (
        await session.execute(select(Actor.id, Actor.uri).where(Actor.id.in_(artist_ids)))
    ).all()
    if not actors:
        return {}
    followers: dict[int, dict[str, int]] = {a.id: {} for a in actors}
    rows = await session.execute(
        select(Follow.target_id, Actor.domain, func.count())
        .join(Actor, Actor.id == Follow.follower_id)
        .where(Follow.target_id.in_(list(followers)), Follow.state == "accepted")
        .group_by(Follow.target_id, Actor.domain)
    )
    for target_id, domain, n in rows:
        followers[target_id][domain] = n
    by_uri = {a.uri: a.id for a in actors}
    plays: dict[int, dict[str, int]] = {a.id: {} for a in actors}
    rows = await session.execute(
        select(Play.artist_uri, Play.listener_uri, func.count())
        .where(Play.artist_uri.in_(list(by_uri)))
        .group_by(Play.artist_uri, Play.listener_uri)
    )
    for artist_uri, listener_uri, n in rows:
        domain = listener_uri.split("/")[2] if "://" in listener_uri else listener_uri
        counts = plays[by_uri[artist_uri]]
        counts[domain] = counts.get(domain, 0) + n
    return {a.id: Audience(by_node(followers[a.id]), by_node(plays[a.id])) for a in actors}


class AudienceCounts:
    """The counts of many artists, each kept for `ttl` seconds (see the module docstring)."""

    MAX_BATCH = 64

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
        self._running: dict[int, asyncio.Future] = {}  # artist -> its pending count
        self._queued: list[int] = []  # artists waiting for the next batch
        self._busy = False
        self._tasks: set[asyncio.Task] = set()
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

    def _start(self, artist_id: int) -> asyncio.Future:
        """The running (or next) count of this artist; joins the next batch if none."""
        future = self._running.get(artist_id)
        if future is None:
            loop = asyncio.get_running_loop()
            future = self._running[artist_id] = loop.create_future()
            self._queued.append(artist_id)
            if not self._busy:
                self._busy = True
                loop.call_soon(self._next_batch)
        return future

    def _next_batch(self) -> None:
        ids, self._queued = self._queued[: self.MAX_BATCH], self._queued[self.MAX_BATCH :]
        task = asyncio.ensure_future(self._count(ids, self._generation))
        self._tasks.add(task)
        task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if self._queued:
            asyncio.get_running_loop().call_soon(self._next_batch)
        else:
            self._busy = False

    async def _count(self, artist_ids: list[int], generation: int) -> None:
        self.counted += 1
        try:
            async with self.ctx.db.read_session() as s:
                found = await count_many(s, artist_ids)
        except Exception:  # noqa: BLE001 - figures are an extra: the page renders without them
            log.exception("audience count failed", extra={"artist_ids": artist_ids[:10]})
            found = None
        for artist_id in artist_ids:
            audience = found.get(artist_id) if found is not None else None
            if found is not None and generation == self._generation:
                self._entries[artist_id] = (time.monotonic() + self.ttl, audience)
                self._entries.move_to_end(artist_id)
            future = self._running.pop(artist_id, None)
            if future is not None and not future.done():
                future.set_result(audience)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self._generation += 1

    async def close(self) -> None:
        tasks = list(self._tasks)
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
