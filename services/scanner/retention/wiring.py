"""Registers retention on the scanner's runtime: the ``retention`` projection,
``svc.scanner.retention_*``, the run worker and (``GATEHOUSE_RETENTION_INTERVAL_SECONDS``
> 0) the periodic runs of every enabled policy. Set up after the registry: runs delete
through the registry's projection."""

from __future__ import annotations

import asyncio

from contracts.rpc import retention as rpc
from services.scanner.registry.projection import NAME as REGISTRY
from services.scanner.retention import store
from services.scanner.retention.handlers import RetentionHandlers
from services.scanner.retention.projection import RetentionProjection
from services.scanner.retention.runs import RUN_JOB, RetentionRuns, every_interval, stop_task
from shared import jobs
from shared.rpc import Operation
from shared.service import Runtime

WORKER_KEY = "retention.worker"
TIMER_KEY = "retention.interval"
READ_CONCURRENCY = 4


async def setup(runtime: Runtime) -> None:
    registry = runtime.runners.get(REGISTRY)
    if registry is None:
        raise RuntimeError("retention needs the registry projection: set up the registry first")
    runner = runtime.add_projection(RetentionProjection())
    settings = runtime.settings
    runs = RetentionRuns(pool=runtime.pool, bus=runtime.bus, registry=registry)

    async def caught_up() -> bool:
        # A plan reads the artifacts (registry) and the policy (retention) as they are now.
        return await jobs.projection_caught_up(
            runtime.bus, runner
        ) and await jobs.projection_caught_up(runtime.bus, registry)

    worker = jobs.JobWorker(
        name="retention",
        pool=runtime.pool,
        database_url=settings.database_url,
        table=store.JOBS_TABLE,
        kinds=(RUN_JOB,),
        handler=runs.run,
        caught_up=caught_up,
        wait_progress=jobs.progress_waiter(runner),
        owner=jobs.worker_owner(),
        lease_seconds=settings.job_lease_seconds,
        max_attempts=settings.job_max_attempts,
        bus=runtime.bus,
    )
    runtime.state[WORKER_KEY] = worker
    handlers = RetentionHandlers(
        pool=runtime.pool,
        bus=runtime.bus,
        runner=runner,
        settings=settings,
        wake=worker.wake,
    )
    writes: tuple[Operation, ...] = (
        (rpc.RETENTION_CREATE, rpc.RetentionCreateRequest, handlers.create),
        (rpc.RETENTION_REPLACE, rpc.RetentionReplaceRequest, handlers.replace),
        (rpc.RETENTION_DELETE, rpc.RetentionDeleteRequest, handlers.delete),
        (rpc.RETENTION_RUN, rpc.RetentionRunRequest, handlers.run),
    )
    reads: tuple[Operation, ...] = (
        (rpc.RETENTION_LIST, rpc.RetentionListRequest, handlers.list),
        (rpc.RETENTION_GET, rpc.RetentionRef, handlers.get),
        (rpc.RETENTION_RUN_GET, rpc.RetentionRunRef, handlers.run_get),
        (rpc.RETENTION_RUN_LIST, rpc.RetentionRunListRequest, handlers.run_list),
    )
    runtime.rpc.add_all(writes)
    runtime.rpc.add_all(reads, concurrency=READ_CONCURRENCY)

    async def started() -> None:
        worker.start()
        if settings.retention_interval_seconds > 0:
            runtime.state[TIMER_KEY] = asyncio.create_task(
                every_interval(runtime.pool, runner, float(settings.retention_interval_seconds)),
                name="retention:interval",
            )

    async def stopping() -> None:
        await stop_task(runtime.state.pop(TIMER_KEY, None))
        await worker.stop()

    runtime.on_started.append(started)
    runtime.on_stopping.append(stopping)
