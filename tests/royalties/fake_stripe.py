"""A small fake of the Stripe API on loopback, for the real `stripe` library to talk to.

It keeps objects in memory, honours `Idempotency-Key` the way Stripe does (the
same key and parameters replay the first response; the same key with other
parameters is an error), checks the secret key, and can send webhooks signed
with Stripe's scheme (`Stripe-Signature: t=..,v1=HMAC-SHA256(secret, "t.body")`).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

SECRET_KEY = "sk_test_nycmg_fake"
WEBHOOK_SECRET = "whsec_nycmg_fake"


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (`a[b][0][c]=v`) back into nested dicts and lists."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt_is_index = not last and parts[i + 1].isdigit()
            if isinstance(node, list):
                idx = int(part)
                while len(node) <= idx:
                    node.append({} if not last else None)
                if last:
                    node[idx] = value
                else:
                    if not isinstance(node[idx], dict | list):
                        node[idx] = [] if nxt_is_index else {}
                    node = node[idx]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, [] if nxt_is_index else {})
    return out


@dataclass
class FakeStripe:
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any], str | None]] = field(default_factory=list)
    idempotent: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))
    runner: web.AppRunner | None = None
    base: str = ""

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self.counter):06d}"

    def of_kind(self, obj: str) -> list[dict[str, Any]]:
        return [o for o in self.objects.values() if o["object"] == obj]

    # -- the API --

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            return self.error(401, "invalid_request_error", "Invalid API Key provided")
        params = _nest(parse_qsl(await request.text(), keep_blank_values=True))
        path = request.path
        key = request.headers.get("Idempotency-Key")
        self.requests.append((request.method, path, params, key))
        if request.method == "POST" and key:
            seen = self.idempotent.get(key)
            if seen is not None:
                if (seen[0], seen[1]) != (path, params):
                    return self.error(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters",
                    )
                return web.json_response(seen[2], headers={"Idempotent-Replayed": "true"})
        try:
            body = self.route(request.method, path, params)
        except KeyError as e:
            return self.error(404, "invalid_request_error", f"No such object: {e}")
        if request.method == "POST" and key:
            self.idempotent[key] = (path, params, body)
        return web.json_response(body)

    def error(self, status: int, kind: str, message: str) -> web.Response:
        return web.json_response({"error": {"type": kind, "message": message}}, status=status)

    def store(self, prefix: str, obj: str, **fields: Any) -> dict[str, Any]:
        o = {
            "id": self.new_id(prefix),
            "object": obj,
            "created": int(time.time()),
            "livemode": False,
            **fields,
        }
        self.objects[o["id"]] = o
        return o

    def route(self, method: str, path: str, p: dict[str, Any]) -> dict[str, Any]:
        if method == "GET" and path.startswith("/v1/charges/"):
            return self.objects[path.rsplit("/", 1)[1]]
        if method != "POST":
            raise KeyError(path)
        if path == "/v1/customers":
            return self.store(
                "cus", "customer", email=p.get("email"), metadata=p.get("metadata", {})
            )
        if path == "/v1/checkout/sessions":
            s = self.store(
                "cs",
                "checkout.session",
                mode=p["mode"],
                customer=p["customer"],
                client_reference_id=p.get("client_reference_id"),
                line_items=p.get("line_items"),
                success_url=p["success_url"],
                cancel_url=p["cancel_url"],
                status="open",
            )
            s["url"] = f"{self.base}/pay/{s['id']}"
            return s
        if path == "/v1/accounts":
            return self.store(
                "acct",
                "account",
                type=p.get("type"),
                email=p.get("email"),
                metadata=p.get("metadata", {}),
            )
        if path == "/v1/account_links":
            self.objects[p["account"]]  # the account must exist
            return {
                "object": "account_link",
                "url": f"{self.base}/onboard/{p['account']}",
                "created": 0,
            }
        if path == "/v1/transfers":
            self.objects[p["destination"]]
            return self.store(
                "tr",
                "transfer",
                amount=int(p["amount"]),
                currency=p["currency"],
                destination=p["destination"],
                description=p.get("description"),
            )
        raise KeyError(path)

    # -- what Stripe would do on its side, and tell the node by webhook --

    def event(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self.new_id("evt"),
            "object": "event",
            "type": kind,
            "api_version": "2024-06-20",
            "created": int(time.time()),
            "data": {"object": obj},
        }

    def complete_checkout(
        self, session_id: str, amount: int, currency: str
    ) -> list[dict[str, Any]]:
        """The fan paid: a subscription, its first invoice and charge, and the events."""
        s = self.objects[session_id]
        sub = self.store("sub", "subscription", customer=s["customer"], status="active")
        s.update(status="complete", subscription=sub["id"], amount_total=amount, currency=currency)
        return [
            self.event("checkout.session.completed", dict(s)),
            self.renew(sub["id"], amount, currency),
        ]

    def renew(
        self, sub_id: str, amount: int, currency: str, period_start: int | None = None
    ) -> dict[str, Any]:
        sub = self.objects[sub_id]
        charge = self.store(
            "ch", "charge", amount=amount, currency=currency, customer=sub["customer"]
        )
        inv = self.store(
            "in",
            "invoice",
            customer=sub["customer"],
            subscription=sub_id,
            amount_paid=amount,
            currency=currency,
            charge=charge["id"],
            period_start=period_start or int(time.time()),
            status="paid",
        )
        charge["invoice"] = inv["id"]
        return self.event("invoice.paid", dict(inv))

    def sign(self, payload: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
        t = at or int(time.time())
        mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
        return f"t={t},v1={mac}"

    def signed(self, event: dict[str, Any], **kw: Any) -> tuple[bytes, dict[str, str]]:
        payload = json.dumps(event).encode()
        return payload, {
            "Stripe-Signature": self.sign(payload, **kw),
            "Content-Type": "application/json",
        }

    async def start(self, port: int) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.base = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
