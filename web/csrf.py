"""CSRF protection for every HTML form.

Two kinds of token, because a form is posted either before or after login:

- Signed-in: `node.auth.csrf_token(secret_key, session_secret)`, bound to the
  login session (the same token the JS sends as X-CSRF-Token to the API).
- Anonymous (sign-in, sign-up): a double-submit cookie. A random
  `nycmg_csrf` cookie is set with the form and the hidden field carries an
  HMAC of it under the node's secret key, so a cookie planted by a sibling
  subdomain cannot be paired with a field the attacker made up
  (OWASP's "signed double-submit cookie").

Either valid token is accepted on any form: a visitor who signed in in
another tab can still post the anonymous form they had open.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from aiohttp import web

from node.appkeys import CTX, SESSION_SECRET
from node.auth import check_csrf, csrf_token
from node.errors import Forbidden

CSRF_COOKIE = "nycmg_csrf"
FIELD = "csrf_token"
_NONCE = web.RequestKey("web_csrf_nonce", str)


def _secret(request: web.Request) -> str:
    return request.config_dict[CTX].settings.node.secret_key


def _sign(secret_key: str, nonce: str) -> str:
    return hmac.new(secret_key.encode(), b"anon-csrf:" + nonce.encode(), hashlib.sha256).hexdigest()


def _valid_nonce(value: str | None) -> bool:
    return (
        bool(value)
        and 20 <= len(value) <= 100
        and value.replace("-", "").replace("_", "").isalnum()
    )


def form_token(request: web.Request) -> str:
    """The token to put in a form rendered for this request.

    For anonymous visitors this may mint a cookie nonce; `apply_cookie` then
    sets it on the response.
    """
    session_secret = request.get(SESSION_SECRET)
    if session_secret:
        return csrf_token(_secret(request), session_secret)
    nonce = request.cookies.get(CSRF_COOKIE)
    if not _valid_nonce(nonce):
        nonce = request.get(_NONCE) or secrets.token_urlsafe(24)
        request[_NONCE] = nonce
    return _sign(_secret(request), nonce)


def apply_cookie(request: web.Request, response: web.StreamResponse) -> None:
    """Set the double-submit cookie if this request minted a new nonce."""
    nonce = request.get(_NONCE)
    if nonce:
        secure = request.config_dict[CTX].settings.node.scheme == "https"
        response.set_cookie(
            CSRF_COOKIE,
            nonce,
            httponly=True,
            samesite="Lax",
            secure=secure,
            path="/",
            max_age=7 * 86400,
        )


def is_valid(request: web.Request, presented: str | None) -> bool:
    """True when `presented` is this visitor's session token or matches their CSRF cookie."""
    if not presented or len(presented) > 200:
        return False
    key = _secret(request)
    session_secret = request.get(SESSION_SECRET)
    if session_secret and check_csrf(key, session_secret, presented):
        return True
    nonce = request.cookies.get(CSRF_COOKIE)
    return _valid_nonce(nonce) and hmac.compare_digest(_sign(key, nonce), presented)


def require(request: web.Request, form: dict[str, str]) -> None:
    """Refuse a form post without a valid token: a 403 page, nothing changed."""
    if not is_valid(request, form.get(FIELD)):
        raise Forbidden(
            "This form has expired or did not come from this site. Go back, reload the page and try again."
        )
