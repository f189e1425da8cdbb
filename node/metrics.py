"""Prometheus metrics for /metrics; one registry per process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()
REQUESTS = Counter(
    "nycmg_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY
)
REQUEST_SECONDS = Histogram(
    "nycmg_http_request_seconds",
    "HTTP request latency",
    ["route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOBS = Gauge("nycmg_jobs", "Jobs by state", ["state"], registry=REGISTRY)
JOB_LAG = Gauge("nycmg_jobs_oldest_due_seconds", "Age of the oldest due job", registry=REGISTRY)
ACCOUNTS = Gauge("nycmg_accounts", "Local accounts", registry=REGISTRY)
