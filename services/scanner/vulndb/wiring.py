"""Registers the vulnerability database on the scanner's runtime: the ``vulndb`` projection,
the in-memory matcher (``runtime.state["vulndb"]``) and ``svc.scanner.vulndb_*``."""

from __future__ import annotations

from contracts.rpc.scanner_vulndb import (
    ADVISORY,
    IMPORT_EPSS,
    IMPORT_OSV,
    STATUS,
    AdvisoryRequest,
    EpssImportRequest,
    OsvImportRequest,
    StatusRequest,
)
from services.scanner.vulndb.handlers import VulnDbHandlers
from services.scanner.vulndb.memory import VulnDb
from services.scanner.vulndb.prepared import PreparedImports
from services.scanner.vulndb.projection import VulnDbProjection
from shared.blobs import BlobStore
from shared.service import Runtime

STATE_KEY = "vulndb"


async def setup(runtime: Runtime) -> None:
    blobs = await BlobStore.open(runtime.bus)
    prepared = PreparedImports()
    runner = runtime.add_projection(VulnDbProjection(blobs=blobs, prepared=prepared))
    memory = VulnDb(runtime.pool, runner)
    runtime.state[STATE_KEY] = memory
    handlers = VulnDbHandlers(
        pool=runtime.pool,
        runner=runner,
        memory=memory,
        blobs=blobs,
        bus=runtime.bus,
        prepared=prepared,
    )
    runtime.rpc.add(IMPORT_OSV, OsvImportRequest, handlers.import_osv)
    runtime.rpc.add(IMPORT_EPSS, EpssImportRequest, handlers.import_epss)
    runtime.rpc.add(STATUS, StatusRequest, handlers.status)
    runtime.rpc.add(ADVISORY, AdvisoryRequest, handlers.advisory)

    async def started() -> None:
        memory.start()

    async def stopping() -> None:
        await memory.stop()

    async def loaded() -> tuple[str, bool, object]:
        # Not ready until the matcher holds the database: a scan would miss advisories.
        return "vulndb", memory.loaded, {"loaded": memory.loaded, "version": memory.version}

    runtime.on_started.append(started)
    runtime.on_stopping.append(stopping)
    runtime.readiness_checks.append(loaded)
