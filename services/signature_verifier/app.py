"""Wiring of the signature-verifier service.

Its domain arrives with a later issue; today it starts, connects to the bus and the database,
owns its schema (`signature_verifier`), answers health and metrics, and projects nothing yet.
"""

from __future__ import annotations

from pathlib import Path

from shared.service import Runtime, ServiceDefinition


async def setup(runtime: Runtime) -> None:
    """Nothing to register until the signature-verifier domain lands."""


DEFINITION = ServiceDefinition(
    name="signature-verifier",
    schema="signature_verifier",
    migrations_dir=Path(__file__).parent / "migrations",
    description="git repositories, GPG keys and commit signature verification",
    setup=setup,
)
