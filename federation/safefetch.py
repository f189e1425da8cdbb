"""Outbound HTTP that remote input cannot turn against us (SSRF).

Every URL we fetch or post to comes, one way or another, from a remote
server: actor ids, key ids, inboxes, redirects. This module owns the rules
for them: http(s) only, no userinfo, and no loopback, private, link-local,
multicast, unspecified or CGNAT addresses unless the node's config allows
them (tests and the demo do). Bodies are capped and every call has a total
deadline.

The address check happens inside aiohttp's resolver (`_GuardedResolver`),
so the addresses we check are the addresses we connect to: a name that
resolves to a public address for a pre-check and to 127.0.0.1 a moment
later (DNS rebinding) is still refused. IP literals never reach a resolver
in aiohttp, so they are checked before each request, redirects included.

See the OWASP SSRF cheat sheet:
https://cheatsheetseries.owasp.org/cheatsheets/Server_Side_Request_Forgery_Prevention_Cheat_Sheet.html
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from collections.abc import Collection, Mapping
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from federation.signatures import AS2_ACCEPT, sign_request
from node.errors import NodeError

__all__ = [
    "JSON_TYPES",
    "FetchError",
    "SafeFetcher",
    "UnsafeURL",
    "check_url",
    "check_url_async",
    "is_public_address",
]

JSON_TYPES = frozenset(
    {
        "application/activity+json",
        "application/ld+json",
        "application/json",
        "application/jrd+json",
    }
)
MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
POST_RESPONSE_BYTES = 64 * 1024
Signer = tuple[str, str]  # (key_id, private key PEM)


class UnsafeURL(NodeError, ValueError):
    """A URL we refuse to fetch: wrong scheme, userinfo, or a non-public address."""

    status = 400
    type_slug = "unsafe-url"
    title = "Refusing to fetch this URL"


class FetchError(NodeError):
    """The remote server failed us; `remote_status` is its HTTP status if it answered."""

    status = 502
    type_slug = "fetch-failed"
    title = "Fetching a remote resource failed"

    def __init__(self, detail: str = "", remote_status: int | None = None) -> None:
        super().__init__(detail, remote_status=remote_status)
        self.remote_status = remote_status


# --------------------------------------------------------------------------- address rules

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for globally routable unicast addresses only.

    IPv6 forms that embed an IPv4 address (v4-mapped ::ffff:a.b.c.d, NAT64
    64:ff9b::/96 (RFC 6052), 6to4 2002::/16 (RFC 3056)) are judged by that
    IPv4 address, so ::ffff:127.0.0.1 cannot sneak past.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
        if ip.is_site_local:
            return False
    return not (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
    )


def _parse(url: str | URL, allow_private: bool, allow_hosts: Collection[str]) -> URL:
    """The checks that need no DNS: scheme, userinfo, host, IP literals."""
    try:
        u = url if isinstance(url, URL) else URL(url)
        host = u.host
        u.port  # noqa: B018 - raises on a bad port
    except (ValueError, TypeError) as e:
        raise UnsafeURL(f"unparseable URL: {url!s:.200}") from e
    if u.scheme not in ("http", "https"):
        raise UnsafeURL(f"only http and https URLs are fetched, not {u.scheme or 'none'!r}")
    if u.raw_user is not None or u.raw_password is not None:
        raise UnsafeURL("URLs with credentials are refused")
    if not host:
        raise UnsafeURL("URL has no host")
    if allow_private or host.lower().rstrip(".") in allow_hosts:
        return u
    try:
        literal: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(
            host.split("%", 1)[0]
        )
    except ValueError:
        literal = None
        if host.replace(".", "").isdigit():
            # 2130706433 or 127.1 resolve to 127.0.0.1 via inet_aton.
            raise UnsafeURL(f"non-canonical IPv4 address {host!r}") from None
    if literal is not None and not is_public_address(literal):
        raise UnsafeURL(f"{host} is not a public address")
    return u


def _check_addresses(host: str, addresses: list[str]) -> None:
    if not addresses:
        raise UnsafeURL(f"{host} does not resolve")
    # All of them, not any: a name that also resolves to 10.0.0.1 is refused.
    bad = [a for a in addresses if not is_public_address(a)]
    if bad:
        raise UnsafeURL(f"{host} resolves to a non-public address ({bad[0]})")


def check_url(url: str, *, allow_private: bool, allow_hosts: Collection[str] = ()) -> None:
    """Raise `UnsafeURL` unless `url` is safe to fetch (blocking DNS; see
    `check_url_async`). `allow_hosts` names hosts exempt from the address rules."""
    u = _parse(url, allow_private, _lower(allow_hosts))
    host = u.raw_host or ""
    if allow_private or host.lower().rstrip(".") in _lower(allow_hosts) or _is_literal(host):
        return
    try:
        infos = socket.getaddrinfo(host, u.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise UnsafeURL(f"{host} does not resolve") from e
    _check_addresses(host, [str(info[4][0]) for info in infos])


async def check_url_async(
    url: str, *, allow_private: bool, allow_hosts: Collection[str] = ()
) -> None:
    """`check_url` with the event loop's resolver. Note that `SafeFetcher`
    checks again at connection time; this is for validating input early."""
    u = _parse(url, allow_private, _lower(allow_hosts))
    host = u.raw_host or ""
    if allow_private or host.lower().rstrip(".") in _lower(allow_hosts) or _is_literal(host):
        return
    try:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, u.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise UnsafeURL(f"{host} does not resolve") from e
    _check_addresses(host, [str(info[4][0]) for info in infos])


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _lower(hosts: Collection[str]) -> frozenset[str]:
    return frozenset(h.lower().rstrip(".") for h in hosts)


class _GuardedResolver(AbstractResolver):
    """Resolves through `inner` and refuses hosts with any non-public address,
    so the connection can only go to addresses that passed the check."""

    def __init__(
        self, inner: AbstractResolver, allow_private: bool, allow_hosts: frozenset[str]
    ) -> None:
        self._inner = inner
        self._allow_private = allow_private
        self._allow_hosts = allow_hosts

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not self._allow_private and host.lower().rstrip(".") not in self._allow_hosts:
            _check_addresses(host, [r["host"] for r in results])
        return results

    async def close(self) -> None:
        await self._inner.close()


# --------------------------------------------------------------------------- the fetcher


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int, *, truncate: bool) -> bytes:
    """Read at most `max_bytes` (after decompression); more is an error unless `truncate`."""
    if not truncate and resp.content_length is not None and resp.content_length > max_bytes:
        raise FetchError(f"response is {resp.content_length} bytes, over {max_bytes}")
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        buf += chunk
        if len(buf) > max_bytes:
            if truncate:
                return bytes(buf[:max_bytes])
            raise FetchError(f"response is over {max_bytes} bytes")
    return bytes(buf)


class SafeFetcher:
    """The node's one outbound HTTP client for federation.

    Owns one `aiohttp.ClientSession`, created on first use (it needs a running
    loop); the app creates the fetcher in a cleanup_ctx and calls `close()`.
    No cookies, no proxy from the environment (a proxy would do its own DNS
    and bypass the address check). `resolver` is an injection point for
    tests; `allow_hosts` exempts named hosts from the address rules (a peer
    on the LAN, or a test server).
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        allow_hosts: Collection[str] = (),
        user_agent: str = "nycmg",
        resolver: AbstractResolver | None = None,
        max_bytes: int = 1_000_000,
        timeout: float = 10.0,
    ) -> None:
        self.allow_private = allow_private
        self.allow_hosts = _lower(allow_hosts)
        self.user_agent = user_agent
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._inner_resolver = resolver
        self._resolver: _GuardedResolver | None = None
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._resolver = _GuardedResolver(
                self._inner_resolver or DefaultResolver(), self.allow_private, self.allow_hosts
            )
            connector = aiohttp.TCPConnector(
                resolver=self._resolver, limit=100, limit_per_host=8, ttl_dns_cache=30
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": self.user_agent},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None

    def _check(self, url: str | URL) -> URL:
        return _parse(url, self.allow_private, self.allow_hosts)

    async def get_json(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        sign: Signer | None = None,
        max_bytes: int | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """GET a JSON object (ActivityPub, JRD or plain JSON).

        Follows at most 3 redirects itself, checking and (with `sign`)
        re-signing each hop, since the signature covers host and path.
        Raises `UnsafeURL`, or `FetchError` for anything else: non-2xx,
        not JSON, not an object, too big, too slow, connection failure.
        """
        limit = self.max_bytes if max_bytes is None else max_bytes
        session = self._get_session()
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                target = self._check(url)
                for _hop in range(MAX_REDIRECTS + 1):
                    req_headers = {"Accept": AS2_ACCEPT} | dict(headers or {})
                    if sign is not None:
                        req_headers = sign_request(
                            "GET", str(target), req_headers, None, sign[0], sign[1]
                        )
                    async with session.get(
                        target, headers=req_headers, allow_redirects=False
                    ) as resp:
                        if resp.status in REDIRECT_STATUSES:
                            location = resp.headers.get("Location")
                            if not location:
                                raise FetchError("redirect without Location", resp.status)
                            target = self._check(target.join(URL(location)))
                            continue
                        return await self._json_body(resp, limit)
                raise FetchError(f"more than {MAX_REDIRECTS} redirects")
        except TimeoutError as e:
            raise FetchError(f"timed out fetching {url:.200}") from e
        except aiohttp.ClientError as e:
            raise _unwrap(e, url) from e

    @staticmethod
    async def _json_body(resp: aiohttp.ClientResponse, limit: int) -> dict[str, Any]:
        if not 200 <= resp.status < 300:
            raise FetchError(f"remote answered {resp.status}", resp.status)
        if resp.content_type not in JSON_TYPES:
            raise FetchError(f"not JSON: {resp.content_type!r}", resp.status)
        raw = await _read_capped(resp, limit, truncate=False)
        try:
            doc = json.loads(raw)
        except ValueError as e:
            raise FetchError("response is not valid JSON", resp.status) from e
        if not isinstance(doc, dict):
            raise FetchError("response is not a JSON object", resp.status)
        return doc

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        *,
        sign: Signer | None = None,
        timeout: float | None = None,
    ) -> tuple[int, Mapping[str, str], str]:
        """POST (a delivery) and return (status, headers, first 2000 chars of text).

        Never follows redirects: a delivery is signed for one inbox, and a 3xx
        is for the delivery worker to record. Non-2xx is returned, not raised;
        `UnsafeURL` and `FetchError` (timeouts, connection failures) are raised.
        """
        target = self._check(url)
        req_headers = dict(headers)
        if sign is not None:
            req_headers = sign_request("POST", str(target), req_headers, body, sign[0], sign[1])
        session = self._get_session()
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                async with session.post(
                    target, data=body, headers=req_headers, allow_redirects=False
                ) as resp:
                    raw = await _read_capped(resp, POST_RESPONSE_BYTES, truncate=True)
                    try:
                        text = raw.decode(resp.charset or "utf-8", "replace")
                    except LookupError:  # a charset Python does not know
                        text = raw.decode("utf-8", "replace")
                    return resp.status, resp.headers, text[:2000]
        except TimeoutError as e:
            raise FetchError(f"timed out posting to {url:.200}") from e
        except aiohttp.ClientError as e:
            raise _unwrap(e, url) from e


def _unwrap(err: BaseException, url: str) -> NodeError:
    """aiohttp may wrap our resolver's refusal; surface it as `UnsafeURL`."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, UnsafeURL):
            return seen
        seen = seen.__cause__ or seen.__context__
    return FetchError(f"{type(err).__name__} fetching {url:.200}: {err}")
