"""Liveness and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from .appkeys import CTX
from .jobs import queue_health
from .metrics import ACCOUNTS, JOB_LAG, JOBS, REGISTRY
from .models import Account


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers; 503 otherwise (load balancers take it out)."""
    ctx = request.config_dict[CTX]
    try:
        async with ctx.db.read_session() as s:
            await s.execute(text("SELECT 1"))
    except Exception as e:  # noqa: BLE001 - any failure means unhealthy
        return web.json_response({"status": "error", "database": type(e).__name__}, status=503)
    return web.json_response({"status": "ok", "database": "ok", "domain": ctx.domain})


async def metrics(request: web.Request) -> web.Response:
    ctx = request.config_dict[CTX]
    async with ctx.db.read_session() as s:
        health = await queue_health(s)
        ACCOUNTS.set(await s.scalar(select(func.count()).select_from(Account)))
    for state, n in health["counts"].items():
        JOBS.labels(state).set(n)
    JOB_LAG.set(health["oldest_due_seconds"])
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def setup_ops(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/metrics", metrics, name="metrics")
