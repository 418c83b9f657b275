"""Wiring of the scanner service: the vulnerability database, then scans (which match
against it), then triage (whose events the scans projection applies), licensing (the policy
scans classify with, re-evaluated snapshots), the reports, the artifact registry's metadata
(repositories, artifacts, blocks, quarantine), who pulled them and their retention, and
search over them. Each part registers its own projections, workers and request/reply
endpoints."""

from __future__ import annotations

from pathlib import Path

from services.scanner.licensing import wiring as licensing
from services.scanner.pulls import wiring as pulls
from services.scanner.readside import wiring as readside
from services.scanner.registry import wiring as registry
from services.scanner.retention import store as retention_store
from services.scanner.retention import wiring as retention
from services.scanner.scans import wiring as scans
from services.scanner.search import wiring as search
from services.scanner.triage import wiring as triage
from services.scanner.vulndb import wiring as vulndb
from shared.service import Runtime, ServiceDefinition


async def setup(runtime: Runtime) -> None:
    await vulndb.setup(runtime)
    await scans.setup(runtime)
    await triage.setup(runtime)
    await licensing.setup(runtime)
    await readside.setup(runtime)
    await registry.setup(runtime)
    await pulls.setup(runtime)
    await retention.setup(runtime)
    await search.setup(runtime)


DEFINITION = ServiceDefinition(
    name="scanner",
    schema="scanner",
    migrations_dir=Path(__file__).parent / "migrations",
    description=(
        "SBOM and lockfile scans, vulnerability database, findings, licenses, "
        "registry metadata, blocks, quarantine, who pulled and retention"
    ),
    setup=setup,
    # Retention runs are jobs of the scanner, not events: backed up, not replayed.
    unreplayable_tables=retention_store.KEPT_TABLES,
)
