"""Public keys of remote actors for signature checks: cached in the actors
table, refetched once when unknown or failing (rotation), with a short
negative cache so junk keyIds cannot make us fetch in a loop.
"""

from __future__ import annotations

import time
from urllib.parse import urldefrag

from sqlalchemy import select

from node.context import NodeContext
from node.models import Actor

from .signatures import PublicKey

NEGATIVE_TTL = 60.0


class KeyStore:
    def __init__(self, ctx: NodeContext, directory) -> None:
        self.ctx = ctx
        self.directory = directory
        self._misses: dict[str, float] = {}

    async def lookup(self, key_id: str, refresh: bool) -> PublicKey | None:
        """The `KeyLookup` handed to `verify_request`."""
        if not refresh:
            return await self._cached(key_id)
        now = time.monotonic()
        if self._misses.get(key_id, 0) > now:
            return None
        try:
            await self.directory.fetch_actor(urldefrag(key_id).url, key_id=key_id)
        except Exception:  # noqa: BLE001 - any fetch failure means "no key"
            self._misses[key_id] = now + NEGATIVE_TTL
            if len(self._misses) > 10_000:
                self._misses.clear()
            return None
        return await self._cached(key_id)

    async def _cached(self, key_id: str) -> PublicKey | None:
        async with self.ctx.db.read_session() as s:
            actor = await s.scalar(select(Actor).where(Actor.key_id == key_id))
            if actor is None:
                # Some servers sign with the bare actor URI as keyId.
                actor = await s.scalar(select(Actor).where(Actor.uri == key_id))
        if actor is None or not actor.public_key_pem:
            return None
        return PublicKey(key_id=key_id, owner=actor.uri, pem=actor.public_key_pem)
