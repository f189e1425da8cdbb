"""Servers for benchmarks, each run in its own process by `bench._common.start_server`.

    python -m bench._serve node --port P --data DIR     the real app (no worker)
    python -m bench._serve bare --port P                 the anchor: a bare aiohttp
                                                         handler with a small fixed page

Both use the same event loop policy and `web.run_app` settings (access log
off), so the ratio between them measures the node's own work per request.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from aiohttp import web

BARE_BODY = (
    b"<!doctype html><html lang=en><head><meta charset=utf-8><title>bare</title></head>"
    b"<body><h1>Hello</h1><p>A small fixed page, the anchor for page benchmarks.</p></body></html>"
)


def bare_app() -> web.Application:
    async def page(request: web.Request) -> web.Response:
        return web.Response(body=BARE_BODY, content_type="text/html", charset="utf-8")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/{tail:.*}", page)
    return app


def node_app(data: Path) -> web.Application:
    from node.app import create_app
    from node.config import load_settings

    settings = load_settings(data)
    return create_app(settings, worker=False)


def main() -> None:
    p = argparse.ArgumentParser(prog="bench._serve")
    p.add_argument("kind", choices=["node", "bare"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--data", type=Path)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    app = bare_app() if args.kind == "bare" else node_app(args.data)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
