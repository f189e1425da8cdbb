"""What WHIP and WHEP share: problem responses, SDP bodies, ICE `Link` headers, trickle PATCH.

RFC 9725 (WHIP) and draft-ietf-wish-whep answer the same way; errors are
RFC 9457 problem+json built here (not raised), so headers such as
`Retry-After` survive for every client, browser or OBS.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiortc import RTCPeerConnection
from aiortc.sdp import candidate_from_sdp

from node.appkeys import CTX
from node.errors import PROBLEM_BASE
from node.web_helpers import read_at_most

from .hub import LiveHub
from .sdp import MAX_SDP_BYTES, link_headers

LIVE: web.AppKey[LiveHub] = web.AppKey("live_hub")

SDP = "application/sdp"
TRICKLE = "application/trickle-ice-sdpfrag"
EXPOSE = "Location, ETag, Link, Accept-Patch, Retry-After"


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> web.Response:
    slug = title.lower().replace(" ", "-")
    return web.json_response(
        {"type": PROBLEM_BASE + "live-" + slug, "title": title, "status": status, "detail": detail},
        status=status,
        content_type="application/problem+json",
        headers=headers or {},
    )


def hub_of(request: web.Request) -> LiveHub:
    return request.config_dict[LIVE]


def ice_links(request: web.Request) -> list[str]:
    return link_headers(hub_of(request).ice_servers)


def with_links(resp: web.StreamResponse, request: web.Request) -> web.StreamResponse:
    for link in ice_links(request):
        resp.headers.add("Link", link)
    resp.headers["Access-Control-Expose-Headers"] = EXPOSE
    return resp


async def read_sdp(request: web.Request) -> str | web.Response:
    """The body as SDP text, or the problem response to send instead."""
    if request.content_type != SDP:
        return problem(415, "Unsupported Media Type", f"send the offer as {SDP}")
    if request.content_length is not None and request.content_length > MAX_SDP_BYTES:
        return problem(413, "Payload Too Large", "the offer is too large")
    try:
        body = await read_at_most(request, MAX_SDP_BYTES)
    except Exception:  # noqa: BLE001 - a broken upload is a bad request
        return problem(400, "Bad Request", "could not read the offer")
    if len(body) > MAX_SDP_BYTES:
        return problem(413, "Payload Too Large", "the offer is too large")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return problem(400, "Bad Request", "the offer is not UTF-8 text")


def sdp_created(request: web.Request, answer: str, location: str, etag: str) -> web.Response:
    resp = web.Response(status=201, text=answer, content_type=SDP)
    resp.headers["Location"] = location
    resp.headers["ETag"] = etag
    resp.headers["Accept-Patch"] = TRICKLE
    with_links(resp, request)
    return resp


def options(request: web.Request, methods: str) -> web.Response:
    resp = web.Response(status=204)
    resp.headers["Allow"] = methods
    resp.headers["Accept-Post"] = SDP
    resp.headers["Access-Control-Allow-Methods"] = methods
    resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, If-Match"
    return with_links(resp, request)


async def trickle(request: web.Request, pc: RTCPeerConnection, etag: str) -> web.Response:
    """RFC 9725 4.3: trickle candidates are accepted (204); ICE restarts are not (422)."""
    if request.content_type != TRICKLE:
        return problem(415, "Unsupported Media Type", f"send candidates as {TRICKLE}")
    match = request.headers.get("If-Match")
    if match is None:
        return problem(428, "Precondition Required", "send If-Match with the session's ETag")
    if match != "*" and match != etag:
        return problem(412, "Precondition Failed", "the ETag does not match this session")
    body = (await read_at_most(request, MAX_SDP_BYTES)).decode("utf-8", "replace")
    if len(body) > MAX_SDP_BYTES:
        return problem(413, "Payload Too Large", "the fragment is too large")
    lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
    remote = pc.remoteDescription.sdp if pc.remoteDescription else ""
    for ln in lines:
        if ln.startswith("a=ice-ufrag:") and ln not in remote:
            return problem(422, "Unprocessable Content", "ICE restarts are not supported")
    mid = None
    for ln in lines:
        if ln.startswith("a=mid:"):
            mid = ln[6:]
        elif ln.startswith("a=candidate:"):
            try:
                cand = candidate_from_sdp(ln[2:].split(":", 1)[1])
            except Exception:  # noqa: BLE001 - a bad line is the client's problem
                return problem(400, "Bad Request", "a candidate line could not be read")
            if cand.ip.endswith(".local"):
                continue  # mDNS names: see sdp.strip_mdns
            cand.sdpMid = mid or _first_mid(pc)
            await pc.addIceCandidate(cand)
    return web.Response(status=204)


def _first_mid(pc: RTCPeerConnection) -> str | None:
    for t in pc.getTransceivers():
        if t.mid is not None:
            return t.mid
    return None


def base_url(request: web.Request) -> str:
    ctx: Any = request.config_dict[CTX]
    return ctx.settings.base_url
