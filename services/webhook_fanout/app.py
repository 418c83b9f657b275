"""Wiring of the webhook-fanout service.

Its domain arrives with a later issue; today it starts, connects to the bus and the database,
owns its schema (`webhook_fanout`), answers health and metrics, and projects nothing yet.
"""

from __future__ import annotations

from pathlib import Path

from shared.service import Runtime, ServiceDefinition


async def setup(runtime: Runtime) -> None:
    """Nothing to register until the webhook-fanout domain lands."""


DEFINITION = ServiceDefinition(
    name="webhook-fanout",
    schema="webhook_fanout",
    migrations_dir=Path(__file__).parent / "migrations",
    description="signed webhook subscriptions and deliveries",
    setup=setup,
)
