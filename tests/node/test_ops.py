"""An operator's view: liveness, Prometheus metrics, structured logs."""

from __future__ import annotations

import json
import logging

from node.logs import JsonFormatter


async def test_healthz_reports_the_database(node):
    r = await node.client.get("/healthz")
    assert r.status == 200
    assert (await r.json())["database"] == "ok"


async def test_healthz_is_503_when_the_database_is_gone(node, monkeypatch):
    class Broken:
        async def __aenter__(self):
            raise OSError("connection refused")

        async def __aexit__(self, *exc):
            return False

    monkeypatch.setattr(node.ctx.db, "read_session", lambda: Broken())
    r = await node.client.get("/healthz")
    assert r.status == 503 and (await r.json())["status"] == "error"


async def test_metrics_count_requests_and_jobs(node):
    await node.client.get("/api/v1/releases")
    r = await node.client.get("/metrics")
    assert r.status == 200
    text = await r.text()
    assert 'nycmg_http_requests_total{method="GET",route="api.releases",status="200"}' in text
    assert 'nycmg_jobs{state="queued"}' in text
    assert "nycmg_accounts" in text


def test_logs_are_one_json_object_per_line():
    record = logging.LogRecord("nycmg.jobs", logging.WARNING, __file__, 1, "job dead", None, None)
    record.job = 42
    line = JsonFormatter().format(record)
    out = json.loads(line)
    assert out["msg"] == "job dead" and out["job"] == 42 and out["level"] == "warning"
    assert out["ts"].endswith("Z")
