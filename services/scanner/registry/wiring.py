"""Registers the registry on the scanner's runtime: the ``registry`` projection,
``svc.scanner.repository_*`` / ``artifact_*`` / ``block_*`` / ``quarantine_*``, and the job
worker of the scan on upload and of the blocks' effect on stored artifacts
(``scanning.py``).

The reads the package protocols ask on every ``pip install`` (fetch, index) and the metadata
reads answer several requests at once; commands keep the default one at a time per process
(they serialise on their aggregate's lock across replicas anyway)."""

from __future__ import annotations

from typing import Any

from contracts.rpc import registry as rpc
from services.scanner.registry import store
from services.scanner.registry.artifacts import ArtifactHandlers
from services.scanner.registry.block_state import BlockStates
from services.scanner.registry.blocks import BlockHandlers
from services.scanner.registry.handlers import RepositoryHandlers
from services.scanner.registry.projection import RegistryProjection
from services.scanner.registry.promotion import PromotionHandlers
from services.scanner.registry.scanning import KINDS, RegistryJobs
from shared import jobs
from shared.blobs import BlobStore
from shared.rpc import Operation
from shared.service import Runtime

WORKER_KEY = "registry.worker"

# Concurrent answers of one read endpoint: each holds a pooled connection for a few queries.
READ_CONCURRENCY = 4


async def setup(runtime: Runtime) -> None:
    runner = runtime.add_projection(RegistryProjection())
    common = {
        "pool": runtime.pool,
        "bus": runtime.bus,
        "runner": runner,
        "settings": runtime.settings,
    }
    repositories = RepositoryHandlers(**common)  # type: ignore[arg-type]
    artifacts = ArtifactHandlers(**common)  # type: ignore[arg-type]
    blocks = BlockHandlers(**common)  # type: ignore[arg-type]
    promotions = PromotionHandlers(**common)  # type: ignore[arg-type]
    writes: tuple[Operation, ...] = (
        (rpc.REPOSITORY_CREATE, rpc.RepositoryCreateRequest, repositories.create),
        (rpc.REPOSITORY_UPDATE, rpc.RepositoryUpdateRequest, repositories.update),
        (rpc.REPOSITORY_DELETE, rpc.RepositoryDeleteRequest, repositories.delete),
        (rpc.ARTIFACT_REGISTER, rpc.ArtifactRegisterRequest, artifacts.register),
        (rpc.ARTIFACT_REMOVE, rpc.ArtifactRemoveRequest, artifacts.remove),
        (rpc.BLOCK_CREATE, rpc.BlockBody, blocks.create),
        (rpc.BLOCK_UPDATE, rpc.BlockUpdateRequest, blocks.update),
        (rpc.BLOCK_DELETE, rpc.BlockDeleteRequest, blocks.delete),
        (rpc.QUARANTINE_RELEASE, rpc.QuarantineDecisionRequest, blocks.release),
        (rpc.QUARANTINE_REJECT, rpc.QuarantineDecisionRequest, blocks.reject),
        (rpc.ARTIFACT_PROMOTE, rpc.ArtifactPromoteRequest, promotions.promote),
    )
    reads: tuple[Operation, ...] = (
        (rpc.REPOSITORY_LIST, rpc.RepositoryListRequest, repositories.list),
        (rpc.REPOSITORY_GET, rpc.RepositoryRef, repositories.get),
        (rpc.ARTIFACT_FETCH, rpc.ArtifactFetchRequest, artifacts.fetch),
        (rpc.ARTIFACT_INDEX, rpc.ArtifactIndexRequest, artifacts.index),
        (rpc.ARTIFACT_LIST, rpc.ArtifactListRequest, artifacts.list),
        (rpc.ARTIFACT_GET, rpc.ArtifactGetRequest, artifacts.get),
        (rpc.ARTIFACT_DIGEST_USES, rpc.DigestUsesRequest, artifacts.digest_uses),
        (rpc.BLOCK_LIST, rpc.BlockListRequest, blocks.list),
        (rpc.BLOCK_GET, rpc.BlockRequest, blocks.get),
        (rpc.QUARANTINE_LIST, rpc.QuarantineListRequest, blocks.quarantine_list),
    )
    runtime.rpc.add_all(writes)
    runtime.rpc.add_all(reads, concurrency=READ_CONCURRENCY)
    await _setup_jobs(runtime, runner)


async def _setup_jobs(runtime: Runtime, runner: Any) -> None:
    settings = runtime.settings
    states = BlockStates(pool=runtime.pool, bus=runtime.bus, runner=runner, settings=settings)
    work = RegistryJobs(
        runtime=runtime, runner=runner, blobs=await BlobStore.open(runtime.bus), states=states
    )

    async def caught_up() -> bool:
        return await jobs.projection_caught_up(runtime.bus, runner)

    worker = jobs.JobWorker(
        name="registry",
        pool=runtime.pool,
        database_url=settings.database_url,
        table=store.JOBS_TABLE,
        kinds=KINDS,
        handler=work.run,
        caught_up=caught_up,
        wait_progress=jobs.progress_waiter(runner),
        owner=jobs.worker_owner(),
        lease_seconds=settings.job_lease_seconds,
        max_attempts=settings.job_max_attempts,
        bus=runtime.bus,
        give_up=work.give_up,
    )
    runtime.state[WORKER_KEY] = worker

    async def started() -> None:
        worker.start()

    async def stopping() -> None:
        await worker.stop()

    runtime.on_started.append(started)
    runtime.on_stopping.append(stopping)
