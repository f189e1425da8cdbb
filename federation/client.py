"""Outbound HTTP for federation: every fetch and delivery, signed and guarded.

Wraps `SafeFetcher` (address checks, redirects, size and time limits) with
this node's identity: GETs are signed by the node's Application actor
(authorized fetch), POSTs by the local actor the activity is from.
"""

from __future__ import annotations

import json
from typing import Any

from node.context import NodeContext

from .errors import FetchFailed
from .safefetch import FetchError, SafeFetcher, UnsafeURL
from .vocab import ACTIVITY_JSON, LD_JSON

ACCEPT = f"{ACTIVITY_JSON}, {LD_JSON}"


class FederationClient:
    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx
        fed = ctx.settings.federation
        self.fetcher = SafeFetcher(allow_private=fed.allow_private_addresses)
        self.max_bytes = fed.max_body_bytes
        self.timeout = fed.fetch_timeout_seconds
        self.node_key: tuple[str, str] | None = None  # (key_id, private pem), set at start-up

    async def close(self) -> None:
        await self.fetcher.close()

    async def get_json(self, url: str) -> dict[str, Any]:
        try:
            return await self.fetcher.get_json(
                url,
                headers={"Accept": ACCEPT},
                sign=self.node_key,
                max_bytes=self.max_bytes,
                timeout=self.timeout,
            )
        except (FetchError, UnsafeURL) as e:
            raise FetchFailed(str(e)) from None

    async def get_json_any_scheme(self, host: str, path: str) -> dict[str, Any]:
        """https first; plain http only where private addresses are allowed (tests, the demo)."""
        try:
            return await self.get_json(f"https://{host}{path}")
        except FetchFailed:
            if not self.ctx.settings.federation.allow_private_addresses:
                raise
            return await self.get_json(f"http://{host}{path}")

    async def post_activity(
        self, inbox: str, activity: dict[str, Any], key_id: str, private_pem: str
    ) -> tuple[int, str]:
        body = json.dumps(activity, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            status, _headers, text = await self.fetcher.post(
                inbox,
                body,
                headers={"Content-Type": ACTIVITY_JSON, "Accept": ACCEPT},
                sign=(key_id, private_pem),
                timeout=self.timeout,
            )
        except (FetchError, UnsafeURL) as e:
            raise FetchFailed(str(e)) from None
        return status, text
