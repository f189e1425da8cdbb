"""Finding remote actors and objects: WebFinger, then a signed fetch by id.

Installed as the node's `Directory` (node/context.py), so the core API can
follow `@jay@brooklyn.example` or play a remote track without knowing how.
Every fetch goes through `FederationClient` (address checks, size and time
limits); nothing fetched is trusted beyond what its own host may say.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from node.context import NodeContext
from node.directory import LocalDirectory, parse_handle
from node.errors import NotFound
from node.models import Actor

from .actors import upsert_remote_actor
from .client import FederationClient
from .errors import BadActivity, FetchFailed
from .objects import upsert_remote_event, upsert_remote_release, upsert_remote_track
from .policy import host_allowed
from .vocab import ACTIVITY_JSON, host_of, id_of, type_of


class RemoteDirectory(LocalDirectory):
    def __init__(self, ctx: NodeContext, client: FederationClient) -> None:
        super().__init__(ctx)
        self.client = client

    async def resolve_actor(self, ref: str) -> int:
        found = await self.find_actor(ref)
        if found is not None:
            return found
        parsed = parse_handle(ref, self.ctx.domain)
        if parsed is None:
            uri = ref.strip()
        else:
            handle, domain = parsed
            if domain == self.ctx.domain.lower():
                raise NotFound(f"no actor @{handle} here")
            uri = await self.webfinger(handle, domain)
        return (await self.fetch_actor(uri)).id

    async def webfinger(self, handle: str, domain: str) -> str:
        """RFC 7033: exactly one `self` link of an ActivityPub type."""
        if not await host_allowed(self.ctx, domain):
            raise NotFound(f"{domain} is not federated with this node")
        query = urlencode({"resource": f"acct:{handle}@{domain}"})
        try:
            jrd = await self.client.get_json_any_scheme(domain, f"/.well-known/webfinger?{query}")
        except FetchFailed as e:
            raise NotFound(f"@{handle}@{domain} could not be found ({e.detail})") from None
        selves = [
            link.get("href")
            for link in jrd.get("links", [])
            if isinstance(link, dict)
            and link.get("rel") == "self"
            and str(link.get("type", "")).split(";")[0].strip()
            in ("application/activity+json", "application/ld+json")
        ]
        if len(selves) != 1 or not isinstance(selves[0], str):
            raise NotFound(f"@{handle}@{domain} has no single ActivityPub actor")
        return selves[0]

    async def fetch_actor(self, uri: str, *, key_id: str | None = None) -> Actor:
        """Fetch (or refresh) an actor document and store it."""
        if not await host_allowed(self.ctx, host_of(uri)):
            raise NotFound(f"{host_of(uri)} is not federated with this node")
        try:
            doc = await self.client.get_json(uri)
        except FetchFailed as e:
            raise NotFound(f"actor {uri} could not be fetched ({e.detail})") from None
        if type_of(doc) not in ("Person", "Group", "Organization", "Application", "Service"):
            # A keyId may point at a key document; its owner is the actor.
            owner = id_of(doc.get("owner"))
            if owner and owner != uri and host_of(owner) == host_of(uri):
                return await self.fetch_actor(owner)
            raise NotFound(f"{uri} is not an actor")
        return await self._upsert(lambda s: upsert_remote_actor(self.ctx, s, doc, uri))

    async def _upsert(self, write):
        """Run `write(session)` in a transaction, once more if a concurrent request
        inserted the same row first (two fans following a new artist at once, two
        activities from a new actor: on PostgreSQL both read "absent" and both
        insert). The second run finds the row and updates it."""
        try:
            async with self.ctx.db.transaction() as s:
                return await write(s)
        except IntegrityError:
            async with self.ctx.db.transaction() as s:
                return await write(s)

    async def resolve_object(self, uri: str) -> tuple[str, int]:
        found = await self.find_object(uri)
        if found is not None:
            return found
        if host_of(uri) == self.ctx.domain.lower():
            raise NotFound(f"no object {uri!r} here")
        return await self.fetch_object(uri)

    async def fetch_object(self, uri: str, doc: dict[str, Any] | None = None) -> tuple[str, int]:
        """Fetch a remote track, release or event by id and store it."""
        if urlsplit(uri).scheme not in ("http", "https"):
            raise NotFound("not an http(s) URI")
        if not await host_allowed(self.ctx, host_of(uri)):
            raise NotFound(f"{host_of(uri)} is not federated with this node")
        if doc is None:
            try:
                doc = await self.client.get_json(uri)
            except FetchFailed as e:
                raise NotFound(f"{uri} could not be fetched ({e.detail})") from None
        if id_of(doc) != uri:
            raise NotFound(f"{uri} answered with another object")
        author_uri = id_of(doc.get("attributedTo"))
        if not author_uri or host_of(author_uri) != host_of(uri):
            raise NotFound(f"{uri} has no author on its own host")
        author_id = await self.resolve_actor(author_uri)
        kind = type_of(doc)
        upserts = {
            "Audio": ("track", upsert_remote_track),
            "Album": ("release", upsert_remote_release),
            "Event": ("event", upsert_remote_event),
        }
        if kind not in upserts:
            raise NotFound(f"{uri} is a {kind}, not a track, release or event")
        name, upsert = upserts[kind]

        async def write(s) -> tuple[str, int]:
            author = await s.get(Actor, author_id)
            return name, (await upsert(self.ctx, s, doc, author)).id

        try:
            return await self._upsert(write)
        except BadActivity as e:
            raise NotFound(f"{uri}: {e.detail}") from None

    async def actor_by_uri(self, uri: str) -> Actor | None:
        async with self.ctx.db.read_session() as s:
            return await s.scalar(select(Actor).where(Actor.uri == uri))


__all__ = ["RemoteDirectory", "ACTIVITY_JSON"]
