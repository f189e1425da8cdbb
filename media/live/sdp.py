"""SDP offers from WHIP/WHEP clients: checks, mDNS candidates, ICE servers.

Pure functions, so conformance tests can feed them offers directly.
RFC 9725 (WHIP) 4.2 and 4.6; draft-ietf-wish-whep.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from aiortc import RTCConfiguration, RTCIceServer

MAX_SDP_BYTES = 64 * 1024


class BadOffer(ValueError):
    """The offer cannot be used; the message says why (sent back as a 400)."""


@dataclass(frozen=True)
class OfferInfo:
    audio: bool
    video: bool
    video_codecs: tuple[str, ...]


def check_offer(sdp: str, *, want: str) -> OfferInfo:
    """Validate an offer; `want` is "send" (WHIP: the client sends) or "recv" (WHEP).

    Audio is required and must offer Opus; video is optional (VP8 or H.264).
    """
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise BadOffer("the offer is too large")
    lines = [ln.strip() for ln in sdp.replace("\r\n", "\n").split("\n") if ln.strip()]
    if not lines or lines[0] != "v=0":
        raise BadOffer("not an SDP offer (it must start with v=0)")
    sections: list[list[str]] = []
    for ln in lines[1:]:
        if ln.startswith("m="):
            sections.append([ln])
        elif sections:
            sections[-1].append(ln)
    audio = video = False
    video_codecs: list[str] = []
    for sec in sections:
        kind = sec[0][2:].split(" ", 1)[0]
        codecs = {
            m.group(1).lower()
            for ln in sec
            if (m := re.match(r"a=rtpmap:\d+ ([A-Za-z0-9_-]+)/", ln)) is not None
        }
        direction = next(
            (
                ln[2:]
                for ln in sec
                if ln in ("a=sendonly", "a=recvonly", "a=sendrecv", "a=inactive")
            ),
            "sendrecv",
        )
        allowed = ("sendonly", "sendrecv") if want == "send" else ("recvonly", "sendrecv")
        if kind == "audio":
            if "opus" not in codecs:
                raise BadOffer("the audio section must offer Opus")
            if direction not in allowed:
                raise BadOffer(f"the audio section is {direction}")
            audio = True
        elif kind == "video":
            usable = sorted(codecs & {"vp8", "h264"})
            if usable and direction in allowed:
                video = True
                video_codecs.extend(usable)
    if not audio:
        raise BadOffer("the offer has no audio section")
    if not any(ln.startswith("a=fingerprint:") for ln in lines):
        raise BadOffer("the offer has no DTLS fingerprint")
    return OfferInfo(audio=audio, video=video, video_codecs=tuple(video_codecs))


def strip_mdns(sdp: str) -> str:
    """Drop `.local` (mDNS) host candidates that this server cannot resolve.

    Browsers hide their addresses behind mDNS names; without those candidates
    ICE still connects: the browser's checks reach our host candidates and we
    learn its address as a peer-reflexive candidate (RFC 8445 7.3.1.3).
    """
    out = []
    for ln in sdp.split("\n"):
        s = ln.strip()
        if s.startswith("a=candidate:") and len(s.split()) > 4 and s.split()[4].endswith(".local"):
            continue
        out.append(ln)
    return "\n".join(out)


@dataclass(frozen=True)
class IceServer:
    url: str
    username: str | None = None
    credential: str | None = None


def parse_ice_servers(values: list[str]) -> list[IceServer]:
    """`stun:host:port` or `turn:user:pass@host:port[?transport=udp]` entries."""
    servers = []
    for v in values:
        scheme, _, rest = v.partition(":")
        if scheme not in ("stun", "stuns", "turn", "turns") or not rest:
            continue
        if "@" in rest:
            creds, _, host = rest.rpartition("@")
            user, _, password = creds.partition(":")
            servers.append(IceServer(f"{scheme}:{host}", unquote(user), unquote(password)))
        else:
            servers.append(IceServer(f"{scheme}:{rest}"))
    return servers


def link_headers(servers: list[IceServer]) -> list[str]:
    """RFC 9725 4.6: one `Link: <url>; rel="ice-server"` per server."""
    out = []
    for s in servers:
        value = f'<{s.url}>; rel="ice-server"'
        if s.username is not None:
            value += f'; username="{s.username}"; credential="{s.credential}"; credential-type="password"'
        out.append(value)
    return out


def rtc_configuration(servers: list[IceServer]) -> RTCConfiguration:
    # aiortc adds Google's public STUN server when given None: always pass a list.
    return RTCConfiguration(
        iceServers=[RTCIceServer(s.url, s.username, s.credential) for s in servers]
    )
