"""Actors as ActivityPub documents, both ways: `to_ap` for ours, `from_ap` for theirs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.context import NodeContext
from node.keys import RSA_FILE, public_pem_of
from node.models import Actor, ArtistProfile, utcnow
from node.services.social import forget_actor

from .errors import BadActivity
from .sanitize import clean_html, clean_text
from .vocab import as_list, host_of, id_of, text_of, type_of, with_context

NODE_HANDLE = "actor"
ACTOR_TYPES = {"Person", "Group", "Organization", "Application", "Service"}


def actor_to_ap(
    ctx: NodeContext, actor: Actor, profile: ArtistProfile | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": actor.uri,
        "type": actor.kind,
        "preferredUsername": actor.handle,
        "name": actor.name or actor.handle,
        "summary": actor.summary and "<p>" + _escape(actor.summary).replace("\n", "<br>") + "</p>",
        "url": actor.url or actor.uri,
        "inbox": actor.inbox_url,
        "outbox": actor.outbox_url,
        "followers": actor.followers_url,
        "following": actor.following_url,
        "endpoints": {"sharedInbox": actor.shared_inbox_url or f"{ctx.settings.base_url}/inbox"},
        "manuallyApprovesFollowers": actor.manually_approves_followers,
        "discoverable": True,
        "published": actor.created_at.isoformat().replace("+00:00", "Z"),
        "publicKey": {"id": actor.key_id, "owner": actor.uri, "publicKeyPem": actor.public_key_pem},
    }
    if actor.avatar_url:
        doc["icon"] = {"type": "Image", "url": actor.avatar_url}
    if actor.is_artist:
        doc["nycmg:artist"] = True
    if actor.local and actor.uri == ctx.urls.node_actor() and "assertion_method" in ctx.extras:
        # The node's Ed25519 clearing key as a Multikey (FEP-521a), installed by
        # royalties' setup: statements and settlements are verified against it.
        doc["assertionMethod"] = ctx.extras["assertion_method"]
    if profile is not None:
        doc["borough"] = profile.borough
        doc["genres"] = list(profile.genres)
        doc["attachment"] = [
            {
                "type": "PropertyValue",
                "name": "Link",
                "value": f'<a href="{_escape(u)}" rel="me nofollow">{_escape(u)}</a>',
            }
            for u in profile.links
        ]
    return with_context(doc)


def _escape(s: str) -> str:
    import html

    return html.escape(s, quote=True)


async def ensure_node_actor(ctx: NodeContext) -> Actor:
    """The node's own Application actor (`/actor`), signing with the node's RSA key."""
    private_pem = (ctx.settings.keys_dir / RSA_FILE).read_text()
    base = ctx.settings.base_url
    async with ctx.db.transaction() as s:
        actor = await s.scalar(select(Actor).where(Actor.uri == ctx.urls.node_actor()))
        if actor is None:
            actor = Actor(
                uri=ctx.urls.node_actor(),
                handle=NODE_HANDLE,
                domain=ctx.domain,
                kind="Application",
                local=True,
                name=ctx.settings.node.name,
                summary=ctx.settings.node.description,
                url=f"{base}/",
                inbox_url=f"{base}/actor/inbox",
                outbox_url=f"{base}/actor/outbox",
                followers_url=f"{base}/actor/followers",
                following_url=f"{base}/actor/following",
                shared_inbox_url=f"{base}/inbox",
                key_id=f"{ctx.urls.node_actor()}#main-key",
            )
            s.add(actor)
        # Key rotation happens on disk (`nycmg keys rotate`); the row follows the file.
        actor.private_key_pem = private_pem
        actor.public_key_pem = public_pem_of(private_pem)
        actor.name = ctx.settings.node.name
        await s.flush()
        return actor


async def forget_remote_actor(session: AsyncSession, actor: Actor) -> None:
    """A remote actor is gone for good (their Delete, or a 410 from their inbox).

    Deleted with one statement so the database's ON DELETE rules do the rest:
    follows, profile, catalog copies, likes and comments go; plays stay counted
    (their listener becomes NULL). The ORM's own delete would try to blank the
    profile's primary key instead, and fail for every remote artist.
    """
    if actor.local:
        raise BadActivity("a local actor is never forgotten this way")
    await forget_actor(session, actor.id)
    await session.execute(
        delete(Actor).where(Actor.id == actor.id).execution_options(synchronize_session=False)
    )
    session.expunge(actor)


async def upsert_remote_actor(
    ctx: NodeContext, session: AsyncSession, doc: dict[str, Any], fetched_from: str
) -> Actor:
    """Store or refresh a remote actor from its document (fetched by id, never trusted inline)."""
    actor_id = id_of(doc)
    kind = type_of(doc)
    if not actor_id or kind not in ACTOR_TYPES:
        raise BadActivity("not an actor document")
    if host_of(actor_id) != host_of(fetched_from):
        raise BadActivity("actor id is on another host than the document came from")
    if host_of(actor_id) == ctx.domain.lower():
        raise BadActivity("a remote document claims to be one of our actors")
    key = doc.get("publicKey")
    if isinstance(key, list):
        key = key[0] if key else None
    if not isinstance(key, dict) or not isinstance(key.get("publicKeyPem"), str):
        raise BadActivity("actor has no public key")
    if id_of(key.get("owner")) not in (None, actor_id):
        raise BadActivity("the actor's key belongs to someone else")
    key_id = id_of(key) or f"{actor_id}#main-key"
    if host_of(key_id) != host_of(actor_id):
        raise BadActivity("the key lives on another host")
    handle = (
        clean_text(text_of(doc.get("preferredUsername"), 64), 64)
        or actor_id.rstrip("/").rsplit("/", 1)[-1][:64]
    )
    endpoints = doc.get("endpoints") if isinstance(doc.get("endpoints"), dict) else {}
    icon = doc.get("icon")
    icon_url = id_of(icon.get("url")) if isinstance(icon, dict) else None

    actor = await session.scalar(select(Actor).where(Actor.uri == actor_id))
    if actor is None:
        clash = await session.scalar(
            select(Actor).where(Actor.handle == handle.lower(), Actor.domain == host_of(actor_id))
        )
        if clash is not None:  # the remote renamed someone; the URI is the identity
            clash.handle = f"{clash.handle}-{clash.id}"[:64]
        actor = Actor(uri=actor_id, local=False, handle=handle.lower(), domain=host_of(actor_id))
        session.add(actor)
    actor.kind = kind
    actor.name = clean_text(text_of(doc.get("name"), 200), 200) or handle
    actor.summary = clean_html(text_of(doc.get("summary"), 5000))
    actor.url = id_of(doc.get("url")) or actor_id
    actor.inbox_url = id_of(doc.get("inbox"))
    actor.outbox_url = id_of(doc.get("outbox"))
    actor.followers_url = id_of(doc.get("followers"))
    actor.following_url = id_of(doc.get("following"))
    actor.shared_inbox_url = id_of(endpoints.get("sharedInbox")) if endpoints else None
    actor.public_key_pem = key["publicKeyPem"][:10_000]
    actor.key_id = key_id
    actor.avatar_url = icon_url
    actor.manually_approves_followers = bool(doc.get("manuallyApprovesFollowers"))
    actor.fetched_at = utcnow()
    if doc.get("nycmg:artist") or doc.get("artist") is True or "genres" in doc:
        actor.is_artist = True
    await session.flush()
    if actor.is_artist:
        profile = await session.get(ArtistProfile, actor.id)
        if profile is None:
            profile = ArtistProfile(actor_id=actor.id, genres=[], links=[])
            session.add(profile)
        profile.borough = clean_text(text_of(doc.get("borough"), 64), 64) or None
        profile.genres = [
            clean_text(g, 40) for g in as_list(doc.get("genres")) if isinstance(g, str)
        ][:10]
        await session.flush()
    for url in (actor.inbox_url, actor.shared_inbox_url):
        if url and host_of(url) != host_of(actor_id):
            raise BadActivity("the actor's inbox is on another host")
    return actor
