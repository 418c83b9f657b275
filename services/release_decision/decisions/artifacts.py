"""Registry artifacts in the release gate: what the decisions projection records of them, and
the commits a change of an artifact decides again.

The scanner owns artifacts and the rule of which block matches which artifact; this
service learns from its events only:

* ``artifact.uploaded`` / ``artifact.promoted`` (a copy, in the destination's project):
  the artifact, its digest and its provenance (repo, commit) when the upload named one;
* ``artifact.scanned``: its scan on upload (verdict, the scan of the SBOM it carried, the
  advisories naming its own purl with their severities, malicious-package ones left to
  their blocks);
* ``artifact.blocked`` / ``artifact.unblocked``: the block applying to it, as the scanner
  says — the commit of its provenance is decided again (``artifact_blocked`` comes / goes);
* ``artifact.deleted`` and ``repository.deleted``: it is gone, and so is its blocker (a
  block names what may be downloaded; a deleted artifact is not shipped from here).
"""

from __future__ import annotations

import asyncpg
import msgspec

from contracts.envelope import Event
from contracts.events.registry import (
    ArtifactBlocked,
    ArtifactDeleted,
    ArtifactPromoted,
    ArtifactScanned,
    ArtifactUnblocked,
    ArtifactUploaded,
    Provenance,
    RepositoryDeleted,
)

ARTIFACT_EVENTS = (
    ArtifactUploaded,
    ArtifactPromoted,
    ArtifactScanned,
    ArtifactBlocked,
    ArtifactUnblocked,
    ArtifactDeleted,
    RepositoryDeleted,
)
_T = "release_decision.artifacts"


def provenance_key(provenance: Provenance | None) -> tuple[str | None, str | None]:
    """(repo, commit) as the read models key them; both None unless both are given."""
    if provenance is None or provenance.repo is None or provenance.commit is None:
        return None, None
    return provenance.repo.lower(), provenance.commit.lower()


async def apply_artifact_event(conn: asyncpg.Connection, event: Event) -> list[tuple[str, str]]:
    """Record the event; the (repo, commit) pairs whose decision it may change."""
    payload = event.payload
    seq = event.sequence
    if isinstance(payload, ArtifactUploaded):
        repo, commit = provenance_key(payload.provenance)
        await conn.execute(
            f"INSERT INTO {_T} (id, digest, repo_id, project_id, path, purl, prov_repo, "
            "prov_commit, uploaded_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (id) DO NOTHING",
            payload.id,
            payload.digest,
            payload.repo_id,
            payload.project_id,
            payload.path,
            payload.purl,
            repo,
            commit,
            seq,
        )
        return []
    if isinstance(payload, ArtifactPromoted):
        await conn.execute(
            f"INSERT INTO {_T} (id, digest, repo_id, project_id, path, purl, prov_repo, "
            "prov_commit, scan_status, scan_id, advisories, uploaded_seq) "
            "SELECT $1, s.digest, $2, coalesce($3, s.project_id), s.path, s.purl, s.prov_repo, "
            f"s.prov_commit, s.scan_status, s.scan_id, s.advisories, $4 FROM {_T} s "
            "WHERE s.id = $5 ON CONFLICT (id) DO NOTHING",
            payload.id,
            payload.to_repo_id,
            payload.to_project_id,
            seq,
            payload.source_artifact_id,
        )
        return []
    if isinstance(payload, ArtifactScanned):
        # Malicious-package advisories speak through their blocks (which an admin may lift
        # as a false positive): not as vulnerabilities of the artifact besides.
        severities = {
            a: payload.severities.get(a, "UNKNOWN")
            for a in payload.advisories
            if a not in payload.malicious
        }
        await conn.execute(
            f"UPDATE {_T} SET scan_status = $2, scan_id = $3, advisories = $4 WHERE id = $1",
            payload.id,
            payload.verdict,
            payload.scan_id,
            msgspec.to_builtins(severities),
        )
        return []
    if isinstance(payload, ArtifactBlocked):
        row = await conn.fetchrow(
            f"UPDATE {_T} SET block_id = $2, block_reason = $3 WHERE id = $1 AND NOT deleted "
            "RETURNING prov_repo, prov_commit",
            payload.id,
            payload.block_id,
            payload.reason,
        )
        return await _commits_of(conn, [row] if row else [])
    if isinstance(payload, ArtifactUnblocked):
        row = await conn.fetchrow(
            f"UPDATE {_T} SET block_id = NULL, block_reason = NULL WHERE id = $1 "
            "AND block_id IS NOT NULL RETURNING prov_repo, prov_commit",
            payload.id,
        )
        return await _commits_of(conn, [row] if row else [])
    if isinstance(payload, ArtifactDeleted):
        rows = await conn.fetch(
            f"UPDATE {_T} SET deleted = true WHERE id = $1 AND NOT deleted "
            "RETURNING prov_repo, prov_commit, block_id",
            payload.id,
        )
        return await _commits_of(conn, [r for r in rows if r["block_id"] is not None])
    if isinstance(payload, RepositoryDeleted):
        rows = await conn.fetch(
            f"UPDATE {_T} SET deleted = true WHERE repo_id = $1 AND NOT deleted "
            "RETURNING prov_repo, prov_commit, block_id",
            payload.id,
        )
        return await _commits_of(conn, [r for r in rows if r["block_id"] is not None])
    return []


async def _commits_of(
    conn: asyncpg.Connection, rows: list[asyncpg.Record]
) -> list[tuple[str, str]]:
    """The commits named by these artifacts' provenance: as named, and the decided commits
    of the repo it abbreviates or that abbreviate it (a decision exists under either)."""
    found: set[tuple[str, str]] = set()
    for row in rows:
        repo, commit = row["prov_repo"], row["prov_commit"]
        if repo is None or commit is None:
            continue
        found.add((repo, commit))
        decided = await conn.fetch(
            "SELECT commit FROM release_decision.decisions WHERE repo = $1 "
            "AND (starts_with(commit, $2) OR starts_with($2, commit))",
            repo,
            commit,
        )
        found.update((repo, r["commit"]) for r in decided)
    return sorted(found)
