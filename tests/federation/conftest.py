"""Federation test helpers, as fixtures (test modules cannot import each other
in pytest's importlib mode).

- `eventually` and `api`: poll a condition; call a node's JSON API as a user.
- `lifecycle`: stop, kill and restart a live node over the same data
  directory and database (a restart builds a new app from the same settings).
- `remote`: a minimal other server on loopback (a "fake Mastodon" or "fake
  Funkwhale"): it serves actor documents with keys we control and records
  every activity delivered to its inboxes, so tests can sign requests by
  hand and see exactly what our nodes send.
- `stored`: what a node's inbox kept (inbox items and inbox jobs).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import func, select, text
from yarl import URL

from federation.models import InboxItem, Instance
from federation.signatures import digest_header, sign_request
from node.app import create_app
from node.appkeys import WORKER
from node.config import load_settings
from node.models import Job

PAYLOADS = Path(__file__).parent / "payloads"
ACTIVITY_JSON = "application/activity+json"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


# ---- speed -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def cheap_password_hashes(monkeypatch):
    """Federation stories make several users per test; argon2's default cost takes
    seconds a user on a busy CI box and blocks every node's event loop meanwhile.
    Passwords are not what these tests are about (tests/node covers them)."""
    from argon2 import PasswordHasher

    import node.auth

    monkeypatch.setattr(
        node.auth, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


# ---- polling and the JSON API ---------------------------------------------------


async def _eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval=0.05):
    """Poll until `check()` returns something truthy (workers run in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met in {timeout} s: {check.__name__}")
        await asyncio.sleep(interval)


async def _api(node, method: str, path: str, who: str | None = None, **kw) -> tuple[int, Any]:
    headers = (node.auth(who) if who else {}) | kw.pop("headers", {})
    async with aiohttp.ClientSession() as http:
        async with http.request(method, node.base_url + path, headers=headers, **kw) as r:
            body = await r.json(content_type=None) if r.status != 204 else None
            return r.status, body


@pytest.fixture
def eventually():
    return _eventually


@pytest.fixture
def api():
    return _api


async def _stored(node) -> tuple[int, int]:
    """(inbox items, inbox jobs) a node holds: an attack must leave both at 0."""
    async with node.ctx.db.read_session() as s:
        items = await s.scalar(select(func.count()).select_from(InboxItem))
        jobs = await s.scalar(
            select(func.count()).select_from(Job).where(Job.kind == "federation.inbox")
        )
    return items, jobs


@pytest.fixture
def stored():
    return _stored


async def set_policy(node, host: str, policy: str) -> None:
    """What the console's instance page does: allow, limit or block a host."""
    async with node.ctx.db.transaction() as s:
        inst = await s.scalar(select(Instance).where(Instance.host == host))
        if inst is None:
            inst = Instance(host=host, policy=policy)
            s.add(inst)
        inst.policy = policy


@pytest.fixture
def policy():
    return set_policy


# ---- stopping, killing and restarting a live node ----------------------------------


class Lifecycle:
    """Stop (gracefully or by "kill") and restart LiveNodes in place.

    A restart reloads the settings from the node's data directory and builds a
    new app over them, so the same port, database, keys and search index come
    back, as after `systemctl restart`. The LiveNode object is updated in place,
    so the `network` fixture cleans up whatever runs at the end.
    """

    async def stop(self, node) -> None:
        await node.runner.cleanup()
        node.runner = None

    async def kill(self, node) -> None:
        """Like SIGKILL for the worker: in-flight jobs are cut off mid-request and
        stay `running` in the database; then the server goes away."""
        worker = node.app[WORKER]
        loop_task = next(
            t
            for t in asyncio.all_tasks()
            if t.get_name() == "nycmg-worker"
            and getattr(t.get_coro(), "cr_frame", None) is not None
            and t.get_coro().cr_frame.f_locals.get("self") is worker
        )
        loop_task.cancel()
        in_flight = list(worker._running)
        for task in in_flight:
            task.cancel()
        await asyncio.gather(loop_task, *in_flight, return_exceptions=True)
        worker._running.clear()
        await self.stop(node)

    async def start(self, node) -> None:
        settings = load_settings(node.settings.data_dir)
        app = create_app(settings, worker=True)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", settings.server.port).start()
        node.app, node.runner = app, runner


@pytest.fixture
def lifecycle() -> Lifecycle:
    return Lifecycle()


@asynccontextmanager
async def _inbox_held(node) -> AsyncIterator[None]:
    """While held, the node cannot store anything in its inbox (its database is
    busy), so a delivery to it hangs in flight: a slow receiver, on demand.
    SQLite: hold the one writer connection. PostgreSQL: lock inbox_items."""
    ready, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with node.ctx.db.transaction() as s:
            if node.ctx.db.is_sqlite:
                await s.execute(text("SELECT 1"))  # BEGIN IMMEDIATE takes the write lock
            else:
                await s.execute(text("LOCK TABLE inbox_items IN EXCLUSIVE MODE"))
            ready.set()
            await release.wait()

    task = asyncio.create_task(hold())
    await ready.wait()
    try:
        yield
    finally:
        release.set()
        await task


@pytest.fixture
def inbox_held():
    return _inbox_held


# ---- a fake remote server -----------------------------------------------------------


@functools.cache
def _rsa_key(n: int) -> tuple[str, str]:
    """RSA-2048 keys are slow to make: each index is made once per test session."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign_with_date(
    url: str, body: bytes, key_id: str, private_pem: str, date: datetime
) -> dict[str, str]:
    """A draft-cavage signature as `sign_request` makes it, but at a chosen Date
    (to prove the clock window, the signature itself must be valid)."""
    parts = URL(url)
    host = f"{parts.host}:{parts.port}"
    headers = {
        "Host": host,
        "Date": formatdate(date.timestamp(), usegmt=True),
        "Digest": digest_header(body),
        "Content-Type": ACTIVITY_JSON,
    }
    names = ["(request-target)", "host", "date", "digest", "content-type"]
    target = parts.raw_path_qs
    lines = [f"(request-target): post {target}"] + [f"{n}: {headers[n.title()]}" for n in names[1:]]
    key = serialization.load_pem_private_key(private_pem.encode(), None)
    sig = key.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    headers["Signature"] = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(names)}",'
        f'signature="{base64.b64encode(sig).decode()}"'
    )
    return headers


@dataclass
class FakeActor:
    name: str
    uri: str
    key_id: str
    private_pem: str
    public_pem: str
    doc: dict[str, Any]


@dataclass
class Received:
    """One request that arrived in a fake inbox."""

    path: str
    headers: dict[str, str]
    body: bytes
    activity: dict[str, Any]


@dataclass
class FakeRemote:
    """Another server on loopback, in the shape of Mastodon (`/users/NAME`,
    `/inbox`) or Funkwhale (`/federation/actors/NAME`). Its actors' documents
    follow the software's real shape; `docs` serves any other object by path.
    `inbox_status` is what its inboxes answer (202, or 410 once an account is gone)."""

    software: str = "mastodon"
    shared_inbox: bool = True
    actors: dict[str, FakeActor] = field(default_factory=dict)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    inbox_status: int = 202
    port: int = 0
    runner: web.AppRunner | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return f"http://{self.host}"

    def actor_path(self, name: str) -> str:
        return f"/federation/actors/{name}" if self.software == "funkwhale" else f"/users/{name}"

    async def start(self) -> FakeRemote:
        app = web.Application()
        app.router.add_get("/.well-known/webfinger", self._webfinger)
        app.router.add_post("/{path:.*inbox}", self._inbox)
        app.router.add_get("/{path:.*}", self._get)
        self.port = _free_port()
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def add_actor(self, name: str, *, key: int | None = None, **extra: Any) -> FakeActor:
        """An account on this server, with its own RSA key (`key` picks a cached one)."""
        private, public = _rsa_key(len(self.actors) if key is None else key)
        uri = self.base + self.actor_path(name)
        doc = self._actor_doc(name, uri, public)
        doc.update(extra)
        actor = FakeActor(name, uri, f"{uri}#main-key", private, public, doc)
        self.actors[name] = actor
        return actor

    def _actor_doc(self, name: str, uri: str, public_pem: str) -> dict[str, Any]:
        doc = self.payload(f"{self.software}_actor", NAME=name)
        doc["publicKey"]["publicKeyPem"] = public_pem
        if not self.shared_inbox:
            doc.pop("endpoints", None)
        assert doc["id"] == uri
        return doc

    def payload(self, name: str, ours: str = "https://nycmg.example", **tokens: str) -> dict:
        """A fixture from payloads/, moved onto this server and our node:
        `https://mastodon.example` and `https://funkwhale.example` become this
        server, `https://nycmg.example` becomes `ours`, and `{{TOKEN}}`s are filled."""
        text = (PAYLOADS / f"{name}.json").read_text()
        text = text.replace("https://mastodon.example", self.base)
        text = text.replace("https://funkwhale.example", self.base)
        text = text.replace("https://nycmg.example", ours)
        tokens.setdefault("NOW", datetime.now(UTC).isoformat().replace("+00:00", "Z"))
        for token, value in tokens.items():
            text = text.replace("{{" + token + "}}", value)
        assert "{{" not in text, f"unfilled token in {name}.json"
        return json.loads(text)

    async def post(
        self,
        inbox: str,
        activity: dict[str, Any] | bytes,
        *,
        signer: str | FakeActor | None = "alice",
        key_id: str | None = None,
        date: datetime | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[int, Any]:
        """POST an activity to one of our inboxes, signed by `signer` (or unsigned).

        `body` replaces what is sent after signing (a tampered request);
        `headers` are applied after signing (a changed or extra header)."""
        payload = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
        out: dict[str, str] = {"Content-Type": ACTIVITY_JSON}
        if signer is not None:
            actor = self.actors[signer] if isinstance(signer, str) else signer
            kid = key_id or actor.key_id
            if date is None:
                out = sign_request("POST", inbox, {}, payload, kid, actor.private_pem)
            else:
                out = sign_with_date(inbox, payload, kid, actor.private_pem, date)
        out["Accept"] = ACTIVITY_JSON  # as Mastodon sends it; errors come back as problem+json
        out.update(headers or {})
        async with aiohttp.ClientSession() as http:
            async with http.post(
                URL(inbox, encoded=True), data=payload if body is None else body, headers=out
            ) as r:
                return r.status, await r.json(content_type=None)

    def activities(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [r.activity for r in self.received if kind is None or r.activity.get("type") == kind]

    # -- the server side --

    async def _webfinger(self, request: web.Request) -> web.Response:
        resource = request.query.get("resource", "")
        name = resource.removeprefix("acct:").partition("@")[0]
        if name not in self.actors:
            raise web.HTTPNotFound()
        return web.json_response(
            {
                "subject": resource,
                "links": [{"rel": "self", "type": ACTIVITY_JSON, "href": self.actors[name].uri}],
            },
            content_type="application/jrd+json",
        )

    async def _get(self, request: web.Request) -> web.Response:
        self.fetched.append(request.path)
        for actor in self.actors.values():
            if request.path == URL(actor.uri).path:
                return web.json_response(actor.doc, content_type=ACTIVITY_JSON)
        if request.path in self.docs:
            return web.json_response(self.docs[request.path], content_type=ACTIVITY_JSON)
        raise web.HTTPNotFound()

    async def _inbox(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received(request.path, dict(request.headers), body, json.loads(body)))
        return web.Response(status=self.inbox_status)


@pytest.fixture
async def remote() -> AsyncIterator[Callable[..., Awaitable[FakeRemote]]]:
    """`fake = await remote("mastodon")`: a fake remote server on loopback."""
    started: list[FakeRemote] = []

    async def start(software: str = "mastodon", **kw: Any) -> FakeRemote:
        fake = await FakeRemote(software=software, **kw).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        await fake.close()
