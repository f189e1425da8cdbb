"""`POST /api/v1/detection/batches`: a device's signed upload of detections.

The request is signed by the device's Ed25519 key with HTTP signatures
(draft-cavage `hs2019` or RFC 9421 `ed25519`, verified by
`federation.signatures`); the keyId is the device's URL. The signature must
cover the body's digest and a Date within `detection.max_skew_seconds`.

Body: `{batch_id, device, sent_at, items: [{seq, captured_at, duration_ms,
fingerprint | declared}]}` where `declared` is `{"track": URI}` or
`{"isrc": "..."}` from a DJ integration. The answer lists every item:
`matched` (with its track and play), `unmatched`, `duplicate` (a `seq` this
device sent before: nothing changes, the first answer's track and play are
repeated) or `rejected` (with why, e.g. captured too long ago).

The single SQLite writer is kept for what needs it: fingerprints are decoded
and matched, and declared tracks looked up, on a read session first; then a
short write records items, joins plays (detection.plays), applies the fraud
rules and updates the device, in one transaction with the other batches
waiting for the writer (detection.group_commit); the answer is built after
the commit.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from federation.appkeys import FEDERATION, Federation
from federation.signatures import PublicKey, verify_request
from node.api import API
from node.api.routing import Call
from node.context import NodeContext
from node.errors import BadRequest, NodeError, PayloadTooLarge, ValidationFailed
from node.models import Play, Track, utcnow
from node.validation import ISRC_RE, iso, parse_datetime
from node.web_helpers import read_at_most

from . import fraud, peers
from .bulk import db_time, execute_many, fetch_all, insert_many
from .device_models import DetectionBatch, DetectionItem, Device
from .group_commit import GroupWriter
from .plays import Detection, VenuePlay, assign_plays

BATCH_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
MAX_SEQ = 2**62
MAX_WINDOW_MS = 10 * 60 * 1000  # a declared track may say how long it ran
MAX_FINGERPRINT_CHARS = 200_000
FUTURE_SLACK = timedelta(minutes=2)
ITEM_KEYS = frozenset(("seq", "captured_at", "duration_ms", "fingerprint", "declared"))
DECLARED_KEYS = frozenset(("track", "isrc"))
BATCH_COLUMNS = ("device_id", "batch_id", "sent_at", "received_at", "items", "matched")
ITEM_COLUMNS = (
    "device_id",
    "seq",
    "batch_id",
    "captured_at",
    "duration_ms",
    "kind",
    "status",
    "error",
    "track_id",
    "play_id",
    "offset_ms",
    "confidence",
)


class DeviceRefused(NodeError):
    """A known device that may not upload (revoked or quarantined)."""

    status = 403
    type_slug = "device-refused"
    title = "Device refused"


@dataclass(slots=True)
class Item:
    """One parsed item of a batch."""

    index: int
    seq: int
    captured_at: datetime
    duration_ms: int
    kind: str  # fingerprint | declared
    fingerprint: str | None = None
    declared_track: str | None = None
    declared_isrc: str | None = None
    status: str = "unmatched"
    error: str | None = None
    track_id: int | None = None
    offset_ms: int | None = None
    confidence: float | None = None
    captured_db: Any = None  # captured_at as the database stores it, once known


@dataclass
class Batch:
    batch_id: str
    device: str
    sent_at: datetime | None
    items: list[Item]


# ---- parsing (pure) ------------------------------------------------------------


def parse_batch(data: Any, *, max_items: int, now: datetime, max_age: timedelta) -> Batch:
    """Validate a batch's shape; structural problems refuse the whole batch (422),
    an item captured out of bounds is only that item's `rejected`."""
    errors: list[dict[str, str]] = []
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "", "message": "expected a JSON object"}])
    for key in data:
        if key not in ("batch_id", "device", "sent_at", "items"):
            errors.append({"field": key, "message": "unknown field"})
    batch_id = data.get("batch_id")
    if not isinstance(batch_id, str) or not BATCH_ID_RE.match(batch_id):
        errors.append({"field": "batch_id", "message": "1-64 characters of A-Z a-z 0-9 . _ : -"})
    device = data.get("device")
    if not isinstance(device, str) or len(device) > 512:
        errors.append({"field": "device", "message": "the device's URL"})
    sent_at = None
    if data.get("sent_at") is not None:
        try:
            sent_at = parse_datetime(data["sent_at"])
        except ValueError as e:
            errors.append({"field": "sent_at", "message": str(e)})
    raw_items = data.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        errors.append({"field": "items", "message": "a non-empty list"})
        raw_items = []
    elif len(raw_items) > max_items:
        raise PayloadTooLarge(f"a batch carries at most {max_items} items")
    items: list[Item] = []
    seen: set[int] = set()
    bounds = (now + FUTURE_SLACK, now - max_age)
    for i, raw in enumerate(raw_items):
        item = _parse_item(i, raw, errors, bounds)
        if item is None:
            continue
        if item.seq in seen:
            errors.append({"field": f"items[{i}].seq", "message": "repeated in this batch"})
        seen.add(item.seq)
        items.append(item)
    if errors:
        raise ValidationFailed(errors[:50])
    return Batch(batch_id, device, sent_at, items)


def _time(value: Any) -> datetime:
    """`parse_datetime` with its common case first: an ISO 8601 string that Python
    reads as it is (3.11 reads a trailing Z); anything else takes the full path,
    which also words the error."""
    if type(value) is str:
        try:
            parsed = _fromisoformat(value)
        except ValueError:
            pass
        else:
            tz = parsed.tzinfo
            if tz is not None and 1970 <= parsed.year <= 2200:
                return parsed if tz is UTC else parsed.astimezone(UTC)
    return parse_datetime(value)


_fromisoformat = datetime.fromisoformat


def _parse_item(
    i: int, raw: Any, errors: list[dict[str, str]], bounds: tuple[datetime, datetime]
) -> Item | None:
    # Exact type checks (`type(x) is int`) also refuse booleans, which are ints.
    if type(raw) is not dict:
        errors.append({"field": f"items[{i}]", "message": "expected an object"})
        return None
    if not ITEM_KEYS.issuperset(raw):
        bad = next(k for k in raw if k not in ITEM_KEYS)
        errors.append({"field": f"items[{i}].{bad}", "message": "unknown field"})
        return None
    seq, duration = raw.get("seq"), raw.get("duration_ms")
    if type(seq) is not int or not 0 <= seq < MAX_SEQ:
        errors.append({"field": f"items[{i}].seq", "message": "an integer from 0 to 2^62"})
        return None
    if type(duration) is not int:
        errors.append({"field": f"items[{i}].duration_ms", "message": "an integer"})
        return None
    try:
        captured = _time(raw.get("captured_at"))
    except ValueError as e:
        errors.append({"field": f"items[{i}].captured_at", "message": str(e)})
        return None
    fp, declared = raw.get("fingerprint"), raw.get("declared")
    if (fp is None) == (declared is None):
        errors.append({"field": f"items[{i}]", "message": "carries either fingerprint or declared"})
        return None
    if fp is not None:
        if type(fp) is not str or len(fp) > MAX_FINGERPRINT_CHARS:
            errors.append({"field": f"items[{i}].fingerprint", "message": "an encoded fingerprint"})
            return None
        item = Item(i, seq, captured, duration, "fingerprint", fingerprint=fp)
    else:
        ok = type(declared) is dict and DECLARED_KEYS.issuperset(declared)
        track = declared.get("track") if ok else None
        isrc = declared.get("isrc") if ok else None
        ok = ok and (track is None or type(track) is str and 0 < len(track) <= 512)
        ok = ok and (isrc is None or type(isrc) is str and bool(ISRC_RE.match(isrc.upper())))
        if not ok or (track is None and isrc is None):
            errors.append(
                {"field": f"items[{i}].declared", "message": '{"track": URI} or {"isrc": ISRC}'}
            )
            return None
        item = Item(
            i,
            seq,
            captured,
            duration,
            "declared",
            declared_track=track,
            declared_isrc=isrc.upper() if isrc else None,
        )
    latest, earliest = bounds
    if not 0 < duration <= MAX_WINDOW_MS:
        item.status, item.error = "rejected", f"duration_ms must be 1 to {MAX_WINDOW_MS}"
    elif captured > latest:
        item.status, item.error = "rejected", "captured in the future"
    elif captured < earliest:
        item.status, item.error = "rejected", "captured too long ago"
    return item


# ---- the endpoint --------------------------------------------------------------


async def verify_device(request: web.Request, ctx: NodeContext, body: bytes) -> Any:
    """The device that signed this request (a row: id, uri, state, state_reason,
    public_key_pem), or a 400/401/403 problem."""
    prefix = f"{ctx.settings.base_url}/devices/"
    found: dict[str, Any] = {}

    async def lookup(key_id: str, refresh: bool) -> PublicKey | None:
        if not key_id.startswith(prefix):
            return None
        async with ctx.db.read_session() as s:
            device = (
                await s.execute(
                    select(
                        Device.id,
                        Device.uri,
                        Device.state,
                        Device.state_reason,
                        Device.public_key_pem,
                    ).where(Device.uri == key_id)
                )
            ).first()
        if device is None:
            return None
        found[key_id] = device
        return PublicKey(key_id=key_id, owner=device.uri, pem=device.public_key_pem)

    verified = await verify_request(
        request.method,
        request.raw_path,
        request.headers,
        body,
        lookup,
        max_skew_seconds=ctx.settings.detection.max_skew_seconds,
        scheme=ctx.settings.node.scheme,
    )
    device = found[verified.key_id]
    if device.state != "active":
        raise DeviceRefused(f"this device is {device.state}: {device.state_reason}".rstrip(": "))
    return device


@API.route(
    "POST",
    "/api/v1/detection/batches",
    name="api.detection_batches",
    summary="A venue device's signed batch of detections; the answer lists each item",
    tag="detection",
)
async def post_batch(call: Call) -> web.Response:
    ctx, request = call.ctx, call.request
    limit = ctx.settings.detection.max_batch_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"a batch is at most {limit} bytes")
    body = await read_at_most(request, limit)
    if len(body) > limit:
        raise PayloadTooLarge(f"a batch is at most {limit} bytes")
    device = await verify_device(request, ctx, body)
    try:
        # orjson: a thousand items read (and answered, below) in a third of
        # the standard library's time, on the event loop that the other
        # batches and the group writer share. It refuses what `json` lets
        # through beyond RFC 8259 (NaN, Infinity) as not valid JSON.
        data = orjson.loads(body)
    except ValueError:
        raise BadRequest("the body is not valid JSON") from None
    s = ctx.settings.detection
    now = utcnow()
    batch = parse_batch(
        data,
        max_items=s.max_batch_items,
        now=now,
        max_age=timedelta(hours=s.max_item_age_hours),
    )
    if batch.device != device.uri:
        raise ValidationFailed([{"field": "device", "message": "is not the signing device"}])
    answer = await ingest(ctx, device.id, batch, fed=request.config_dict.get(FEDERATION))
    return web.Response(body=orjson.dumps(answer), content_type="application/json", charset="utf-8")


# ---- ingestion -----------------------------------------------------------------


async def ingest(
    ctx: NodeContext, device_id: int, batch: Batch, *, fed: Federation | None = None
) -> dict[str, Any]:
    """Match the batch's items, then record them; safe to call again with the same batch.
    With `fed` (federation's client) and `detection.peer_match`, windows that no
    local track matches are asked of peer nodes (detection.peers)."""
    windows = [i for i in batch.items if i.kind == "fingerprint" and i.status != "rejected"]
    if windows:
        async with ctx.db.read_session() as s:
            seen = await _seen_seqs(s, device_id, [i.seq for i in windows])
        # Items sent before are answered from what was stored: no need to match them again.
        windows = [i for i in windows if i.seq not in seen]
        await _match_windows(ctx, windows)
        if fed is not None and ctx.settings.detection.peer_match:
            missed = [i for i in windows if i.status != "rejected" and i.track_id is None]
            if missed:
                await peers.ask(ctx, fed, missed)
    listener = await _node_listener(ctx)
    writer = ctx.extras.get("detection.writer")
    if writer is None:
        writer = ctx.extras["detection.writer"] = GroupWriter(ctx.db)
    live = [i for i in batch.items if i.status != "rejected"]
    for attempt in range(2):
        # What needs no write lock is done first, on a read session: declared
        # tracks resolved, plays' candidates built, times turned into what the
        # database stores. The writer is the one thing batches queue for.
        async with ctx.db.read_session() as s:
            tracks = await _tracks(s, live) if live else {}
        detections = _detections(live, tracks, db_time(ctx.db.dialect))
        durations = {tid: t[3] for tid, t in tracks.items()}
        try:
            # With other devices' batches that wait for the writer, in one
            # transaction (detection.group_commit). A batch that races itself
            # (two uploads at once on PostgreSQL) fails its insert once; the
            # writer's retry finds the first one's rows and answers duplicate.
            write = partial(
                _record,
                ctx,
                device_id=device_id,
                batch=batch,
                listener=listener,
                detections=detections,
                durations=durations,
            )
            recorded = await writer.run(write, len(batch.items))
        except IntegrityError:
            # A track the batch named was deleted between the lookup and the
            # write: look the tracks up again.
            if attempt:
                raise
            continue
        return _answer(ctx, batch, tracks, recorded)
    raise AssertionError("unreachable")


async def _match_windows(ctx: NodeContext, fps: list[Item]) -> None:
    """Match captured windows against the index (CPU work, off the event loop, in one go).
    Declared tracks are resolved later, with a query or two for the batch (`_tracks`)."""
    if not fps:
        return
    from .index import snapshot

    async with ctx.db.read_session() as s:
        postings = await snapshot(s)
    results = await asyncio.to_thread(_vote_all, postings, [i.fingerprint or "" for i in fps])
    for item, found in zip(fps, results, strict=True):
        if found is None:
            item.status, item.error = "rejected", "not a valid fingerprint"
        elif found is not False:
            item.track_id, item.offset_ms, item.confidence = found


# (track uri, artist uri, local, duration ms) by track id
TrackInfo = tuple[str, str | None, bool, int | None]
CHUNK = 500  # values per IN (...), well under every database's parameter limit


async def _tracks(session: AsyncSession, items: list[Item]) -> dict[int, TrackInfo]:
    """Resolve declared items (by URI, else ISRC: the local track first) and look up
    the tracks windows matched, in a few queries for the whole batch; sets each
    declared item's track_id and returns what the plays need of every track."""
    from node.models import Actor

    uris = {i.declared_track for i in items if i.declared_track}
    isrcs = {i.declared_isrc for i in items if i.declared_isrc and not i.declared_track}
    ids = {i.track_id for i in items if i.kind == "fingerprint" and i.track_id is not None}
    cols = (Track.id, Track.uri, Track.isrc, Track.local, Actor.uri, Track.duration_ms)
    base = select(*cols).outerjoin(Actor, Actor.id == Track.artist_id)
    info: dict[int, TrackInfo] = {}
    by_uri: dict[str, int] = {}
    by_isrc: dict[str, int] = {}
    for column, wanted in ((Track.uri, uris), (Track.isrc, isrcs), (Track.id, ids)):
        values = sorted(wanted)
        for k in range(0, len(values), CHUNK):
            stmt = base.where(column.in_(values[k : k + CHUNK]))
            if column is Track.isrc:
                stmt = stmt.order_by(Track.local.desc(), Track.id)
            for tid, uri, isrc, local, artist_uri, ms in (await session.execute(stmt)).all():
                info[tid] = (uri, artist_uri, local, ms)
                by_uri[uri] = tid
                if isrc and column is Track.isrc:
                    by_isrc.setdefault(isrc, tid)
    for item in items:
        if item.kind != "declared":
            continue
        if item.declared_track:
            item.track_id = by_uri.get(item.declared_track)
        else:
            item.track_id = by_isrc.get(item.declared_isrc or "")
        if item.track_id is not None:
            item.confidence = 1.0
    return info


def _vote_all(postings: Any, encoded: list[str]) -> list[tuple[int, int, float] | bool | None]:
    """For each encoded fingerprint: (track id, offset ms, confidence) when the
    index recognises it, False when not, None when it cannot be decoded."""
    from .fingerprint import FingerprintError, decode
    from .matching import best_candidate

    out: list[tuple[int, int, float] | bool | None] = []
    for text in encoded:
        try:
            fp = decode(text)
        except (FingerprintError, ValueError):
            out.append(None)
            continue
        cand = best_candidate(postings, fp) if len(fp) else None
        if cand is None or not cand.accepted:
            out.append(False)
        else:
            out.append((int(cand.track_id), int(cand.offset_ms), float(cand.confidence)))
    return out


async def _node_listener(ctx: NodeContext) -> tuple[int, str]:
    """The node's own actor (id, URI): the listener of record for a room."""
    cached = ctx.extras.get("detection.listener")
    if cached is None:
        from federation.actors import ensure_node_actor

        actor = await ensure_node_actor(ctx)
        cached = ctx.extras["detection.listener"] = (actor.id, actor.uri)
    return cached


def _detections(
    live: list[Item], tracks: dict[int, TrackInfo], to_db: Callable[[datetime], Any]
) -> list[Detection]:
    """The items that named a known track, as plays' candidates; the others
    are marked unmatched. Every live item gets its time as the database stores it."""
    out = []
    for item in live:
        item.captured_db = to_db(item.captured_at)
        found = tracks.get(item.track_id) if item.track_id is not None else None
        if found is None:
            item.status, item.track_id = "unmatched", None
            continue
        item.status = "matched"
        uri, artist_uri, local, _ms = found
        out.append(
            Detection(
                item.index,
                item.track_id,
                uri,
                artist_uri,
                local,
                item.captured_at,
                item.duration_ms,
                "dj" if item.kind == "declared" else "venue",
                item.captured_db,
            )
        )
    return out


@dataclass(slots=True)
class Recorded:
    """What the write decided, for the answer: items sent before (with their
    first answer), the play of each matched item, holds by play id."""

    known: dict[int, dict[str, Any]]
    plays: dict[int, VenuePlay]
    held: dict[int | None, str]
    received_at: datetime


async def _record(
    ctx: NodeContext,
    session: AsyncSession,
    device_id: int,
    batch: Batch,
    listener: tuple[int, str],
    detections: list[Detection],
    durations: dict[int, int | None],
) -> Recorded:
    """The write: items, plays, holds and the device, for the whole batch at once.

    Everything per item is plain tuples and one insert per table: no ORM
    object per item or play (the ingest target is tens of thousands a second).
    It runs holding the database's writer, so it does only what must see
    the device's stored items and plays; the caller prepared the rest."""
    device = await _device_for_write(ctx, session, device_id)
    now = utcnow()
    known = await _known_items(session, device_id, [i.seq for i in batch.items])
    fresh = [i for i in batch.items if i.seq not in known] if known else batch.items
    if known:
        detections = [d for d in detections if batch.items[d.index].seq not in known]
    assigned, new, existing = await assign_plays(
        ctx,
        session,
        device_id=device.id,
        venue_id=device.venue_id,
        listener=listener,
        detections=detections,
    )
    to_db = db_time(ctx.db.dialect)
    await insert_many(
        session,
        DetectionItem.__table__,
        ITEM_COLUMNS,
        [
            (
                device.id,
                i.seq,
                batch.batch_id,
                i.captured_db if i.captured_db is not None else to_db(i.captured_at),
                i.duration_ms,
                i.kind,
                i.status,
                i.error,
                i.track_id,
                assigned[i.index].id if i.status == "matched" else None,
                i.offset_ms,
                i.confidence,
            )
            for i in fresh
        ],
    )
    batch_known = await fetch_all(
        session,
        "SELECT id FROM detection_batches WHERE device_id = ? AND batch_id = ?",
        (device.id, batch.batch_id),
    )
    matched = len(detections)
    windows = [i for i in fresh if i.kind == "fingerprint" and i.status != "rejected"]
    if not batch_known:
        await insert_many(
            session,
            DetectionBatch.__table__,
            BATCH_COLUMNS,
            [
                (
                    device.id,
                    batch.batch_id,
                    to_db(batch.sent_at) if batch.sent_at else None,
                    to_db(now),
                    len(batch.items),
                    matched,
                )
            ],
        )
    drift = fraud.drift_flag_reason(
        device.history,
        len(windows),
        sum(1 for i in windows if i.status == "matched"),
        ctx.settings.detection.match_rate_drift,
    )
    grown = [p for p in existing if p.changed]
    flags = await fraud.check(ctx, session, device.id, new, grown, existing, drift, durations)
    await _touch(ctx, session, device, now, len(fresh), matched, windows)
    await session.flush()  # what the fraud rules changed, before the next batch reads
    return Recorded(known, assigned, {f.play_id: f.reason for f in flags}, now)


def _answer(
    ctx: NodeContext, batch: Batch, tracks: dict[int, TrackInfo], rec: Recorded
) -> dict[str, Any]:
    """The answer, item by item, built once the batch is committed."""
    known, assigned, held = rec.known, rec.plays, rec.held
    prefix = ctx.urls.obj("plays", "")
    answers: list[dict[str, Any]] = []
    add = answers.append
    for item in batch.items:
        if known and item.seq in known:
            add(known[item.seq] | {"seq": item.seq, "status": "duplicate"})
        elif item.status == "matched":
            play = assigned[item.index]
            a = {
                "seq": item.seq,
                "status": "matched",
                "track": tracks[item.track_id][0],  # type: ignore[index]
                "play": prefix + play.uuid,
                "confidence": round(item.confidence or 0.0, 3),
            }
            if held and play.id in held:
                a["held"] = held[play.id]
            add(a)
        elif item.error:
            add({"seq": item.seq, "status": item.status, "error": item.error})
        else:
            add({"seq": item.seq, "status": item.status})
    return {
        "batch_id": batch.batch_id,
        "device": batch.device,
        "received_at": iso(rec.received_at),
        "items": answers,
    }


async def _known_items(
    session: AsyncSession, device_id: int, seqs: list[int]
) -> dict[int, dict[str, Any]]:
    """Items this device sent before, with what they were answered."""
    known: dict[int, dict[str, Any]] = {}
    if not seqs:
        return known
    # One range read finds which of the batch's numbers were seen before
    # (usually none); only those are read in full.
    seen = sorted(await _seen_seqs(session, device_id, seqs))
    for start in range(0, len(seen), 500):
        chunk = seen[start : start + 500]
        rows = await session.execute(
            select(DetectionItem.seq, DetectionItem.status, Track.uri, Play.uri)
            .outerjoin(Track, Track.id == DetectionItem.track_id)
            .outerjoin(Play, Play.id == DetectionItem.play_id)
            .where(DetectionItem.device_id == device_id, DetectionItem.seq.in_(chunk))
        )
        for seq, status, track_uri, play_uri in rows.all():
            first: dict[str, Any] = {"first": status}
            if track_uri:
                first["track"] = track_uri
            if play_uri:
                first["play"] = play_uri
            known[seq] = first
    return known


async def _seen_seqs(session: AsyncSession, device_id: int, seqs: list[int]) -> set[int]:
    """Which of `seqs` this device sent before (one range read)."""
    if not seqs:
        return set()
    wanted = set(seqs)
    rows = await fetch_all(
        session,
        "SELECT seq FROM detection_items WHERE device_id = ? AND seq BETWEEN ? AND ?",
        (device_id, min(seqs), max(seqs)),
    )
    return {seq for (seq,) in rows if seq in wanted}


@dataclass(slots=True)
class _DeviceRow:
    id: int
    venue_id: int
    history: list[dict[str, Any]]


async def _device_for_write(ctx: NodeContext, session: AsyncSession, device_id: int) -> _DeviceRow:
    """What the write needs of the device, read in one round trip (locked on
    PostgreSQL, where batches of one device may be written at once)."""
    lock = "" if ctx.db.is_sqlite else " FOR UPDATE"
    rows = await fetch_all(
        session,
        f"SELECT id, venue_id, history FROM detection_devices WHERE id = ?{lock}",
        (device_id,),
    )
    if not rows:
        raise DeviceRefused("this device was deleted")
    device_id, venue_id, history = rows[0]
    if isinstance(history, str | bytes):
        history = json.loads(history)
    return _DeviceRow(device_id, venue_id, list(history or []))


async def _touch(
    ctx: NodeContext,
    session: AsyncSession,
    device: _DeviceRow,
    now: datetime,
    items: int,
    matched: int,
    windows: list[Item],
) -> None:
    """Last seen, counters, and today's line of the match-rate history (30 days
    kept). The history counts captured windows only: declared tracks always
    match. Counters are added in SQL, so they hold whatever else this
    transaction changed on the device."""
    history = device.history
    if windows:
        items_w = len(windows)
        matched_w = sum(1 for i in windows if i.status == "matched")
        day = now.astimezone(UTC).date().isoformat()
        history = [dict(h) for h in history]
        if history and history[-1].get("day") == day:
            history[-1]["items"] += items_w
            history[-1]["matched"] += matched_w
        else:
            history.append({"day": day, "items": items_w, "matched": matched_w})
        history = history[-30:]
    await execute_many(
        session,
        "UPDATE detection_devices SET last_seen_at = ?, items_total = items_total + ?,"
        " items_matched = items_matched + ?, history = ? WHERE id = ?",
        [(db_time(ctx.db.dialect)(now), items, matched, json.dumps(history), device.id)],
    )
