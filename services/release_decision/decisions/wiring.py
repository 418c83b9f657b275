"""Registers the decisions part on the release-decision runtime: the ``decisions``
projection, the worker publishing ``release.decided``, and ``svc.release-decision.*``
(decisions, policy, promotions, health)."""

from __future__ import annotations

import os
import socket
import uuid

from services.release_decision.decisions import store
from services.release_decision.decisions.handlers import DecisionHandlers
from services.release_decision.decisions.projection import DecisionsProjection
from services.release_decision.decisions.publisher import DecidedPublisher
from services.release_decision.decisions.recorder import PUBLISH_JOB
from shared import jobs
from shared.blobs import BlobStore
from shared.service import Runtime

RUNNER_KEY = "decisions.runner"
WORKER_KEY = "decisions.worker"


async def setup(runtime: Runtime) -> None:
    blobs = await BlobStore.open(runtime.bus)
    runner = runtime.add_projection(DecisionsProjection(blobs=blobs))
    runtime.state[RUNNER_KEY] = runner
    handlers = DecisionHandlers(
        pool=runtime.pool, runner=runner, settings=runtime.settings, bus=runtime.bus
    )
    for operation, request_type, handler in handlers.endpoints():
        runtime.rpc.add(operation, request_type, handler)
    publisher = DecidedPublisher(bus=runtime.bus)

    async def caught_up() -> bool:
        return await jobs.projection_caught_up(runtime.bus, runner)

    worker = jobs.JobWorker(
        name="decisions",
        pool=runtime.pool,
        database_url=runtime.settings.database_url,
        table=store.JOBS_TABLE,
        kinds=(PUBLISH_JOB,),
        handler=publisher.run,
        caught_up=caught_up,
        wait_progress=jobs.progress_waiter(runner),
        owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        lease_seconds=runtime.settings.job_lease_seconds,
        max_attempts=runtime.settings.job_max_attempts,
        bus=runtime.bus,
    )
    runtime.state[WORKER_KEY] = worker

    async def started() -> None:
        worker.start()

    async def stopping() -> None:
        await worker.stop()

    runtime.on_started.append(started)
    runtime.on_stopping.append(stopping)
