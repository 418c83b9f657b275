"""Registers triage on the scanner's runtime: ``svc.scanner.finding_triage``,
``bulk_transition``, ``vex_import`` and ``vex_export``. It has no projection of its own:
``finding.triaged`` is applied by the scans projection (findings and the triage memory), so
this part is set up after scans."""

from __future__ import annotations

from contracts.rpc import scanner_triage as rpc
from services.scanner.triage.handlers import TriageHandlers
from services.scanner.triage.record import Recorder
from services.scanner.triage.vex import VexHandlers
from shared.blobs import BlobStore
from shared.service import Runtime


async def setup(runtime: Runtime) -> None:
    runner = runtime.runners.get("scans")
    if runner is None:
        raise RuntimeError("triage needs the scans projection: set up scans first")
    recorder = Recorder(runtime=runtime, runner=runner)
    triage = TriageHandlers(recorder=recorder)
    vex = VexHandlers(recorder=recorder, blobs=await BlobStore.open(runtime.bus))
    for operation, request_type, handler in (
        (rpc.FINDING_TRIAGE, rpc.FindingTriageRequest, triage.triage),
        (rpc.BULK_TRANSITION, rpc.BulkTransitionRequest, triage.bulk),
        (rpc.VEX_IMPORT, rpc.VexImportRequest, vex.vex_import),
        (rpc.VEX_EXPORT, rpc.VexExportRequest, vex.vex_export),
    ):
        runtime.rpc.add(operation, request_type, handler)  # type: ignore[arg-type]
