"""Inbound activities, routed by (activity type, object type) to one handler each.

Handlers are registered with `@HANDLERS.on("Create", "Album")`; `"*"` as the
object type catches the rest of that activity. Other subsystems (royalties'
clearing types, live sessions) register theirs through the same table from
the composition root. Each handler gets the stored activity and its verified
actor, and writes through the core's services in one transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from node.context import NodeContext
from node.models import Actor

Handler = Callable[["Inbound"], Awaitable[str | None]]


@dataclass
class Inbound:
    """What a handler works with: returns None when done, or a reason it ignored the activity."""

    ctx: NodeContext
    session: AsyncSession
    activity: dict[str, Any]
    actor: Actor
    directory: Any  # RemoteDirectory (kept loose to avoid an import cycle)


@dataclass
class HandlerTable:
    table: dict[tuple[str, str], Handler] = field(default_factory=dict)

    def on(self, activity: str, object_type: str = "*") -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.register(activity, object_type, fn)
            return fn

        return register

    def register(self, activity: str, object_type: str, fn: Handler) -> None:
        key = (activity, object_type)
        if key in self.table:
            raise ValueError(f"two handlers for {key}")
        self.table[key] = fn

    def find(self, activity: str, object_type: str | None) -> Handler | None:
        return self.table.get((activity, object_type or "*")) or self.table.get((activity, "*"))


HANDLERS = HandlerTable()
