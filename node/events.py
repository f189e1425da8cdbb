"""The in-process, transactional event bus (DESIGN.md 1).

Domain services emit events inside their database transaction; subscribers
(federation, search, royalties...) run right there on the same session and
usually enqueue a job. If the transaction rolls back, so does everything the
subscribers wrote: the change and the message about it live or die together.
The core never imports a subscriber; the composition root wires them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger("nycmg.events")

# Names in use; a subscriber to an unknown name is a typo, caught at start-up.
EVENT_NAMES = {
    "actor.created",
    "actor.updated",
    "actor.deleted",
    "release.created",
    "release.updated",
    "release.published",
    "release.deleted",
    "track.created",
    "track.uploaded",
    "track.updated",
    "track.deleted",
    "event.created",
    "event.updated",
    "event.deleted",
    "venue.created",
    "venue.updated",
    "follow.requested",
    "follow.accepted",
    "follow.rejected",
    "follow.undone",
    "play.recorded",
    "like.created",
    "like.undone",
    "comment.created",
    "comment.deleted",
    "announce.created",
    "announce.undone",
    "report.created",
    # media: a track's audio is transcoded and playable (payload: track_id, uri)
    "track.ready",
}


def declare_events(*names: str) -> None:
    """Let a subsystem add the names of events it emits itself (called from its setup)."""
    EVENT_NAMES.update(names)


@dataclass(frozen=True)
class DomainEvent:
    name: str
    payload: dict[str, Any]


Subscriber = Callable[[AsyncSession, DomainEvent], Awaitable[None]]


@dataclass
class EventBus:
    subscribers: dict[str, list[Subscriber]] = field(default_factory=lambda: defaultdict(list))

    def subscribe(self, name: str, handler: Subscriber) -> None:
        if name not in EVENT_NAMES and name != "*":
            raise ValueError(f"unknown event {name!r}")
        self.subscribers[name].append(handler)

    def on(self, *names: str) -> Callable[[Subscriber], Subscriber]:
        def register(handler: Subscriber) -> Subscriber:
            for name in names:
                self.subscribe(name, handler)
            return handler

        return register

    async def emit(self, session: AsyncSession, name: str, **payload: Any) -> DomainEvent:
        """Run every subscriber in the caller's transaction; an exception aborts it."""
        if name not in EVENT_NAMES:
            raise ValueError(f"unknown event {name!r}")
        evt = DomainEvent(name, payload)
        for handler in (*self.subscribers.get(name, ()), *self.subscribers.get("*", ())):
            await handler(session, evt)
        return evt
