"""SQL of the decisions read model: the evidence tables (written by the projection) and the
reads that assemble one commit's evidence and policy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg
import msgspec

from contracts.events.releases import DecisionPolicyDocument
from contracts.events.scans import NOT_EFFECTIVE_STATES
from services.release_decision.decisions.domain.model import (
    BlockEvidence,
    EffectivePolicy,
    Evidence,
    FindingEvidence,
    SignatureEvidence,
    SnapshotEvidence,
    VulnDbEvidence,
)
from services.release_decision.decisions.domain.policy import effective_policy
from services.release_decision.decisions.domain.rules import blocking_severities

SCHEMA = "release_decision"
JOBS_TABLE = "release_decision.decision_jobs"
PROJECTION_TABLES = (
    "projects",
    "scans",
    "findings",
    "signatures",
    "heads",
    "policies",
    "promotions",
    "decisions",
    "decision_history",
    "decision_jobs",
    "vulndb_imports",
    "artifacts",
)
ORG_SCOPE = "org"

Queryable: TypeAlias = asyncpg.Connection | asyncpg.Pool


# ---- projects -------------------------------------------------------------------------------
async def project_for_repo(db: Queryable, repo: str) -> str | None:
    """The oldest project listing ``repo``."""
    value = await db.fetchval(
        "SELECT id FROM release_decision.projects WHERE $1 = ANY(repos) "
        "ORDER BY created_seq, id LIMIT 1",
        repo,
    )
    return str(value) if value is not None else None


async def repo_known(db: Queryable, repo: str) -> bool:
    """Some project lists the repo, or some evidence names it."""
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM release_decision.projects WHERE $1 = ANY(repos)) "
            "OR EXISTS (SELECT 1 FROM release_decision.scans WHERE repo = $1) "
            "OR EXISTS (SELECT 1 FROM release_decision.decisions WHERE repo = $1)",
            repo,
        )
    )


# ---- policy ---------------------------------------------------------------------------------
def policy_document(value: Any) -> DecisionPolicyDocument | None:
    if value is None:
        return None
    return msgspec.convert(value, DecisionPolicyDocument)


async def policy_rows(
    db: Queryable, project_id: str | None
) -> tuple[asyncpg.Record | None, asyncpg.Record | None]:
    rows = await db.fetch(
        "SELECT scope, version, document, updated_at, updated_by FROM release_decision.policies "
        "WHERE scope = $1 OR scope = $2",
        ORG_SCOPE,
        project_id or ORG_SCOPE,
    )
    org = next((r for r in rows if r["scope"] == ORG_SCOPE), None)
    project = next((r for r in rows if r["scope"] != ORG_SCOPE), None)
    return org, project


async def policy_for(db: Queryable, project_id: str | None) -> EffectivePolicy:
    org, project = await policy_rows(db, project_id)
    return effective_policy(
        org=policy_document(org["document"]) if org else None,
        org_version=org["version"] if org else 0,
        project=policy_document(project["document"]) if project else None,
        project_version=project["version"] if project else 0,
    )


# ---- evidence -------------------------------------------------------------------------------
class Loaded(msgspec.Struct, frozen=True, kw_only=True):
    evidence: Evidence
    project_id: str | None
    policy: EffectivePolicy


async def load_evidence(db: Queryable, repo: str, commit: str, *, at: dt.datetime) -> Loaded:
    """The commit's evidence at time ``at``: its newest succeeded scan with the findings
    still in it and the vulnerability database it was matched against, a newer
    queued/running scan, the latest signature verdict; and the policy in force for the
    project of the evidence scan (else of the pending scan, else the oldest project listing
    the repo)."""
    scans = await db.fetch(
        "SELECT scan_id, project_id, status, sbom_digest, result_digest, "
        "forbidden_license_count, vulndb_version, vulndb_advisories "
        "FROM release_decision.scans "
        "WHERE repo = $1 AND commit = $2 AND status IN ('queued', 'running', 'succeeded') "
        "ORDER BY queued_seq DESC",
        repo,
        commit,
    )
    pending: asyncpg.Record | None = None
    evidence_scan: asyncpg.Record | None = None
    for row in scans:
        if row["status"] == "succeeded":
            evidence_scan = row
            break
        if pending is None:
            pending = row
    source = evidence_scan or pending
    project_id = source["project_id"] if source else await project_for_repo(db, repo)
    policy = await policy_for(db, project_id)
    snapshot = await snapshot_of(db, evidence_scan, policy) if evidence_scan is not None else None
    signature = await signature_of(db, repo, commit)
    return Loaded(
        evidence=Evidence(
            repo=repo,
            commit=commit,
            snapshot=snapshot,
            pending_scan_id=pending["scan_id"] if pending else None,
            signature=signature,
            blocks=await blocks_of(db, repo, commit),
            evaluated_at=at,
        ),
        project_id=project_id,
        policy=policy,
    )


async def snapshot_of(
    db: Queryable, scan: asyncpg.Record, policy: EffectivePolicy
) -> SnapshotEvidence:
    """A succeeded scan (a row of ``scans``) with those of its findings still in it that
    may block under ``policy``: effective, and at a blocking severity or EPSS. The rules
    decide again on them; reading only these keeps a decision cheap on a snapshot of
    thousands of findings (a bulk triage decides once per finding)."""
    rows = await db.fetch(
        "SELECT finding_id, package, vulnerability_id, severity, epss, state, affected "
        "FROM release_decision.findings WHERE scan_id = $1 AND NOT gone AND affected "
        "AND state <> ALL($2::text[]) "
        "AND (severity = ANY($3::text[]) OR ($4::float8 IS NOT NULL AND epss >= $4))",
        scan["scan_id"],
        sorted(NOT_EFFECTIVE_STATES),
        list(blocking_severities(policy)),
        policy.epss_threshold,
    )
    newest = await newest_vulndb_import(db)
    return SnapshotEvidence(
        scan_id=scan["scan_id"],
        sbom_digest=scan["sbom_digest"],
        result_digest=scan["result_digest"],
        forbidden_license_count=scan["forbidden_license_count"],
        findings=tuple(
            FindingEvidence(
                id=r["finding_id"],
                package=r["package"],
                vulnerability_id=r["vulnerability_id"],
                severity=r["severity"],
                epss=r["epss"],
                state=r["state"],
                affected=r["affected"],
            )
            for r in rows
        ),
        vulndb=VulnDbEvidence(
            version=newest["seq"] if newest else 0,
            imported_at=newest["imported_at"] if newest else None,
            digest=newest["digest"] if newest else None,
            matched_version=scan["vulndb_version"],
            advisory_count=scan["vulndb_advisories"],
        ),
    )


async def newest_vulndb_import(db: Queryable) -> asyncpg.Record | None:
    """The newest OSV ``vulndb.updated`` this model applied (None: nothing imported)."""
    return await db.fetchrow(
        "SELECT seq, import_id, digest, imported_at FROM release_decision.vulndb_imports "
        "ORDER BY seq DESC LIMIT 1"
    )


async def signature_of(db: Queryable, repo: str, commit: str) -> SignatureEvidence | None:
    row = await db.fetchrow(
        "SELECT event_id, verified, reason FROM release_decision.signatures "
        "WHERE repo = $1 AND commit = $2",
        repo,
        commit,
    )
    if row is None:
        return None
    return SignatureEvidence(
        event_id=row["event_id"], verified=row["verified"], reason=row["reason"]
    )


async def blocks_of(db: Queryable, repo: str, commit: str) -> tuple[BlockEvidence, ...]:
    """The blocks that apply to the commit's live registry artifacts (their provenance
    names it, in full or abbreviated either way)."""
    rows = await db.fetch(
        "SELECT id, path, digest, block_id, block_reason FROM release_decision.artifacts "
        "WHERE prov_repo = $1 AND block_id IS NOT NULL AND NOT deleted "
        "AND (prov_commit = $2 OR starts_with($2, prov_commit) OR starts_with(prov_commit, $2)) "
        "ORDER BY uploaded_seq",
        repo,
        commit,
    )
    return tuple(block_evidence(row) for row in rows)


def block_evidence(row: asyncpg.Record) -> BlockEvidence:
    return BlockEvidence(
        block_id=row["block_id"],
        message=f"artifact {row['path']} ({row['digest']}) is blocked: {row['block_reason']}",
    )


async def scan_row(db: Queryable, scan_id: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        "SELECT scan_id, project_id, repo, commit, label, status, sbom_digest, result_digest, "
        "forbidden_license_count, vulndb_version, vulndb_advisories, updated_at "
        "FROM release_decision.scans WHERE scan_id = $1",
        scan_id,
    )


async def snapshot_decision_inputs(
    db: Queryable, scan: asyncpg.Record, *, at: dt.datetime
) -> Loaded:
    """The evidence of the scan's commit with THAT scan as its SBOM evidence (a promotion
    is decided on the snapshot promoted, whatever scans came after), at time ``at``."""
    repo, commit = scan["repo"], scan["commit"]
    policy = await policy_for(db, scan["project_id"])
    return Loaded(
        evidence=Evidence(
            repo=repo,
            commit=commit,
            snapshot=await snapshot_of(db, scan, policy),
            signature=await signature_of(db, repo, commit),
            blocks=await blocks_of(db, repo, commit),
            evaluated_at=at,
        ),
        project_id=scan["project_id"],
        policy=policy,
    )


# ---- scans and findings (projection side) ---------------------------------------------------
async def insert_scan(
    conn: asyncpg.Connection,
    *,
    scan_id: str,
    project_id: str,
    repo: str | None,
    commit: str | None,
    label: str | None,
    seq: int,
    at: dt.datetime,
    artifact_id: str | None = None,
) -> bool:
    """A scan of a commit, or of an SBOM a registry artifact carried (``artifact_id``;
    ``repo`` and ``commit`` None when the artifact names no provenance)."""
    return bool(
        await conn.fetchval(
            "INSERT INTO release_decision.scans (scan_id, project_id, repo, commit, label, "
            "status, queued_seq, updated_at, artifact_id) "
            "VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8) "
            "ON CONFLICT (scan_id) DO NOTHING RETURNING true",
            scan_id,
            project_id,
            repo,
            commit,
            label,
            seq,
            at,
            artifact_id,
        )
    )


async def scan_key(
    conn: asyncpg.Connection, scan_id: str
) -> tuple[str | None, str | None, str] | None:
    """(repo, commit, status) of a scan this model tracks (repo and commit None: the scan
    of an artifact's SBOM that names no commit)."""
    row = await conn.fetchrow(
        "SELECT repo, commit, status FROM release_decision.scans WHERE scan_id = $1", scan_id
    )
    return (row["repo"], row["commit"], row["status"]) if row else None


async def set_status(
    conn: asyncpg.Connection,
    scan_id: str,
    status: str,
    *,
    at: dt.datetime,
    only_from: Sequence[str],
) -> bool:
    return bool(
        await conn.fetchval(
            "UPDATE release_decision.scans SET status = $2, updated_at = $3 "
            "WHERE scan_id = $1 AND status = ANY($4::text[]) RETURNING true",
            scan_id,
            status,
            at,
            list(only_from),
        )
    )


async def complete_scan(
    conn: asyncpg.Connection,
    scan_id: str,
    *,
    sbom_digest: str,
    result_digest: str,
    forbidden_license_count: int,
    vulndb_version: int,
    vulndb_advisories: int,
    seq: int,
    at: dt.datetime,
) -> bool:
    return bool(
        await conn.fetchval(
            "UPDATE release_decision.scans SET status = 'succeeded', sbom_digest = $2, "
            "result_digest = $3, forbidden_license_count = $4, completed_seq = $5, "
            "updated_at = $6, vulndb_version = $7, vulndb_advisories = $8 "
            "WHERE scan_id = $1 AND status IN ('queued', 'running') RETURNING true",
            scan_id,
            sbom_digest,
            result_digest,
            forbidden_license_count,
            seq,
            at,
            vulndb_version,
            vulndb_advisories,
        )
    )


async def insert_findings(
    conn: asyncpg.Connection, scan_id: str, rows: Sequence[tuple[Any, ...]]
) -> None:
    """``rows``: (finding_id, package, vulnerability_id, severity, epss, state, affected).
    COPY: a snapshot brings thousands at once, and its findings are new (a scan completes
    once)."""
    if not rows:
        return
    await conn.copy_records_to_table(
        "findings",
        schema_name=SCHEMA,
        columns=[
            "finding_id",
            "package",
            "vulnerability_id",
            "severity",
            "epss",
            "state",
            "affected",
            "scan_id",
        ],
        records=[(*row, scan_id) for row in rows],
    )


async def upsert_finding(conn: asyncpg.Connection, scan_id: str, row: tuple[Any, ...]) -> None:
    """A finding a re-match found: new, or back after it had gone (same id)."""
    await conn.execute(
        "INSERT INTO release_decision.findings (finding_id, scan_id, package, "
        "vulnerability_id, severity, epss, state, affected) "
        "VALUES ($1, $8, $2, $3, $4, $5, $6, $7) ON CONFLICT (finding_id) DO UPDATE SET "
        "severity = EXCLUDED.severity, epss = EXCLUDED.epss, state = EXCLUDED.state, "
        "affected = EXCLUDED.affected, gone = false, resolved_reason = NULL",
        *row,
        scan_id,
    )
