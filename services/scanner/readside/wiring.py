"""Registers the project reports on the scanner's runtime: ``svc.scanner.licenses``,
``policy_gate``, ``snapshot_diff``, ``sbom_export`` and ``notice``. No projection of their
own: they read the scans and licensing read models (and result blobs)."""

from __future__ import annotations

from contracts.rpc import scanner_licensing, scanner_reads
from services.scanner.readside.handlers import ReadHandlers
from shared.blobs import BlobStore
from shared.service import Runtime


async def setup(runtime: Runtime) -> None:
    handlers = ReadHandlers(
        pool=runtime.pool, blobs=await BlobStore.open(runtime.bus), settings=runtime.settings
    )
    for operation, request_type, handler in (
        (scanner_licensing.LICENSES, scanner_licensing.LicensesRequest, handlers.licenses),
        (scanner_reads.POLICY_GATE, scanner_reads.PolicyGateRequest, handlers.policy_gate),
        (scanner_reads.SNAPSHOT_DIFF, scanner_reads.DiffRequest, handlers.diff),
        (scanner_reads.SBOM_EXPORT, scanner_reads.SbomRequest, handlers.sbom),
        (scanner_reads.NOTICE, scanner_reads.NoticeRequest, handlers.notice),
    ):
        runtime.rpc.add(operation, request_type, handler)  # type: ignore[arg-type]
