"""Wiring of the release-decision service.

Its domain arrives with a later issue; today it starts, connects to the bus and the database,
owns its schema (`release_decision`), answers health and metrics, and projects nothing yet.
"""

from __future__ import annotations

from pathlib import Path

from shared.service import Runtime, ServiceDefinition


async def setup(runtime: Runtime) -> None:
    """Nothing to register until the release-decision domain lands."""


DEFINITION = ServiceDefinition(
    name="release-decision",
    schema="release_decision",
    migrations_dir=Path(__file__).parent / "migrations",
    description="release decisions, promotions, release candidates and deployments",
    setup=setup,
)
