"""Wiring of the scanner service.

Its domain arrives with a later issue; today it starts, connects to the bus and the database,
owns its schema (`scanner`), answers health and metrics, and projects nothing yet.
"""

from __future__ import annotations

from pathlib import Path

from shared.service import Runtime, ServiceDefinition


async def setup(runtime: Runtime) -> None:
    """Nothing to register until the scanner domain lands."""


DEFINITION = ServiceDefinition(
    name="scanner",
    schema="scanner",
    migrations_dir=Path(__file__).parent / "migrations",
    description="SBOM and lockfile scans, vulnerability database, findings, licenses",
    setup=setup,
)
