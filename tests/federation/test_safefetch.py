"""Outbound fetches: remote input cannot point us at our own network.

Real aiohttp servers on 127.0.0.1 play the remote side. To make the
loopback server look "remote", a static resolver maps test names to
127.0.0.1 and `allow_hosts` exempts exactly one of them; every other way of
reaching 127.0.0.1 must then be refused.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from federation.safefetch import (
    FetchError,
    SafeFetcher,
    UnsafeURL,
    check_url,
    check_url_async,
    is_public_address,
)
from federation.signatures import PublicKey, SignatureError, http_status, verify_request

KEY_ID = "https://nycmg.example/actor#main-key"

UNSAFE = [
    "http://127.0.0.1/",
    "http://127.8.9.10:8080/x",
    "http://[::1]/",
    "http://10.1.2.3/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.1/",
    "http://[fc00::1]/",
    "http://[fd12:3456::1]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://100.64.0.1/",
    "http://0.0.0.0/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://2130706433/",  # 127.0.0.1 as one number
    "http://127.1/",
]


class StaticResolver(AbstractResolver):
    """Test DNS: names to fixed addresses."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return [
            {
                "hostname": host,
                "host": addr,
                "port": port,
                "family": socket.AF_INET6 if ":" in addr else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for addr in self.table[host]
        ]

    async def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def key() -> tuple[str, str]:
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        k.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture
async def remote(aiohttp_server, key):
    """A 'remote' node: JSON, redirects, big, slow and HTML answers, and an inbox."""
    _, public = key

    async def lookup(key_id: str, refresh: bool) -> PublicKey | None:
        return (
            PublicKey(key_id, "https://nycmg.example/actor", public) if key_id == KEY_ID else None
        )

    async def actor(request: web.Request) -> web.Response:
        return web.json_response(
            {"id": "x", "type": "Person"}, content_type="application/activity+json"
        )

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def countdown(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n == 0:
            return await actor(request)
        raise web.HTTPFound(f"/loop/{n - 1}")

    async def big(request: web.Request) -> web.Response:
        return web.Response(
            body=b'{"a": "' + b"x" * 200_000 + b'"}', content_type="application/json"
        )

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b'{"a": "')
        for _ in range(50):
            await resp.write(b"x" * 10_000)
        await resp.write(b'"}')
        return resp

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    async def html(request: web.Request) -> web.Response:
        return web.Response(text="<html>{}</html>", content_type="text/html")

    async def array(request: web.Request) -> web.Response:
        return web.json_response([1, 2])

    async def gone(request: web.Request) -> web.Response:
        return web.json_response({"error": "gone"}, status=410)

    async def signed_only(request: web.Request) -> web.Response:
        try:
            verified = await verify_request(
                request.method, request.raw_path, request.headers, b"", lookup, scheme="http"
            )
        except SignatureError as err:
            return web.Response(status=http_status(err), text=err.detail)
        return web.json_response({"signer": verified.owner}, content_type="application/ld+json")

    async def inbox(request: web.Request) -> web.Response:
        body = await request.read()
        verified = await verify_request(
            request.method, request.raw_path, request.headers, body, lookup, scheme="http"
        )
        return web.Response(status=202, text=f"accepted from {verified.owner}: {len(body)}")

    app = web.Application()
    app.router.add_get("/actor", actor)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop/{n}", countdown)
    app.router.add_get("/big", big)
    app.router.add_get("/big-chunked", big_chunked)
    app.router.add_get("/slow", slow)
    app.router.add_get("/html", html)
    app.router.add_get("/array", array)
    app.router.add_get("/gone", gone)
    app.router.add_get("/signed", signed_only)
    app.router.add_post("/inbox", inbox)
    return await aiohttp_server(app, host="127.0.0.1")


@pytest.fixture
async def fetcher() -> AsyncIterator[SafeFetcher]:
    """Refuses private addresses, except for the one test name we allow."""
    f = SafeFetcher(
        allow_private=False,
        allow_hosts={"allowed.test"},
        resolver=StaticResolver(
            {
                "allowed.test": ["127.0.0.1"],
                "rebind.test": ["127.0.0.1"],
                "mixed.test": ["93.184.216.34", "127.0.0.1"],
            }
        ),
        timeout=5,
    )
    yield f
    await f.close()


def at(server, path: str, host: str = "allowed.test") -> str:
    return f"http://{host}:{server.port}{path}"


# --------------------------------------------------------------------------- check_url


@pytest.mark.parametrize("url", UNSAFE)
def test_private_addresses_are_refused(url):
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=False)


@pytest.mark.parametrize("url", UNSAFE[:-2])
def test_private_addresses_are_allowed_when_configured(url):
    check_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "http://user:pw@93.184.216.34/",
        "http://user@93.184.216.34/",
        "http:///nohost",
        "http://93.184.216.34:99999/",
        "not a url",
    ],
)
def test_bad_schemes_userinfo_and_junk_are_refused_even_when_private_is_allowed(url):
    with pytest.raises(UnsafeURL):
        check_url(url, allow_private=True)


def test_a_public_address_is_fine():
    check_url("https://93.184.216.34/users/a", allow_private=False)
    check_url("https://[2606:4700::1111]/", allow_private=False)
    assert is_public_address("8.8.8.8") and is_public_address("::ffff:8.8.8.8")
    assert not is_public_address("fe80::1%eth0") and not is_public_address("not an address")


def test_a_name_is_refused_if_any_of_its_addresses_is_private(monkeypatch):
    def fake_getaddrinfo(host, port, *args, **kwargs):
        table = {"good.test": ["93.184.216.34"], "mixed.test": ["93.184.216.34", "10.0.0.7"]}
        if host not in table:
            raise socket.gaierror("nope")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0)) for a in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    check_url("https://good.test/", allow_private=False)
    with pytest.raises(UnsafeURL, match="10.0.0.7"):
        check_url("https://mixed.test/", allow_private=False)
    with pytest.raises(UnsafeURL, match="does not resolve"):
        check_url("https://missing.test/", allow_private=False)
    check_url("https://mixed.test/", allow_private=False, allow_hosts={"MIXED.test"})

    async def both() -> None:
        await check_url_async("https://good.test/", allow_private=False)
        with pytest.raises(UnsafeURL):
            await check_url_async("https://mixed.test/", allow_private=False)

    asyncio.run(both())


# --------------------------------------------------------------------------- the fetcher


async def test_an_allowed_host_is_fetched(remote, fetcher):
    assert await fetcher.get_json(at(remote, "/actor")) == {"id": "x", "type": "Person"}


async def test_an_ip_literal_on_loopback_is_refused(remote, fetcher):
    with pytest.raises(UnsafeURL):
        await fetcher.get_json(at(remote, "/actor", host="127.0.0.1"))


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(remote, fetcher):
    """The check lives in the resolver the connection uses, so a name that a
    pre-check saw as public cannot be rebound to loopback in between."""
    with pytest.raises(UnsafeURL, match="non-public"):
        await fetcher.get_json(at(remote, "/actor", host="rebind.test"))
    with pytest.raises(UnsafeURL):
        await fetcher.get_json(at(remote, "/actor", host="mixed.test"))


async def test_a_redirect_to_loopback_is_refused(remote, fetcher):
    for target in (
        at(remote, "/actor", host="127.0.0.1"),
        at(remote, "/actor", host="rebind.test"),
        at(remote, "/actor", host="[::ffff:127.0.0.1]"),
        "file:///etc/passwd",
    ):
        with pytest.raises(UnsafeURL):
            await fetcher.get_json(at(remote, "/redirect?to=") + quote(target, safe=""))


async def test_safe_redirects_are_followed_up_to_three(remote, fetcher):
    relative = at(remote, "/redirect?to=") + quote("/actor", safe="")
    assert (await fetcher.get_json(relative))["type"] == "Person"
    assert (await fetcher.get_json(at(remote, "/loop/3")))["type"] == "Person"
    with pytest.raises(FetchError, match="more than 3 redirects"):
        await fetcher.get_json(at(remote, "/loop/4"))


async def test_private_addresses_are_fetched_when_allowed(remote):
    f = SafeFetcher(allow_private=True)
    try:
        assert (await f.get_json(at(remote, "/actor", host="127.0.0.1")))["type"] == "Person"
    finally:
        await f.close()


async def test_a_body_over_the_limit_is_refused(remote, fetcher):
    with pytest.raises(FetchError, match="over 1000"):
        await fetcher.get_json(at(remote, "/big"), max_bytes=1000)
    with pytest.raises(FetchError, match="over 1000"):
        await fetcher.get_json(at(remote, "/big-chunked"), max_bytes=1000)
    assert await fetcher.get_json(at(remote, "/big"), max_bytes=300_000)


async def test_a_slow_server_times_out(remote, fetcher):
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        await fetcher.get_json(at(remote, "/slow"), timeout=0.3)
    assert time.monotonic() - started < 2


async def test_only_json_objects_are_accepted(remote, fetcher):
    with pytest.raises(FetchError, match="not JSON"):
        await fetcher.get_json(at(remote, "/html"))
    with pytest.raises(FetchError, match="not a JSON object"):
        await fetcher.get_json(at(remote, "/array"))


async def test_an_error_status_is_reported_with_its_code(remote, fetcher):
    with pytest.raises(FetchError) as err:
        await fetcher.get_json(at(remote, "/gone"))
    assert err.value.remote_status == 410
    with pytest.raises(FetchError) as err:
        await fetcher.get_json(at(remote, "/nothing-here"))
    assert err.value.remote_status == 404


async def test_a_connection_failure_is_a_fetch_error(fetcher):
    with pytest.raises(FetchError):
        await fetcher.get_json("http://nowhere.test/actor")


async def test_a_signed_get_verifies_on_the_other_side(remote, fetcher, key):
    private, _ = key
    doc = await fetcher.get_json(at(remote, "/signed?page=1"), sign=(KEY_ID, private))
    assert doc == {"signer": "https://nycmg.example/actor"}
    with pytest.raises(FetchError) as err:  # unsigned: the remote says 401
        await fetcher.get_json(at(remote, "/signed"))
    assert err.value.remote_status == 401


async def test_a_signed_post_is_delivered_and_its_answer_returned(remote, fetcher, key):
    private, _ = key
    body = json.dumps({"type": "Create"}).encode()
    status, headers, text = await fetcher.post(
        at(remote, "/inbox"),
        body,
        {"Content-Type": "application/activity+json"},
        sign=(KEY_ID, private),
    )
    assert status == 202
    assert headers["Content-Type"].startswith("text/plain")
    assert text == f"accepted from https://nycmg.example/actor: {len(body)}"


async def test_a_post_to_a_private_address_is_refused(remote, fetcher):
    with pytest.raises(UnsafeURL):
        await fetcher.post(at(remote, "/inbox", host="127.0.0.1"), b"{}", {})
    with pytest.raises(UnsafeURL):
        await fetcher.post(at(remote, "/inbox", host="rebind.test"), b"{}", {})
