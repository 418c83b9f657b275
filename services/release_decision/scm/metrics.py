"""Metrics of the GitHub and GitLab integration, declared once."""

from __future__ import annotations

from prometheus_client import Counter

DELIVERIES = Counter(
    "gatehouse_webhook_deliveries_total",
    "Inbound webhook deliveries by provider and outcome (recorded, pong, ignored, duplicate, "
    "unauthenticated)",
    ["provider", "outcome"],
)
GITHUB_CALLS = Counter(
    "gatehouse_github_calls_total",
    "Calls to the GitHub REST API by method and answer (status, or error)",
    ["method", "status"],
)
GITHUB_RATE_LIMITED = Counter(
    "gatehouse_github_rate_limited_total",
    "Times a GitHub call waited for (or gave up on) a rate limit",
)
POSTS = Counter(
    "gatehouse_decision_posts_total",
    "Decision post jobs by outcome (posted, or skipped with its reason)",
    ["outcome"],
)
