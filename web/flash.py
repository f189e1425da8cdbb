"""One-shot notices after a form post ("Following @jay@queens.example").

A form answers with a redirect (post/redirect/get), so what it wants to say
travels to the next page in a short-lived cookie: the notice's kind and text,
signed with the node's secret key so that nobody can make the site say
something it did not. `render()` shows it once and deletes the cookie.

Responses that set or delete this cookie are never cached (web.cache keeps
no response with Set-Cookie), and only signed-in actions set it, so a notice
cannot end up in the anonymous page cache.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from aiohttp import web

from node.appkeys import CTX

FLASH_COOKIE = "nycmg_flash"
MAX_TEXT = 300
KINDS = ("ok", "info", "error")
_TAKEN = web.RequestKey("web_flash_taken", bool)


@dataclass(frozen=True)
class Flash:
    kind: str  # ok | info | error
    text: str


def _sign(request: web.Request, payload: bytes) -> str:
    key = request.config_dict[CTX].settings.node.secret_key.encode()
    return hmac.new(key, b"flash:" + payload, hashlib.sha256).hexdigest()[:32]


def set_flash(request: web.Request, response: web.StreamResponse, kind: str, text: str) -> None:
    """Have the next page say `text` (a plain string; the template escapes it)."""
    kind = kind if kind in KINDS else "info"
    raw = json.dumps({"k": kind, "t": text[:MAX_TEXT]}, ensure_ascii=True).encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    secure = request.config_dict[CTX].settings.node.scheme == "https"
    response.set_cookie(
        FLASH_COOKIE,
        f"{payload}.{_sign(request, payload.encode())}",
        max_age=120,
        httponly=True,
        samesite="Lax",
        secure=secure,
        path="/",
    )


def take_flash(request: web.Request) -> Flash | None:
    """The notice this request carries, if it is genuine; `apply` then deletes it."""
    value = request.cookies.get(FLASH_COOKIE)
    if not value:
        return None
    request[_TAKEN] = True
    payload, _, signature = value.partition(".")
    if len(value) > 1200 or not hmac.compare_digest(signature, _sign(request, payload.encode())):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        kind, text = data["k"], data["t"]
    except (ValueError, KeyError, TypeError):
        return None
    if kind not in KINDS or not isinstance(text, str):
        return None
    return Flash(kind, text[:MAX_TEXT])


def apply(request: web.Request, response: web.StreamResponse) -> None:
    """Delete the notice once a page has shown it."""
    if request.get(_TAKEN) and FLASH_COOKIE not in response.cookies:
        response.del_cookie(FLASH_COOKIE, path="/")
