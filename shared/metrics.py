"""Prometheus metrics shared by every service, declared once."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_LATENCY = Histogram(
    "gatehouse_http_request_duration_seconds",
    "HTTP request latency by route and status",
    ["service", "method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_APPLIED = Counter(
    "gatehouse_projection_events_applied_total",
    "Events applied per projection",
    ["service", "projection"],
)
PROJECTION_LAG = Gauge(
    "gatehouse_projection_lag",
    "Events of the projection's subjects in the stream not yet applied (consumer view)",
    ["service", "projection"],
)
CONSUMER_PENDING = Gauge(
    "gatehouse_consumer_pending",
    "Messages pending for the projection's consumer",
    ["service", "projection"],
)
DEAD_LETTERED = Counter(
    "gatehouse_dead_lettered_total",
    "Events written to the dead-letter table",
    ["service", "projection"],
)
JOBS_FAILED = Counter(
    "gatehouse_jobs_failed_total",
    "Background jobs that exhausted their attempts and wait for an operator (gatehouse jobs)",
    ["table", "kind"],
)
EVENTS_PUBLISHED = Counter(
    "gatehouse_events_published_total",
    "Events published to the stream",
    ["service", "type"],
)
RPC_LATENCY = Histogram(
    "gatehouse_rpc_duration_seconds",
    "Request/reply handling time by endpoint and outcome",
    ["service", "endpoint", "outcome"],
)
