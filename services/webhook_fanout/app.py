"""Wiring of the webhook-fanout service: subscriptions (configuration and secrets), the
projects (which projects list a repo, for the project filter), the deliveries (events
matched to subscriptions and queued before the broker message is acked, then sent, signed,
retried in order per subscription) and the workflow triggers (deployment and build
workflows called as signed deliveries). Each part registers its own projections,
workers and request/reply endpoints."""

from __future__ import annotations

from pathlib import Path

from services.webhook_fanout.deliveries import wiring as deliveries
from services.webhook_fanout.deliveries_api import wiring as deliveries_api
from services.webhook_fanout.projects import wiring as projects
from services.webhook_fanout.subscriptions import wiring as subscriptions
from services.webhook_fanout.workflows import wiring as workflows
from shared.service import Runtime, ServiceDefinition


async def setup(runtime: Runtime) -> None:
    await subscriptions.setup(runtime)
    await projects.setup(runtime)
    await deliveries.setup(runtime)
    await deliveries_api.setup(runtime)
    await workflows.setup(runtime)


DEFINITION = ServiceDefinition(
    name="webhook-fanout",
    schema="webhook_fanout",
    migrations_dir=Path(__file__).parent / "migrations",
    description="signed webhook subscriptions and deliveries",
    setup=setup,
    # Secrets never travel on the bus, so no replay can rebuild them; deliveries and their
    # attempts record how sending went (migrations/0002_deliveries.sql).
    unreplayable_tables=(
        "subscription_secrets",
        "delivery_events",
        "deliveries",
        "delivery_attempts",
        "subscription_health",
        # Which sender is sending to which subscription (migrations/0005).
        "subscription_leases",
        "delivery_intake",
        "workflow_deliveries",
        "workflow_outcomes",
        "workflow_secret_shown",
    ),
)
