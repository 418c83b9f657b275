"""The decision of a registry artifact (``GET /api/v1/releases/decision?artifact=sha256:…``).

An artifact is the live registry artifacts of one digest (a promoted copy has the digest of
what it was copied from), decided as of now:

* **With provenance** (the upload named a repo and commit): the decision of that commit, as
  the gate answers it for ``?repo=&commit=`` — it already carries ``artifact_blocked`` for
  every blocked artifact of the commit — plus ``artifact_blocked`` for each blocked artifact
  of this digest. Several provenances (copies uploaded from different builds): the union of
  their blockers; ``repo``/``commit`` name the first (by repo, commit).
* **Without provenance**: the project's policy applied to the artifact's own evidence: the
  scan of the SBOM it carried (its findings, the vulnerability database it was matched
  against; ``no_evidence`` when the policy requires an SBOM and it carried none), the
  advisories naming its own purl (``vulnerability`` at a blocking severity), its blocks,
  ``evidence_pending`` while its scan on upload or its SBOM scan runs, and ``no_evidence``
  ``artifact_scan`` when its scan on upload failed. ``repo`` and ``commit`` are empty.

Nothing is stored: the answer is evaluated from the read model when asked (revision 0 for
an artifact without provenance; the commit decision's revision otherwise).
"""

from __future__ import annotations

import datetime as dt

import asyncpg
import msgspec

from contracts.events.registry import Provenance
from contracts.events.releases import Blocker
from contracts.rpc.release_decision import (
    ArtifactDecisionRef,
    ArtifactDecisionRequest,
    DecisionView,
)
from services.release_decision.decisions import store
from services.release_decision.decisions.domain.model import (
    EffectivePolicy,
    Evidence,
    FindingEvidence,
    SnapshotEvidence,
)
from services.release_decision.decisions.domain.rules import Vulnerabilities, evaluate
from services.release_decision.decisions.errors import ArtifactNotFound, RepoNotFound
from services.release_decision.decisions.queries import baseline_of, current_decision
from services.release_decision.decisions.recorder import evidence_ref

Queryable = store.Queryable
_COLUMNS = (
    "id, digest, project_id, path, purl, prov_repo, prov_commit, scan_status, scan_id, "
    "advisories, block_id, block_reason, uploaded_seq"
)


async def artifact_decision(db: Queryable, request: ArtifactDecisionRequest) -> DecisionView:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM release_decision.artifacts WHERE digest = $1 AND NOT deleted "
        "AND ($2::text[] IS NULL OR project_id = ANY($2)) ORDER BY uploaded_seq",
        request.digest,
        request.project_ids,
    )
    if not rows:
        raise ArtifactNotFound(f"no registry artifact {request.digest}")
    now = dt.datetime.now(dt.UTC)
    blocks = [store.block_evidence(r) for r in rows if r["block_id"] is not None]
    provenances = sorted({(r["prov_repo"], r["prov_commit"]) for r in rows if r["prov_repo"]})
    newest = rows[-1]
    ref = ArtifactDecisionRef(
        digest=request.digest,
        artifact_ids=[r["id"] for r in rows],
        scan_status=newest["scan_status"],
        scan_id=next((r["scan_id"] for r in reversed(rows) if r["scan_id"]), None),
        advisories=sorted({a for r in rows for a in (r["advisories"] or {})}),
        block_ids=sorted({b.block_id for b in blocks}),
    )
    own = [Blocker(code="artifact_blocked", message=b.message, ref=b.block_id) for b in blocks]
    if provenances:
        return await _with_provenance(db, provenances, own, ref, now=now)
    return await _own(db, rows, ref, now=now)


async def _with_provenance(
    db: Queryable,
    provenances: list[tuple[str, str]],
    own: list[Blocker],
    ref: ArtifactDecisionRef,
    *,
    now: dt.datetime,
) -> DecisionView:
    views = [await _commit_decision(db, repo, commit, now=now) for repo, commit in provenances]
    blockers = _merged([b for view in views for b in view.blockers] + own)
    first = views[0]
    return msgspec.structs.replace(
        first,
        decision="NO_SHIP" if blockers else "SHIP",
        blockers=blockers,
        blocker_total=len(blockers),
        artifact=msgspec.structs.replace(
            ref,
            provenance=Provenance(repo=provenances[0][0], commit=provenances[0][1]),
            commit_revision=first.revision,
        ),
    )


async def _commit_decision(
    db: Queryable, repo: str, commit: str, *, now: dt.datetime
) -> DecisionView:
    """The commit's decision; a repo nothing else knows is decided on no evidence (the
    artifact's provenance alone names it)."""
    try:
        return await current_decision(db, repo, commit)
    except RepoNotFound:
        loaded = await store.load_evidence(db, repo, commit, at=now)
        result = evaluate(loaded.policy, loaded.evidence)
        return DecisionView(
            repo=repo,
            commit=commit,
            project_id=loaded.project_id,
            decision=result.decision,
            blockers=list(result.blockers),
            blocker_total=len(result.blockers),
            baseline=await baseline_of(db, repo),
            evaluated_at=now,
            policy_version=loaded.policy.version,
            policy_scope=loaded.policy.scope,  # type: ignore[arg-type]
            revision=0,
            evidence=evidence_ref(loaded.evidence),
        )


async def _own(
    db: Queryable, rows: list[asyncpg.Record], ref: ArtifactDecisionRef, *, now: dt.datetime
) -> DecisionView:
    newest = rows[-1]
    project_id = newest["project_id"]
    policy = await store.policy_for(db, project_id)
    scan = await store.scan_row(db, ref.scan_id) if ref.scan_id else None
    own_findings = own_purl_findings(rows)
    snapshot = None
    pending = None
    if scan is not None and scan["status"] == "succeeded":
        found = await store.snapshot_of(db, scan, policy)
        snapshot = msgspec.structs.replace(found, findings=(*found.findings, *own_findings))
    elif scan is not None and scan["status"] in ("queued", "running"):
        pending = scan["scan_id"]
    evidence = Evidence(
        repo="",
        commit="",
        snapshot=snapshot,
        pending_scan_id=pending,
        blocks=tuple(store.block_evidence(r) for r in rows if r["block_id"] is not None),
        evaluated_at=now,
    )
    result = evaluate(policy, evidence)
    extra = scan_blockers(policy, rows, own_findings, snapshot_known=snapshot is not None)
    blockers = _merged([*result.blockers, *extra])
    return DecisionView(
        repo="",
        commit="",
        project_id=project_id,
        decision="NO_SHIP" if blockers else "SHIP",
        blockers=blockers,
        blocker_total=len(blockers),
        evaluated_at=now,
        policy_version=policy.version,
        policy_scope=policy.scope,  # type: ignore[arg-type]
        revision=0,
        evidence=evidence_ref(evidence),
        artifact=ref,
    )


def own_purl_findings(rows: list[asyncpg.Record]) -> tuple[FindingEvidence, ...]:
    """The advisories naming the artifact's own purl, as findings (one per advisory)."""
    found: dict[str, FindingEvidence] = {}
    for row in rows:
        for advisory, severity in sorted((row["advisories"] or {}).items()):
            found.setdefault(
                advisory,
                FindingEvidence(
                    id=f"{row['digest']}:{advisory}",
                    package=row["purl"] or row["path"],
                    vulnerability_id=advisory,
                    severity=str(severity),
                ),
            )
    return tuple(found.values())


def scan_blockers(
    policy: EffectivePolicy,
    rows: list[asyncpg.Record],
    own_findings: tuple[FindingEvidence, ...],
    *,
    snapshot_known: bool,
) -> list[Blocker]:
    """What the scan on upload adds for an artifact without provenance: pending, failed,
    and (when no SBOM snapshot carries them) its own purl's vulnerabilities."""
    newest = rows[-1]
    found: list[Blocker] = []
    if newest["scan_status"] == "pending":
        found.append(
            Blocker(
                code="evidence_pending",
                message=f"the scan on upload of {newest['path']} has not finished",
                ref=newest["id"],
            )
        )
    elif newest["scan_status"] == "failed":
        found.append(
            Blocker(
                code="no_evidence",
                message=f"the scan on upload of {newest['path']} failed",
                ref="artifact_scan",
            )
        )
    if not snapshot_known and own_findings:
        stand_in = Evidence(
            repo="", commit="", snapshot=SnapshotEvidence(scan_id="", findings=own_findings)
        )
        found += Vulnerabilities().blockers(policy, stand_in)
    return found


def _merged(blockers: list[Blocker]) -> list[Blocker]:
    return sorted(set(blockers), key=lambda b: (b.code, b.ref or "", b.message))
