"""Registers the registry on the scanner's runtime: the ``registry`` projection and
``svc.scanner.repository_*`` / ``artifact_*`` / ``block_*`` / ``quarantine_*``.

The reads the package protocols ask on every ``pip install`` (fetch, index) and the metadata
reads answer several requests at once; commands keep the default one at a time per process
(they serialise on their aggregate's lock across replicas anyway)."""

from __future__ import annotations

from typing import Any

from contracts.rpc import registry as rpc
from services.scanner.registry.artifacts import ArtifactHandlers
from services.scanner.registry.blocks import BlockHandlers
from services.scanner.registry.handlers import RepositoryHandlers
from services.scanner.registry.projection import RegistryProjection
from shared.service import Runtime

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
    writes: tuple[tuple[str, type, Any], ...] = (
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
    )
    reads: tuple[tuple[str, type, Any], ...] = (
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
    for operation, request_type, handler in writes:
        runtime.rpc.add(operation, request_type, handler)
    for operation, request_type, handler in reads:
        runtime.rpc.add(operation, request_type, handler, concurrency=READ_CONCURRENCY)
