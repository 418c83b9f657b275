"""Registers triage on the scanner's runtime: ``svc.scanner.finding_triage``,
``bulk_transition``, ``vex_import`` and ``vex_export``. It has no projection of its own:
``finding.triaged`` is applied by the scans projection (findings and the triage memory), so
this part is set up after scans."""

from __future__ import annotations

from contracts.rpc import scanner_triage as rpc
from services.scanner.triage.handlers import TriageHandlers
from shared.blobs import BlobStore
from shared.service import Runtime


async def setup(runtime: Runtime) -> None:
    runner = runtime.runners.get("scans")
    if runner is None:
        raise RuntimeError("triage needs the scans projection: set up scans first")
    handlers = TriageHandlers(
        runtime=runtime, runner=runner, blobs=await BlobStore.open(runtime.bus)
    )
    for operation, request_type, handler in (
        (rpc.FINDING_TRIAGE, rpc.FindingTriageRequest, handlers.triage),
        (rpc.BULK_TRANSITION, rpc.BulkTransitionRequest, handlers.bulk),
        (rpc.VEX_IMPORT, rpc.VexImportRequest, handlers.vex_import),
        (rpc.VEX_EXPORT, rpc.VexExportRequest, handlers.vex_export),
    ):
        runtime.rpc.add(operation, request_type, handler)  # type: ignore[arg-type]
