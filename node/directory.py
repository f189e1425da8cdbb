"""The core's `Directory`: resolves what this node already knows, asks nobody.

Federation replaces it at start-up with one that also fetches from other
nodes; both answer the same way (an id, or NotFound).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select

from .context import NodeContext
from .errors import BadRequest, NotFound
from .models import Actor, Event, Release, Track


def parse_handle(ref: str, default_domain: str) -> tuple[str, str] | None:
    """`@jay@queens.example` / `jay@queens.example` / `@jay` -> (handle, domain); None for URIs."""
    ref = ref.strip()
    if ref.startswith(("http://", "https://")):
        return None
    ref = ref.removeprefix("acct:").lstrip("@")
    handle, _, domain = ref.partition("@")
    if not handle or "@" in domain or "/" in ref or " " in ref:
        raise BadRequest(f"{ref!r} is neither @handle@domain nor a URI")
    return handle.lower(), (domain or default_domain).lower()


class LocalDirectory:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    async def find_actor(self, ref: str) -> int | None:
        parsed = parse_handle(ref, self.ctx.domain)
        async with self.ctx.db.read_session() as s:
            if parsed is None:
                return await s.scalar(select(Actor.id).where(Actor.uri == ref.strip()))
            handle, domain = parsed
            return await s.scalar(
                select(Actor.id).where(Actor.handle == handle, Actor.domain == domain)
            )

    async def resolve_actor(self, ref: str) -> int:
        actor_id = await self.find_actor(ref)
        if actor_id is None:
            raise NotFound(f"no actor {ref!r} known here")
        return actor_id

    async def find_object(self, uri: str) -> tuple[str, int] | None:
        if urlsplit(uri).scheme not in ("http", "https"):
            raise BadRequest(f"{uri!r} is not an http(s) URI")
        async with self.ctx.db.read_session() as s:
            for kind, model in (("track", Track), ("release", Release), ("event", Event)):
                found = await s.scalar(select(model.id).where(model.uri == uri))
                if found is not None:
                    return kind, found
        return None

    async def resolve_object(self, uri: str) -> tuple[str, int]:
        found = await self.find_object(uri)
        if found is None:
            raise NotFound(f"no object {uri!r} known here")
        return found
