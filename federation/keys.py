"""Public keys of remote actors for signature checks: cached in the actors
table, refetched once when unknown or failing (rotation), with a short
negative cache so junk keyIds cannot make us fetch in a loop.

In front of the table sits a small in-memory LRU with a TTL: the inbox looks
a key up on every request, and a database read per request costs more than
the RSA verification itself (a read session is several round trips to the
SQLite thread). The cache is safe for rotation: a key that no longer
verifies makes `verify_request` ask again with `refresh=True`, which drops
the entry and refetches the actor. The TTL bounds how long a key replaced by
other means (an `Update` of the actor processed by the worker, another
process) can still verify here: `KEY_TTL` seconds, where Mastodon keeps
keys until they fail.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from urllib.parse import urldefrag

from sqlalchemy import select

from node.context import NodeContext
from node.models import Actor

from .signatures import PublicKey

NEGATIVE_TTL = 60.0
KEY_TTL = 300.0
KEY_CACHE_SIZE = 10_000


class KeyStore:
    def __init__(
        self,
        ctx: NodeContext,
        directory,
        *,
        ttl: float = KEY_TTL,
        max_keys: int = KEY_CACHE_SIZE,
    ) -> None:
        self.ctx = ctx
        self.directory = directory
        self.ttl = ttl
        self.max_keys = max_keys
        self._misses: dict[str, float] = {}
        self._keys: OrderedDict[str, tuple[float, PublicKey]] = OrderedDict()

    async def lookup(self, key_id: str, refresh: bool) -> PublicKey | None:
        """The `KeyLookup` handed to `verify_request`."""
        if not refresh:
            key = self._recall(key_id)
            if key is None:
                key = await self._cached(key_id)
                if key is not None:
                    self._remember(key)
            return key
        self.forget(key_id)
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
        key = await self._cached(key_id)
        if key is not None:
            self._remember(key)
        return key

    def forget(self, key_id: str) -> None:
        """Drop a cached key (it failed, or its actor changed or is gone)."""
        self._keys.pop(key_id, None)

    def _recall(self, key_id: str) -> PublicKey | None:
        hit = self._keys.get(key_id)
        if hit is None:
            return None
        expires, key = hit
        if expires < time.monotonic():
            del self._keys[key_id]
            return None
        self._keys.move_to_end(key_id)
        return key

    def _remember(self, key: PublicKey) -> None:
        self._keys[key.key_id] = (time.monotonic() + self.ttl, key)
        self._keys.move_to_end(key.key_id)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    async def _cached(self, key_id: str) -> PublicKey | None:
        async with self.ctx.db.read_session() as s:
            actor = await s.scalar(select(Actor).where(Actor.key_id == key_id))
            if actor is None:
                # Some servers sign with the bare actor URI as keyId.
                actor = await s.scalar(select(Actor).where(Actor.uri == key_id))
        if actor is None or not actor.public_key_pem:
            return None
        return PublicKey(key_id=key_id, owner=actor.uri, pem=actor.public_key_pem)
