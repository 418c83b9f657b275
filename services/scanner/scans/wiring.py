"""Registers scans on the scanner's runtime: the scans projection (``scan.*``, ``finding.*``,
``vulndb.updated``), the job worker that runs scans and re-matches, and the
``svc.scanner.scan_*`` / project-read endpoints."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

from contracts.rpc import scanner_scans as rpc
from services.scanner.scans import store
from services.scanner.scans.handlers import ScanHandlers
from services.scanner.scans.projection import REMATCH_JOB, SCAN_JOB, ScansProjection
from services.scanner.scans.rematch import RematchWorker
from services.scanner.scans.worker import ScanWorker, reader_for
from shared import jobs
from shared.blobs import BlobStore
from shared.bounded import BoundedRunner, ChildFailedToStart
from shared.logging import get_logger
from shared.service import Runtime

WORKER_KEY = "scans.worker"
READER_KEY = "scans.reader_warming"

log = get_logger(__name__)


async def setup(runtime: Runtime) -> None:
    blobs = await BlobStore.open(runtime.bus)
    runner = runtime.add_projection(ScansProjection(blobs=blobs))
    handlers = ScanHandlers(runtime=runtime, runner=runner, blobs=blobs)
    for operation, request_type, handler in (
        (rpc.SCAN_SUBMIT, rpc.ScanSubmitRequest, handlers.submit),
        (rpc.SCAN_GET, rpc.ScanRef, handlers.get),
        (rpc.SCAN_LOG, rpc.ScanLogRequest, handlers.log),
        (rpc.SCAN_LIST, rpc.ScanListRequest, handlers.list),
        (rpc.SCAN_CANCEL, rpc.ScanCancelRequest, handlers.cancel),
        (rpc.SCAN_DELETE, rpc.ScanDeleteRequest, handlers.delete),
        (rpc.COMPONENTS, rpc.ComponentsRequest, handlers.components),
        (rpc.VULNERABILITIES, rpc.VulnerabilitiesRequest, handlers.vulnerabilities),
        (rpc.SNAPSHOTS, rpc.SnapshotRequest, handlers.snapshots),
        (rpc.FINDING_GET, rpc.FindingRef, handlers.finding),
        (rpc.DETECTION_FINDINGS, rpc.DetectionFindingsRequest, handlers.detection_findings),
    ):
        runtime.rpc.add(operation, request_type, handler)  # type: ignore[arg-type]

    reader = reader_for(runtime.settings)
    scans = ScanWorker(runtime=runtime, blobs=blobs, reader=reader)
    rematches = RematchWorker(runtime=runtime, blobs=blobs)

    async def run(job: jobs.Job) -> None:
        if job.kind == SCAN_JOB:
            await scans.run_scan(job)
        else:
            await rematches.run(job)

    async def give_up(job: jobs.Job) -> None:
        if job.kind == SCAN_JOB:
            await scans.give_up_scan(job)
        else:
            await rematches.give_up(job)

    async def caught_up() -> bool:
        return await jobs.projection_caught_up(runtime.bus, runner)

    worker = jobs.JobWorker(
        name="scans",
        pool=runtime.pool,
        database_url=runtime.settings.database_url,
        table=store.JOBS_TABLE,
        kinds=(SCAN_JOB, REMATCH_JOB),
        handler=run,
        caught_up=caught_up,
        wait_progress=jobs.progress_waiter(runner),
        owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        lease_seconds=runtime.settings.job_lease_seconds,
        max_attempts=runtime.settings.job_max_attempts,
        bus=runtime.bus,
        give_up=give_up,
    )
    runtime.state[WORKER_KEY] = worker

    async def started() -> None:
        if reader is not None:
            # Warm before the first scan, off the start-up path; a child that cannot start
            # (a memory bound below what it needs to import) is said here and by each scan.
            runtime.state[READER_KEY] = asyncio.create_task(_warm(reader))
        worker.start()

    async def stopping() -> None:
        await worker.stop()
        if reader is not None:
            await reader.close()

    runtime.on_started.append(started)
    runtime.on_stopping.append(stopping)


async def _warm(reader: BoundedRunner) -> None:
    try:
        await reader.start()
    except ChildFailedToStart as exc:
        log.error("scan_reader_failed_to_start", error=str(exc))
