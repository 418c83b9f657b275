"""Helpers for the who-pulled and retention tests (no tests here): downloads recorded as the
gateway records them, uploads of another time and promotions published as their owners
publish them, and waiting for the projections."""

from __future__ import annotations

import datetime as dt
import uuid

from contracts.events.registry import ArtifactPromoted, ArtifactUploaded, DownloadRecorded
from contracts.rpc import registry as rpc
from services.scanner.pulls.projection import NAME as PULLS
from services.scanner.registry.projection import NAME as REGISTRY
from tests.integration.registry_meta_support import MISSING_SBOM, Registry, digest_of


async def record_download(
    r: Registry,
    artifact: rpc.Artifact,
    *,
    principal: str = "anonymous",
    address: str = "192.0.2.10",
    at: dt.datetime | None = None,
) -> int:
    """A ``download.recorded`` as the gateway's download handlers publish it; returns its
    stream sequence."""
    published = await r.api.runtime.bus.publish_acked(
        DownloadRecorded(
            artifact_id=artifact.id,
            repo_id=artifact.repo_id,
            project_id=artifact.project_id,
            digest=artifact.digest,
            purl=artifact.purl,
            principal=principal,
            address=address,
        ),
        aggregate=f"artifact:{artifact.id}",
        actor=principal,
        occurred_at=at,
    )
    return published.sequence


async def pulls_applied(r: Registry, sequence: int) -> None:
    await r.scanner.runners[PULLS].wait_for(sequence, timeout=10)


async def upload_at(
    r: Registry,
    repo: dict[str, object],
    path: str,
    *,
    name: str,
    version: str,
    at: dt.datetime,
    quarantined: bool = False,
) -> str:
    """An ``artifact.uploaded`` of another time (as an import or a replay brings one), as the
    scanner publishes it; returns the artifact's id once the registry shows it."""
    artifact_id = "art_" + uuid.uuid4().hex
    published = await r.scanner.bus.publish_acked(
        ArtifactUploaded(
            id=artifact_id,
            repo_id=str(repo["id"]),
            project_id=str(repo["project_id"]),
            format="pypi",
            path=path,
            kind="wheel",
            digest=digest_of(path),
            size=1000,
            name=name,
            version=version,
            purl=f"pkg:pypi/{name}@{version}",
            uploaded_by="apikey:uploader",
            quarantined=quarantined,
            # Held: an SBOM that is not stored fails its scan on upload, so it stays held.
            sbom_digests=[MISSING_SBOM] if quarantined else [],
        ),
        aggregate=f"artifact:{artifact_id}",
        actor="apikey:uploader",
        occurred_at=at,
    )
    await r.scanner.runners[REGISTRY].wait_for(published.sequence, timeout=10)
    return artifact_id


async def promote(r: Registry, source: str, *, from_repo: str, to_repo: str) -> str:
    """An ``artifact.promoted`` as promotion publishes it; returns the copy's id."""
    copy_id = "art_" + uuid.uuid4().hex
    found = await r.ask(rpc.ARTIFACT_GET, rpc.ArtifactGetRequest(id=source), rpc.Artifact)
    published = await r.scanner.bus.publish_acked(
        ArtifactPromoted(
            id=copy_id,
            source_artifact_id=source,
            from_repo_id=from_repo,
            to_repo_id=to_repo,
            digest=found.digest,
        ),
        aggregate=f"artifact:{copy_id}",
        actor="apikey:releaser",
    )
    await r.scanner.runners[REGISTRY].wait_for(published.sequence, timeout=10)
    return copy_id
