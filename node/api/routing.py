"""Declared API endpoints: one declaration gives the aiohttp route, input
validation, the authorization check and the endpoint's OpenAPI entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from ..appkeys import ACCOUNT, CTX
from ..auth import require_role
from ..context import NodeContext
from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from ..models import Account
from ..validation import Schema
from ..web_helpers import read_at_most


@dataclass
class Call:
    """What an API handler receives: parsed, validated, authorized."""

    request: web.Request
    ctx: NodeContext
    account: Account | None
    body: dict[str, Any]
    query: dict[str, Any]
    # name: (filename, content type, temporary file); see read_multipart.
    files: dict[str, tuple[str, str, Path]] = field(default_factory=dict)

    def path(self, name: str) -> str:
        return self.request.match_info[name]


Handler = Callable[[Call], Awaitable[Any]]


@dataclass
class Endpoint:
    method: str
    path: str
    name: str
    summary: str
    handler: Handler
    tag: str
    body: Schema | None = None
    query: Schema | None = None
    role: str | None = None  # minimum role; None = anonymous allowed
    status: int = 200
    multipart: bool = False
    response: str = "object"


class Api:
    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        name: str,
        summary: str,
        tag: str,
        body: Schema | None = None,
        query: Schema | None = None,
        role: str | None = None,
        status: int = 200,
        multipart: bool = False,
        response: str = "object",
    ) -> Callable[[Handler], Handler]:
        def deco(fn: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method,
                    path,
                    name,
                    summary,
                    fn,
                    tag,
                    body,
                    query,
                    role,
                    status,
                    multipart,
                    response,
                )
            )
            return fn

        return deco

    def install(self, app: web.Application) -> None:
        """Add every declared endpoint the app does not have yet.

        The core installs the table first; a subsystem whose modules declare
        more endpoints calls this again from its `setup(app)`, so nothing is
        installed twice and subsystems never reach into the routing internals.
        """
        names = app.router.named_resources()
        for ep in self.endpoints:
            if ep.name not in names:
                app.router.add_route(ep.method, ep.path, _wrap(ep), name=ep.name)


async def read_json(request: web.Request, limit: int) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    ctype = request.content_type
    raw = await read_at_most(request, limit)
    if len(raw) > limit:
        raise PayloadTooLarge(f"the body is larger than {limit} bytes")
    if not raw:
        return {}
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise UnsupportedMediaType("send JSON (application/json)")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None


async def read_multipart(
    request: web.Request, file_limit: int, field_limit: int
) -> tuple[dict, dict]:
    """Fields and files of a multipart body, each bounded while it streams in.

    A file part is written as it arrives to a temporary file under DATA/tmp
    (never held in memory: a master can be hundreds of megabytes); `files`
    maps the part's name to (filename, content type, path). The caller owns
    those files: `discard_uploads(files)` once done (whatever was not moved
    away). On any error here they are already gone.
    """
    fields: dict[str, Any] = {}
    files: dict[str, tuple[str, str, Path]] = {}
    tmp_dir = request.config_dict[CTX].settings.data_dir / "tmp"
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if part.filename is not None:
                if part.name in files:  # a repeated file field: the last one counts
                    discard_uploads({part.name: files.pop(part.name)})
                path = tmp_dir / f"upload-{secrets.token_hex(8)}.part"
                files[part.name] = (
                    part.filename,
                    part.headers.get("Content-Type", "application/octet-stream"),
                    path,
                )
                await _spool(part, path, file_limit)
            else:
                value = await part.read(decode=True)
                if len(value) > field_limit:
                    raise PayloadTooLarge(f"field {part.name} is too long")
                text = value.decode("utf-8", errors="replace")
                if part.name in fields:  # repeated field: a list (tracks=a&tracks=b)
                    prev = fields[part.name]
                    fields[part.name] = (prev if isinstance(prev, list) else [prev]) + [text]
                else:
                    fields[part.name] = text
    except BaseException:
        discard_uploads(files)
        raise
    return fields, files


_SPOOL_BLOCK = 1 << 20  # written to disk a MiB at a time, off the event loop


async def _spool(part: Any, path: Path, limit: int) -> None:
    """Copy one file part to `path`, refusing it past `limit` bytes."""

    def open_new() -> Any:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "xb")  # noqa: SIM115 - closed below

    f = await asyncio.to_thread(open_new)
    try:
        size, buf, held = 0, [], 0
        while chunk := await part.read_chunk(1 << 16):
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the file is larger than {limit} bytes")
            buf.append(chunk)
            held += len(chunk)
            if held >= _SPOOL_BLOCK:
                await asyncio.to_thread(f.write, b"".join(buf))
                buf, held = [], 0
        if buf:
            await asyncio.to_thread(f.write, b"".join(buf))
    finally:
        f.close()


def discard_uploads(files: dict[str, tuple[str, str, Path]]) -> None:
    """Remove the temporary files `read_multipart` left (those still there)."""
    for _name, _mime, path in files.values():
        with contextlib.suppress(OSError):
            path.unlink()


def _wrap(ep: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        ctx = request.config_dict[CTX]
        account = request.get(ACCOUNT)
        if ep.role is not None:
            require_role(account, ep.role)
        query = ep.query.validate(dict(request.query)) if ep.query else {}
        body: dict[str, Any] = {}
        files: dict[str, tuple[str, str, Path]] = {}
        try:
            if ep.body is not None:
                limit = ctx.settings.node.max_request_bytes
                if ep.multipart and request.content_type == "multipart/form-data":
                    raw, files = await read_multipart(
                        request, ctx.settings.media.max_upload_bytes, limit
                    )
                else:
                    raw = await read_json(request, limit)
                body = ep.body.validate(raw)
            result = await ep.handler(Call(request, ctx, account, body, query, files))
        finally:
            discard_uploads(files)  # what the handler kept, it moved away
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=204)
        return web.json_response(result, status=ep.status, dumps=_dumps)

    handler.__name__ = ep.handler.__name__
    return handler


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


_PARAM = re.compile(r"{(\w+)(?::[^}]*)?}")


def openapi_document(api: Api, ctx: NodeContext) -> dict[str, Any]:
    """OpenAPI 3.1 built from the declarations, so it cannot drift from the routes."""
    paths: dict[str, dict[str, Any]] = {}
    for ep in api.endpoints:
        path = _PARAM.sub(r"{\1}", ep.path)
        op: dict[str, Any] = {
            "operationId": ep.name,
            "summary": ep.summary,
            "tags": [ep.tag],
            "responses": {
                str(ep.status): {"description": "Success" if ep.status != 204 else "No content"},
                "default": {
                    "description": "An RFC 9457 problem",
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    },
                },
            },
        }
        if ep.status != 204:
            op["responses"][str(ep.status)]["content"] = {
                "application/json": {"schema": {"type": ep.response}}
            }
        params = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in _PARAM.findall(ep.path)
        ]
        if ep.query:
            for name, schema in ep.query.json_schema()["properties"].items():
                params.append({"name": name, "in": "query", "required": False, "schema": schema})
        if params:
            op["parameters"] = params
        if ep.body:
            content = {"application/json": {"schema": ep.body.json_schema()}}
            if ep.multipart:
                mp = ep.body.json_schema()
                mp["properties"] = {
                    **mp["properties"],
                    "file": {"type": "string", "format": "binary"},
                }
                mp["additionalProperties"] = True
                content["multipart/form-data"] = {"schema": mp}
            op["requestBody"] = {"required": True, "content": content}
        if ep.role:
            op["security"] = [{"bearer": []}]
            op["description"] = f"Requires the {ep.role} role or above."
        paths.setdefault(path, {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"nycmg API ({ctx.settings.node.name})",
            "version": "1",
            "description": "Errors are RFC 9457 problem documents; lists use cursor pagination "
            "(`cursor`, `limit`; the response's `next` is the next cursor); times are ISO 8601 UTC; "
            "money is {amount, currency} in minor units.",
        },
        "servers": [{"url": ctx.settings.base_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "instance": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "object"}},
                    },
                }
            },
        },
    }
