"""Servers for benchmarks, each run in its own process by `bench._common.start_server`.

    python -m bench._serve node --port P --data DIR     the real app (no worker)
    python -m bench._serve node --port P --data DIR --worker
                                                         embedded mode: the job worker
                                                         on the same event loop
    python -m bench._serve bare --port P                 the anchor: a bare aiohttp
                                                         handler with a small fixed page
    python -m bench._serve accept --port P               the inbox anchor: reads a POST's
                                                         body and answers 202, nothing else

Both use the same event loop policy and `web.run_app` settings (access log
off), so the ratio between them measures the node's own work per request.

With `NYCMG_BENCH_PROFILE=FILE` in the environment the server runs under
cProfile and writes its statistics to FILE when it stops (SIGTERM, as
`Server.stop` sends): `python -m pstats FILE` to see where requests go.
"""

from __future__ import annotations

import argparse
import logging
import os
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


def accept_app() -> web.Application:
    """What an inbox costs with no node behind it: read the body, answer 202."""

    async def inbox(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "accepted"}, status=202)

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", inbox)
    app.router.add_get("/{tail:.*}", ready)
    return app


def node_app(data: Path, worker: bool = False) -> web.Application:
    from node.app import create_app
    from node.config import load_settings

    settings = load_settings(data)
    return create_app(settings, worker=worker)


def main() -> None:
    p = argparse.ArgumentParser(prog="bench._serve")
    p.add_argument("kind", choices=["node", "bare", "accept"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--data", type=Path)
    p.add_argument("--worker", action="store_true", help="node: run the job worker in-process")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.kind == "bare":
        app = bare_app()
    elif args.kind == "accept":
        app = accept_app()
    else:
        from node.gc_tuning import tune_for_server

        app = node_app(args.data, worker=args.worker)
        tune_for_server()  # as `nycmg serve` does
    profile_to = os.environ.get("NYCMG_BENCH_PROFILE")
    if not profile_to:
        web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)
        return
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    try:
        web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)
    finally:
        prof.disable()
        prof.dump_stats(profile_to)


if __name__ == "__main__":
    main()
