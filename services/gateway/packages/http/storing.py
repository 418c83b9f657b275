"""Storing an upload: commit its staged blobs, register the artifact with the scanner, and
take everything back if the registration is refused — nothing half-stored, no event.

The scanner learns of an artifact only through ``artifact_register``, which publishes
``artifact.uploaded``; a refusal (409 exists, quota, a format mismatch, an outage)
publishes nothing there, and here every blob that *this* upload created is deleted again:
the artifact blob (and the wheel's METADATA blob) and the PEP 770 SBOMs put into the
evidence store for the scan.

Two uploads of the same bytes may race (the same file twice, or one wheel's METADATA
shared by its per-platform siblings). Commit, register and the clean-up therefore run
under an advisory lock per digest (on every gateway replica): while one upload holds it,
no other can find "its" blob already present and register against a blob that the first
is about to delete.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from contracts.rpc import registry as rpc
from services.gateway.deps import GatewayDeps
from services.gateway.packages.http.access import ask_scanner
from services.gateway.routing import RequestContext
from services.gateway.uploads import gateway_blobs
from shared.artifact_blobs import Staged
from shared.blobs import digest_of
from shared.errors import GatehouseError, UpstreamUnavailable
from shared.logging import get_logger

log = get_logger(__name__)


@dataclass
class Stored:
    """What one upload has put where, so that a refusal can take exactly that back."""

    artifact_blobs: list[str] = field(default_factory=list)
    evidence_blobs: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def staging(deps: GatewayDeps) -> AsyncIterator[list[Staged]]:
    """A list to put staged files in; each is discarded at the end (a no-op once
    committed), whatever happened."""
    staged: list[Staged] = []
    try:
        yield staged
    finally:
        for item in staged:
            try:
                await deps.artifact_blobs.discard(item)
            except Exception as exc:  # the temporary file stays for the operator to remove
                log.warning("staged_discard_failed", path=str(item.path), error=repr(exc))


async def store_and_register(
    ctx: RequestContext,
    deps: GatewayDeps,
    *,
    staged: list[Staged],
    evidence: list[bytes],
    request: rpc.ArtifactRegisterRequest,
) -> rpc.Artifact:
    """Commit ``staged`` (the artifact first), put ``evidence`` (SBOMs) into the evidence
    blob store, then register ``request``; on any failure delete what was created here."""
    digests = [item.digest for item in staged] + [digest_of(data) for data in evidence]
    stored = Stored()
    async with deps.writer.locked(*(f"artifact-blob:{d}" for d in digests)):
        try:
            for item in staged:
                if await deps.artifact_blobs.commit(item):
                    stored.artifact_blobs.append(item.digest)
            if evidence:
                store = await gateway_blobs(ctx)
                for data in evidence:
                    digest = digest_of(data)
                    if not await store.exists(digest):
                        await store.put(data)
                        stored.evidence_blobs.append(digest)
        except BaseException:
            await _take_back(ctx, deps, stored)
            raise
        try:
            return await ask_scanner(ctx, deps, rpc.ARTIFACT_REGISTER, request, rpc.Artifact)
        except GatehouseError as exc:
            if refused(exc):
                await _take_back(ctx, deps, stored)
            else:
                # The scanner may have registered it (a timeout, a lost connection): an
                # orphan blob is harmless, an artifact without its blob is not.
                log.warning("artifact_register_outcome_unknown", code=exc.code, digests=digests)
            raise
        except BaseException:
            log.warning("artifact_register_outcome_unknown", digests=digests)
            raise


def refused(exc: GatehouseError) -> bool:
    """Whether the scanner certainly did not register the artifact: it refused it (4xx,
    507 quota), or no scanner received the request."""
    return exc.status < 500 or exc.status == 507 or exc.code == UpstreamUnavailable.code


async def _take_back(ctx: RequestContext, deps: GatewayDeps, stored: Stored) -> None:
    for digest in stored.artifact_blobs:
        try:
            await deps.artifact_blobs.delete(digest)
        except Exception as exc:
            log.warning("artifact_blob_cleanup_failed", digest=digest, error=repr(exc))
    if stored.evidence_blobs:
        store = await gateway_blobs(ctx)
        for digest in stored.evidence_blobs:
            try:
                await store.delete(digest)
            except Exception as exc:
                log.warning("evidence_blob_cleanup_failed", digest=digest, error=repr(exc))
