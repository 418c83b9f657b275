"""Registers licensing on the scanner's runtime: the ``licensing`` projection, the policy
source scans classify with (``runtime.state["license_policy"]``), the ``relicense`` job
worker, the waiver-expiry loop and ``svc.scanner.license_policy_*`` /
``license_waiver_*``. Set up after scans: the job worker also waits for the scans
projection (it reads the snapshot's components)."""

from __future__ import annotations

import os
import socket
import uuid

from contracts.rpc import scanner_licensing as rpc
from services.scanner.licensing import store
from services.scanner.licensing.expiry import WaiverExpiry
from services.scanner.licensing.handlers import LicensingHandlers
from services.scanner.licensing.projection import RELICENSE_JOB, LicensingProjection
from services.scanner.licensing.relicense import RelicenseWorker
from services.scanner.licensing.source import PolicySource
from services.scanner.scans.sources import LICENSE_POLICY_KEY
from shared import jobs
from shared.blobs import BlobStore
from shared.service import Runtime

WORKER_KEY = "licensing.worker"
EXPIRY_KEY = "licensing.expiry"


async def setup(runtime: Runtime) -> None:
    scans_runner = runtime.runners.get("scans")
    if scans_runner is None:
        raise RuntimeError("licensing needs the scans projection: set up scans first")
    blobs = await BlobStore.open(runtime.bus)
    runner = runtime.add_projection(LicensingProjection())
    runtime.state[LICENSE_POLICY_KEY] = PolicySource(
        pool=runtime.pool, bus=runtime.bus, runner=runner
    )
    expiry = WaiverExpiry(pool=runtime.pool, bus=runtime.bus)
    runtime.state[EXPIRY_KEY] = expiry
    handlers = LicensingHandlers(
        pool=runtime.pool,
        runner=runner,
        settings=runtime.settings,
        bus=runtime.bus,
        expiry=expiry,
    )
    for operation, request_type, handler in (
        (rpc.POLICY_GET, rpc.PolicyGetRequest, handlers.policy_get),
        (rpc.POLICY_PUT, rpc.PolicyPutRequest, handlers.policy_put),
        (rpc.POLICY_DELETE, rpc.PolicyDeleteRequest, handlers.policy_delete),
        (rpc.WAIVER_GRANT, rpc.WaiverGrantRequest, handlers.waiver_grant),
        (rpc.WAIVER_REVOKE, rpc.WaiverRevokeRequest, handlers.waiver_revoke),
        (rpc.WAIVER_LIST, rpc.WaiverListRequest, handlers.waiver_list),
        (rpc.WAIVER_GET, rpc.WaiverRef, handlers.waiver_get),
    ):
        runtime.rpc.add(operation, request_type, handler)  # type: ignore[arg-type]

    relicense = RelicenseWorker(pool=runtime.pool, bus=runtime.bus, blobs=blobs)

    async def caught_up() -> bool:
        # Both: the jobs come from licensing, the components they re-evaluate from scans.
        return await jobs.projection_caught_up(
            runtime.bus, runner
        ) and await jobs.projection_caught_up(runtime.bus, scans_runner)

    worker = jobs.JobWorker(
        name="licensing",
        pool=runtime.pool,
        database_url=runtime.settings.database_url,
        table=store.JOBS_TABLE,
        kinds=(RELICENSE_JOB,),
        handler=relicense.run,
        caught_up=caught_up,
        wait_progress=jobs.progress_waiter(runner),
        owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        lease_seconds=runtime.settings.job_lease_seconds,
        max_attempts=runtime.settings.job_max_attempts,
        bus=runtime.bus,
        give_up=relicense.give_up,
    )
    runtime.state[WORKER_KEY] = worker

    async def started() -> None:
        worker.start()
        expiry.start()

    async def stopping() -> None:
        await expiry.stop()
        await worker.stop()

    runtime.on_started.append(started)
    runtime.on_stopping.append(stopping)
