"""Asking peer nodes about windows no local track matches (DESIGN.md 8: "on no
match it may ask peer nodes"), and answering their questions.

Asking (`ask`, called by the batch ingest with `detection.peer_match` on):
the windows of a batch that the local index did not recognise are looked up
in a cache by the digest of their fingerprint (SHA-256 of the encoded
text); the rest, at most `MAX_WINDOWS` per batch, go to each peer node in
signed POSTs of `WINDOWS_PER_REQUEST` fingerprints to `MATCH_PATH`, signed
with the node actor's key (draft-cavage, as every server-to-server request
here) through federation's guarded fetcher (address checks, time limit
`detection.peer_timeout_seconds`). Peers are the nodes in `detection.peers`
and the hosts of remote artists this node's users follow, at most
`detection.peer_max_nodes`, never a blocked host (and not, for a minute, one
that failed to answer). A peer's answer counts
only for a track on the peer's own host (a node speaks for its own
catalogue), is fetched and stored like any remote track (the directory),
and is cached, a match or a "none", for `detection.peer_cache_seconds`.

Answering (`POST /api/v1/detection/match`): the request must be signed by an
actor of a host this node knows (an instance it has federated with, or one
named in `detection.peers`) and does not block; the body is
`{"fingerprints": [encoded, ...]}` (at most `WINDOWS_PER_REQUEST`); each is
voted against the local index with `detection.matching` and answered with
this node's own track, or null.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from federation.signatures import verify_request
from node.api import API
from node.api.routing import Call
from node.context import NodeContext
from node.errors import BadRequest, NodeError, PayloadTooLarge, ValidationFailed
from node.models import Actor, Follow, Track

if TYPE_CHECKING:
    from federation.appkeys import Federation

    from .batches import Item

log = logging.getLogger("nycmg.detection.peers")

MATCH_PATH = "/api/v1/detection/match"
WINDOWS_PER_REQUEST = 8  # a peer's answer must fit federation's 2,000-character POST reply
MAX_WINDOWS = 32  # windows of one batch asked about; the rest stay unmatched
CACHE_SIZE = 10_000
PEERS_TTL = 60.0  # seconds the list of peers is kept before it is read again
DOWN_SECONDS = 60.0  # a peer that did not answer is left alone this long


class PeerMatchingOff(NodeError):
    status = 403
    type_slug = "peer-matching-off"
    title = "Peer matching is off on this node"


class UnknownPeer(NodeError):
    status = 403
    type_slug = "unknown-peer"
    title = "Not a peer of this node"


@dataclass(frozen=True, slots=True)
class PeerMatch:
    """What a peer recognised: its track, and how sure it is."""

    track: str
    confidence: float
    offset_ms: int


def digest(encoded: str) -> str:
    return hashlib.sha256(encoded.encode()).hexdigest()


class PeerCache:
    """Answers by fingerprint digest (a match or None), each for `ttl` seconds; LRU-bounded."""

    def __init__(self, ttl: float, size: int = CACHE_SIZE) -> None:
        self.ttl, self.size = ttl, size
        self._items: OrderedDict[str, tuple[float, PeerMatch | None]] = OrderedDict()

    def get(self, key: str) -> tuple[bool, PeerMatch | None]:
        hit = self._items.get(key)
        if hit is None:
            return False, None
        if hit[0] < time.monotonic():
            del self._items[key]
            return False, None
        self._items.move_to_end(key)
        return True, hit[1]

    def put(self, key: str, value: PeerMatch | None) -> None:
        self._items[key] = (time.monotonic() + self.ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def cache_of(ctx: NodeContext) -> PeerCache:
    cache = ctx.extras.get("detection.peer_cache")
    if cache is None:
        cache = ctx.extras["detection.peer_cache"] = PeerCache(
            ctx.settings.detection.peer_cache_seconds
        )
    return cache


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}"


async def peer_origins(ctx: NodeContext) -> list[str]:
    """Base URLs of the nodes to ask: `detection.peers`, then the hosts of remote
    artists local users follow (most followed first); allowed hosts only."""
    from federation.policy import host_allowed

    cached = ctx.extras.get("detection.peer_origins")
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    s = ctx.settings.detection
    origins = [o for o in (_origin(str(u)) for u in s.peers) if o]
    target, follower = aliased(Actor), aliased(Actor)
    async with ctx.db.read_session() as session:
        rows = await session.execute(
            select(target.domain, func.min(target.uri), func.count())
            .select_from(Follow)
            .join(target, target.id == Follow.target_id)
            .join(follower, follower.id == Follow.follower_id)
            .where(follower.local.is_(True), target.local.is_(False), Follow.state == "accepted")
            .group_by(target.domain)
            .order_by(func.count().desc(), target.domain)
            .limit(4 * s.peer_max_nodes + 4)
        )
        for _domain, uri, _n in rows.all():
            origin = _origin(uri)
            if origin and origin not in origins:
                origins.append(origin)
    own = ctx.domain.lower()
    out = []
    for origin in origins:
        host = urlsplit(origin).netloc
        if host != own and await host_allowed(ctx, host):
            out.append(origin)
        if len(out) >= s.peer_max_nodes:
            break
    ctx.extras["detection.peer_origins"] = (time.monotonic() + PEERS_TTL, out)
    return out


# ---- asking --------------------------------------------------------------------


async def ask(ctx: NodeContext, fed: Federation, items: list[Item]) -> None:
    """Give windows with no local match the track a peer recognised, if any
    (sets track_id, offset_ms and confidence on the items it finds)."""
    cache = cache_of(ctx)
    by_digest: dict[str, list[Item]] = {}
    for item in items:
        by_digest.setdefault(digest(item.fingerprint or ""), []).append(item)
    found: dict[str, PeerMatch] = {}
    wanted: list[str] = []
    for key in by_digest:
        hit, value = cache.get(key)
        if hit:
            if value is not None:
                found[key] = value
        elif len(wanted) < MAX_WINDOWS:
            wanted.append(key)
    origins = await peer_origins(ctx) if wanted and fed.client.node_key else []
    down = ctx.extras.setdefault("detection.peers_down", {})
    now = time.monotonic()
    origins = [o for o in origins if down.get(o, 0.0) <= now]
    if wanted and origins:
        encoded = {key: by_digest[key][0].fingerprint or "" for key in wanted}
        chunks = [
            wanted[k : k + WINDOWS_PER_REQUEST] for k in range(0, len(wanted), WINDOWS_PER_REQUEST)
        ]
        jobs = [(o, chunk) for o in origins for chunk in chunks]
        answers = await asyncio.gather(
            *(_ask_one(ctx, fed, o, [encoded[k] for k in chunk]) for o, chunk in jobs)
        )
        answered: set[str] = set()
        for (origin, chunk), answer in zip(jobs, answers, strict=True):
            if answer is None:
                # Not asked again for a while: a peer that is down must not
                # make every batch wait for its timeout.
                down[origin] = time.monotonic() + DOWN_SECONDS
                continue
            answered.update(chunk)
            for key, m in zip(chunk, answer, strict=True):
                if m is not None and (key not in found or m.confidence > found[key].confidence):
                    found[key] = m
        for key in answered:
            cache.put(key, found.get(key))
    if not found:
        return
    ids = await _local_ids(ctx, {m.track for m in found.values()})
    for key, m in found.items():
        track_id = ids.get(m.track)
        if track_id is None:
            continue
        for item in by_digest[key]:
            item.track_id, item.offset_ms, item.confidence = track_id, m.offset_ms, m.confidence


async def _ask_one(
    ctx: NodeContext, fed: Federation, origin: str, fingerprints: list[str]
) -> list[PeerMatch | None] | None:
    """One signed request to one peer; None when it cannot be reached or makes no sense."""
    from federation.safefetch import FetchError, UnsafeURL

    body = json.dumps({"fingerprints": fingerprints}, separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    try:
        status, _headers, text = await fed.client.fetcher.post(
            origin + MATCH_PATH,
            body,
            headers,
            sign=fed.client.node_key,
            timeout=ctx.settings.detection.peer_timeout_seconds,
        )
    except (FetchError, UnsafeURL) as e:
        log.info("peer %s not asked: %s", origin, e)
        return None
    if status != 200:
        log.info("peer %s answered %s", origin, status)
        return None
    try:
        matches = json.loads(text)["matches"]
        if not isinstance(matches, list) or len(matches) != len(fingerprints):
            raise ValueError("one answer per fingerprint")
        host = urlsplit(origin).netloc
        out: list[PeerMatch | None] = []
        for m in matches:
            if m is None:
                out.append(None)
                continue
            track = m["track"]
            if not isinstance(track, str) or len(track) > 512 or urlsplit(track).netloc != host:
                out.append(None)  # a node speaks for its own tracks only
                continue
            confidence = min(1.0, max(0.0, float(m["confidence"])))
            out.append(PeerMatch(track, confidence, max(0, int(m.get("offset_ms") or 0))))
        return out
    except (ValueError, KeyError, TypeError) as e:
        log.info("peer %s answered nonsense: %s", origin, e)
        return None


async def _local_ids(ctx: NodeContext, uris: set[str]) -> dict[str, int]:
    """Row ids of the peers' tracks, fetched and stored by the directory when new."""
    async with ctx.db.read_session() as s:
        ids = dict((await s.execute(select(Track.uri, Track.id).where(Track.uri.in_(uris)))).all())
    for uri in uris - ids.keys():
        try:
            kind, obj_id = await ctx.directory.resolve_object(uri)
        except NodeError as e:
            log.info("peer track %s not stored: %s", uri, e)
            continue
        if kind == "track":
            ids[uri] = obj_id
    return ids


# ---- answering -----------------------------------------------------------------


@API.route(
    "POST",
    MATCH_PATH,
    name="api.detection_match",
    summary="A peer node asks which of this node's tracks its fingerprints are (signed by the node)",
    tag="detection",
)
async def post_match(call: Call) -> dict[str, Any]:
    from federation.appkeys import FEDERATION
    from federation.policy import host_allowed

    ctx, request = call.ctx, call.request
    s = ctx.settings.detection
    if not s.peer_match:
        raise PeerMatchingOff("this node does not answer peers (detection.peer_match)")
    limit = s.max_batch_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"a question is at most {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"a question is at most {limit} bytes")
    fed = request.config_dict[FEDERATION]
    signed = await verify_request(
        request.method,
        request.raw_path,
        request.headers,
        body,
        fed.keys.lookup,
        max_skew_seconds=s.max_skew_seconds,
        scheme=ctx.settings.node.scheme,
    )
    host = urlsplit(signed.owner).netloc.lower()
    if not await _known(ctx, host) or not await host_allowed(ctx, host):
        raise UnknownPeer(f"{host} is not a node this one federates with")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    fps = data.get("fingerprints") if isinstance(data, dict) else None
    if (
        not isinstance(fps, list)
        or not 0 < len(fps) <= WINDOWS_PER_REQUEST
        or not all(isinstance(f, str) for f in fps)
    ):
        raise ValidationFailed(
            [
                {
                    "field": "fingerprints",
                    "message": f"a list of 1 to {WINDOWS_PER_REQUEST} encoded fingerprints",
                }
            ]
        )
    return {"matches": await _answer(ctx, fps)}


async def _known(ctx: NodeContext, host: str) -> bool:
    from federation.models import Instance

    if any(urlsplit(str(u)).netloc.lower() == host for u in ctx.settings.detection.peers):
        return True
    async with ctx.db.read_session() as s:
        return await s.scalar(select(Instance.id).where(Instance.host == host)) is not None


async def _answer(ctx: NodeContext, fps: list[str]) -> list[dict[str, Any] | None]:
    """Vote each fingerprint against the local index; answer this node's own tracks only."""
    from .batches import MAX_FINGERPRINT_CHARS, _vote_all
    from .index import snapshot

    async with ctx.db.read_session() as s:
        postings = await snapshot(s)
    texts = [f if len(f) <= MAX_FINGERPRINT_CHARS else "" for f in fps]
    results = await asyncio.to_thread(_vote_all, postings, texts)
    ids = {r[0] for r in results if isinstance(r, tuple)}
    tracks: dict[int, str] = {}
    if ids:
        async with ctx.db.read_session() as s:
            rows = await s.execute(
                select(Track.id, Track.uri).where(Track.id.in_(ids), Track.local.is_(True))
            )
            tracks = dict(rows.all())
    out: list[dict[str, Any] | None] = []
    for r in results:
        if isinstance(r, tuple) and r[0] in tracks:
            out.append({"track": tracks[r[0]], "confidence": round(r[2], 3), "offset_ms": r[1]})
        else:
            out.append(None)
    return out
