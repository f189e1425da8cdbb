"""The composition root: `create_app(settings)` wires the core and every subsystem.

This is the only module (with `cli.py`) that knows every part. The core
emits events and exposes registries; subsystems subscribe and register here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from .api import build_api
from .appkeys import API, CTX, SEARCH, WORKER
from .config import Settings
from .context import NodeContext
from .db import open_database
from .jobs import Worker
from .middleware import auth_middleware, errors_middleware, metrics_middleware
from .ops import setup_ops
from .search import SearchIndex
from .search.jobs import register_search

log = logging.getLogger("nycmg.app")


def create_app(settings: Settings, *, worker: bool | None = None) -> web.Application:
    """Build a node. `worker=None` follows the `server.worker` setting."""
    run_worker = settings.server.worker if worker is None else worker
    app = web.Application(
        middlewares=[metrics_middleware, errors_middleware, auth_middleware],
        client_max_size=max(settings.media.max_upload_bytes, settings.node.max_request_bytes)
        + 65536,
    )
    db = open_database(settings.database_url, settings.database.pool_size, settings.database.echo)
    ctx = NodeContext(settings=settings, db=db)
    app[CTX] = ctx
    app[WORKER] = None
    app[SEARCH] = SearchIndex(settings.search_dir, ctx)
    register_search(ctx, app[SEARCH])

    api = build_api()
    app[API] = api
    api.install(app)
    setup_ops(app)

    # Subsystems and the surfaces. Imported here, the one place allowed to.
    import admin
    import detection
    import federation
    import media
    import royalties
    import web as site

    federation.setup(app)
    media.setup(app)
    royalties.setup(app)
    detection.setup(app)
    site.setup(app)
    # The sub-app owns "/admin/..."; "/admin" alone must still find it.
    app.router.add_get("/admin", _to_console, name="admin.root")
    app.add_subapp("/admin", admin.create_admin())

    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_search_ctx)
    if run_worker:
        app.cleanup_ctx.append(_worker_ctx)
    return app


async def _to_console(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently("/admin/")


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[CTX].db.dispose()


async def _search_ctx(app: web.Application) -> AsyncIterator[None]:
    await asyncio.to_thread(app[SEARCH].open)
    yield
    app[SEARCH].close()


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    ctx = app[CTX]
    s = ctx.settings.jobs
    worker = Worker(
        ctx.db,
        ctx.jobs,
        concurrency=s.concurrency,
        poll_seconds=s.poll_seconds,
        lock_seconds=s.lock_seconds,
        backoff_base=s.backoff_base_seconds,
    )
    ctx.wake_worker = worker.wake
    app[WORKER] = worker
    if ctx.db.is_sqlite:
        # Embedded mode has exactly one worker: anything still "running" was
        # cut off by a crash or a kill, so it goes back in the queue at once.
        await worker.recover_orphans()
    task = asyncio.create_task(worker.run(), name="nycmg-worker")
    yield
    await worker.stop()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
