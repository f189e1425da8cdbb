"""The inbox: cheap rejections, a verified signature, the raw activity stored,
202 — and processing later, by type, in a job (STYLE.md: Takahē, bovine).

Nothing is stored for a request that fails any check. A redelivered
activity (same id) is acknowledged and dropped, so it is processed once.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from sqlalchemy import select, update

from node.appkeys import CTX
from node.errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from node.jobs import PermanentFailure
from node.models import Actor, Job, utcnow
from node.web_helpers import read_at_most

from .appkeys import FEDERATION
from .errors import BadActivity
from .handlers import HANDLERS, Inbound
from .models import InboxItem
from .signatures import MalformedSignature, SignatureError, verify_request
from .vocab import host_of, id_of, type_of

log = logging.getLogger("nycmg.federation.inbox")
INBOX_TYPES = ("application/activity+json", "application/ld+json", "application/json")


def _signature_key_host(request: web.Request) -> str | None:
    """The keyId's host from either signature scheme, read before any crypto."""
    import re

    for header in ("Signature", "Signature-Input"):
        m = re.search(r'keyid="([^"]+)"', request.headers.get(header, ""), re.IGNORECASE)
        if m:
            return host_of(m.group(1))
    return None


async def _read_capped(request: web.Request, limit: int) -> bytes:
    """The whole body, or 413 past `limit`."""
    body = await read_at_most(request, limit)
    if len(body) > limit:
        raise PayloadTooLarge(f"activities are limited to {limit} bytes")
    return body


async def inbox_view(request: web.Request) -> web.Response:
    ctx = request.config_dict[CTX]
    fed = request.config_dict[FEDERATION]
    limit = ctx.settings.federation.max_body_bytes

    # 1. Cheap rejections: size, type, and hosts we do not talk to.
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"activities are limited to {limit} bytes")
    if request.content_type not in INBOX_TYPES:
        raise UnsupportedMediaType("send application/activity+json")
    key_host = _signature_key_host(request)
    if key_host is None:
        if "Signature" in request.headers or "Signature-Input" in request.headers:
            raise MalformedSignature("the signature has no readable keyId")  # 400, not 401
        raise Unauthorized("activities must carry an HTTP signature")
    if not await fed.intake.allows(key_host):  # cached while allowed (intake.py)
        raise Forbidden(f"{key_host} is not federated with this node")
    body = await _read_capped(request, limit)

    # 2. The signature (its own module: 400 malformed, 401 wrong).
    try:
        verified = await verify_request(
            request.method,
            request.raw_path,
            request.headers,
            body,
            fed.keys.lookup,
            max_skew_seconds=ctx.settings.federation.max_clock_skew_seconds,
            scheme=ctx.settings.node.scheme,
        )
    except SignatureError as err:
        log.info("signature refused", extra={"key_host": key_host, "error": err.detail})
        raise

    # 3. The activity must be what the signer may say.
    try:
        activity = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON") from None
    if not isinstance(activity, dict):
        raise BadActivity("an activity is a JSON object")
    activity_id, actor_uri, kind = id_of(activity), id_of(activity.get("actor")), type_of(activity)
    if not activity_id or not actor_uri or not kind:
        raise BadActivity("an activity needs id, type and actor")
    if actor_uri != verified.owner:
        raise Unauthorized("the signing key does not belong to the activity's actor")
    if host_of(verified.key_id) != host_of(actor_uri):
        raise Unauthorized("the signing key must be on its actor's host")
    dedupe_id = activity_id
    if host_of(activity_id) != host_of(actor_uri):
        # Ids are deduplicated, so an id on another host could pre-empt that
        # host's real activity: refuse, except for Accept and Reject, which
        # Funkwhale ids as "<the Follow's id>/accept" on the follower's host
        # (federation/serializers.py, AcceptFollowSerializer). Those are kept
        # under a key only their signer can make, and name nothing we store.
        if kind not in ("Accept", "Reject"):
            raise Unauthorized("the activity, its actor and the key must share one host")
        dedupe_id = f"{actor_uri} {activity_id}"
    if host_of(actor_uri) == ctx.domain.lower():
        raise Unauthorized("activities from our own actors do not come in through the inbox")

    # 4. Store once, answer 202, process later. Rows from concurrent requests
    # share one transaction (group commit, intake.py); we answer after it commits.
    obj = activity.get("object")
    stored = await fed.intake.store(
        dict(
            activity_id=dedupe_id[:1024],
            type=kind[:64],
            object_type=(type_of(obj) or None) if isinstance(obj, dict) else None,
            actor_uri=actor_uri,
            host=host_of(actor_uri),
            key_id=verified.key_id[:600],
            payload=activity,
            state="received",
            received_at=utcnow(),
        )
    )
    if stored == "refused":
        raise Forbidden(f"{host_of(actor_uri)} is not federated with this node")
    return web.json_response({"status": stored}, status=202)


async def process_inbox_item(ctx, fed, job: Job) -> None:
    """The job: dispatch a stored activity to its handler in one transaction."""
    item_id = job.payload["item"]
    async with ctx.db.read_session() as s:
        item = await s.get(InboxItem, item_id)
    if item is None or item.state != "received":
        return
    handler = HANDLERS.find(item.type, item.object_type or type_of(item.payload.get("object")))
    state, error = "processed", None
    if handler is None:
        state, error = "ignored", f"no handler for {item.type}"
    else:
        try:
            async with ctx.db.transaction() as s:
                actor = await s.scalar(select(Actor).where(Actor.uri == item.actor_uri))
                if actor is None:
                    raise PermanentFailure("the actor vanished")
                reason = await handler(Inbound(ctx, s, item.payload, actor, fed.directory))
                if reason:
                    state, error = "ignored", reason
        except BadActivity as e:
            state, error = "failed", e.detail
        except PermanentFailure as e:
            state, error = "failed", str(e)
        except Exception as e:
            # Transient (a fetch, the database): record and let the job retry.
            async with ctx.db.transaction() as s:
                await s.execute(
                    update(InboxItem)
                    .where(InboxItem.id == item_id)
                    .values(error=f"{type(e).__name__}: {e}"[:2000])
                )
            if job.attempts >= job.max_attempts:
                state, error = "failed", f"{type(e).__name__}: {e}"
            else:
                raise
    async with ctx.db.transaction() as s:
        await s.execute(
            update(InboxItem)
            .where(InboxItem.id == item_id)
            .values(state=state, error=error, processed_at=utcnow())
        )


def inbox_routes() -> list[web.RouteDef]:
    return [
        web.post("/inbox", inbox_view, name="ap.shared_inbox"),
        web.post("/actor/inbox", inbox_view, name="ap.node_inbox"),
        web.post("/actors/{handle}/inbox", inbox_view, name="ap.inbox"),
    ]
