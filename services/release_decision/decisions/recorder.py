"""Deciding a commit again inside the projection's transaction, and recording a change.

A change of (decision, blockers, policy version or scope, evidence refs, project) is a new
revision: the current row, one history row, and a job that publishes ``release.decided``
with a deterministic event id. ``evaluated_at`` is the causing event's time, never the
clock, so a replay writes identical rows; the job is finished by the ``release.decided`` it
published, so a replay finds every job done and publishes nothing again.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec

from contracts.envelope import Event
from contracts.events.releases import (
    BLOCKERS_MAX,
    Blocker,
    EvidenceRef,
    ReleaseDecided,
    VulnDbRef,
)
from services.release_decision.decisions import store
from services.release_decision.decisions.domain.model import Evidence
from services.release_decision.decisions.domain.rules import evaluate
from shared import jobs

# Fixed forever: release.decided event ids derive from it.
NAMESPACE = uuid.UUID("0f5c2d4e-8a61-5b7f-9d3e-2c4b6a8e1f05")
PUBLISH_JOB = "publish_decided"


def decided_event_id(repo: str, commit: str, revision: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"release.decided\x00{repo}\x00{commit}\x00{revision}"))


def evidence_ref(evidence: Evidence) -> EvidenceRef:
    snapshot = evidence.snapshot
    signature = evidence.signature
    if evidence.pending_scan_id is not None:
        scan_id, status = evidence.pending_scan_id, "pending"
    elif snapshot is not None:
        scan_id, status = snapshot.scan_id, "succeeded"
    else:
        scan_id, status = None, None
    return EvidenceRef(
        snapshot_id=scan_id,
        snapshot_status=status,
        sbom_digest=snapshot.sbom_digest if snapshot else None,
        result_digest=snapshot.result_digest if snapshot else None,
        signature_event_id=signature.event_id if signature else None,
        signature_verified=signature.verified if signature else None,
        vulndb=VulnDbRef(
            source="osv",
            version=snapshot.vulndb.version,
            imported_at=snapshot.vulndb.imported_at,
            digest=snapshot.vulndb.digest,
            matched_version=snapshot.vulndb.matched_version,
            advisory_count=snapshot.vulndb.advisory_count,
        )
        if snapshot is not None
        else None,
    )


def _blockers_json(blockers: tuple[Blocker, ...]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(b) for b in blockers[:BLOCKERS_MAX]]


async def decide(conn: asyncpg.Connection, repo: str, commit: str, event: Event) -> bool:
    """Evaluate (repo, commit) again; True when its decision changed (a new revision)."""
    loaded = await store.load_evidence(conn, repo, commit, at=event.envelope.occurred_at)
    result = evaluate(loaded.policy, loaded.evidence)
    blockers = _blockers_json(result.blockers)
    evidence = msgspec.to_builtins(evidence_ref(loaded.evidence))
    current = await conn.fetchrow(
        "SELECT revision, decision, blockers, blocker_total, policy_version, policy_scope, "
        "evidence, project_id FROM release_decision.decisions WHERE repo = $1 AND commit = $2",
        repo,
        commit,
    )
    if current is not None and (
        current["decision"],
        current["blockers"],
        current["blocker_total"],
        current["policy_version"],
        current["policy_scope"],
        current["evidence"],
        current["project_id"],
    ) == (
        result.decision,
        blockers,
        len(result.blockers),
        loaded.policy.version,
        loaded.policy.scope,
        evidence,
        loaded.project_id,
    ):
        return False
    revision = current["revision"] + 1 if current else 1
    at = event.envelope.occurred_at
    values = (
        repo,
        commit,
        revision,
        loaded.project_id,
        result.decision,
        blockers,
        len(result.blockers),
        loaded.policy.version,
        loaded.policy.scope,
        evidence,
        at,
        event.id,
        event.type,
        event.sequence,
    )
    await conn.execute(
        "INSERT INTO release_decision.decisions (repo, commit, revision, project_id, decision, "
        "blockers, blocker_total, policy_version, policy_scope, evidence, evaluated_at, "
        "cause_event_id, cause_event_type, seq) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) "
        "ON CONFLICT (repo, commit) DO UPDATE SET revision = EXCLUDED.revision, "
        "project_id = EXCLUDED.project_id, decision = EXCLUDED.decision, "
        "blockers = EXCLUDED.blockers, blocker_total = EXCLUDED.blocker_total, "
        "policy_version = EXCLUDED.policy_version, policy_scope = EXCLUDED.policy_scope, "
        "evidence = EXCLUDED.evidence, evaluated_at = EXCLUDED.evaluated_at, "
        "cause_event_id = EXCLUDED.cause_event_id, "
        "cause_event_type = EXCLUDED.cause_event_type, seq = EXCLUDED.seq",
        *values,
    )
    await conn.execute(
        "INSERT INTO release_decision.decision_history (repo, commit, revision, project_id, "
        "decision, blockers, blocker_total, policy_version, policy_scope, evidence, "
        "evaluated_at, cause_event_id, cause_event_type, seq) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        *values,
    )
    announced = ReleaseDecided(
        repo=repo,
        commit=commit,
        project_id=loaded.project_id,
        revision=revision,
        decision=result.decision,
        previous_decision=current["decision"] if current else None,
        blockers=list(result.blockers[:BLOCKERS_MAX]),
        blocker_total=len(result.blockers),
        previous_blockers=[msgspec.convert(b, Blocker) for b in current["blockers"]]
        if current
        else [],
        policy_version=loaded.policy.version,
        policy_scope=loaded.policy.scope,  # type: ignore[arg-type]
        evidence=evidence_ref(loaded.evidence),
        evaluated_at=at,
        cause_event_id=event.id,
        cause_event_type=event.type,
    )
    event_id = decided_event_id(repo, commit, revision)
    await jobs.enqueue(
        conn,
        store.JOBS_TABLE,
        job_id=event_id,
        kind=PUBLISH_JOB,
        payload={
            "event": msgspec.to_builtins(announced),
            "correlation_id": event.envelope.correlation_id,
        },
        sequence=event.sequence,
    )
    return True


async def decided_commits(
    conn: asyncpg.Connection, *, project_id: str | None = None, repos: list[str] | None = None
) -> list[tuple[str, str]]:
    """Commits that have a decision: of a project (None with no repos: all), or of repos."""
    if repos is not None:
        rows = await conn.fetch(
            "SELECT repo, commit FROM release_decision.decisions WHERE repo = ANY($1::text[]) "
            "ORDER BY repo, commit",
            repos,
        )
    elif project_id is not None:
        rows = await conn.fetch(
            "SELECT repo, commit FROM release_decision.decisions WHERE project_id = $1 "
            "ORDER BY repo, commit",
            project_id,
        )
    else:
        rows = await conn.fetch(
            "SELECT repo, commit FROM release_decision.decisions ORDER BY repo, commit"
        )
    return [(r["repo"], r["commit"]) for r in rows]
