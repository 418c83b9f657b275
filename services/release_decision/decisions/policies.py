"""The decision policy's documents: canonical form, the view, ``If-Match`` versions."""

from __future__ import annotations

from contracts.events.releases import EVIDENCE_KINDS, DecisionPolicyDocument
from contracts.rpc.release_decision import DecisionPolicyBody, DecisionPolicyView
from services.release_decision.decisions import store
from services.release_decision.decisions.domain.policy import as_document, effective_policy
from shared.errors import PreconditionFailed

SEVERITY_ORDER = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")


def etag(version: int) -> str:
    return f'"v{version}"'


class VersionMismatch(PreconditionFailed):
    def __init__(self, current: int) -> None:
        super().__init__(
            "If-Match does not match the current ETag; read the policy again",
            extra={"current_etag": etag(current)},
        )


def check_if_match(if_match: list[int] | None, current: int) -> None:
    """``if_match`` None: unconditional (no header, or ``*``)."""
    if if_match is not None and current not in if_match:
        raise VersionMismatch(current)


def policy_id(project_id: str | None) -> str:
    return "release:org" if project_id is None else f"release:project:{project_id}"


def canonical(body: DecisionPolicyBody) -> DecisionPolicyDocument:
    """Lists without repeats in a fixed order, so equal policies are equal documents."""
    severities = (
        [s for s in SEVERITY_ORDER if s in body.block_on_severity]
        if body.block_on_severity is not None
        else None
    )
    evidence = (
        [k for k in EVIDENCE_KINDS if k in body.required_evidence]
        if body.required_evidence is not None
        else None
    )
    return DecisionPolicyDocument(
        block_on_severity=severities,  # type: ignore[arg-type]
        epss_threshold=body.epss_threshold,
        block_forbidden_licenses=body.block_forbidden_licenses,
        require_signed_commits=body.require_signed_commits,
        required_evidence=evidence,
        max_snapshot_age_hours=body.max_snapshot_age_hours,
        max_vulndb_age_hours=body.max_vulndb_age_hours,
        block_on_unknown_severity=body.block_on_unknown_severity,
    )


async def policy_view(db: store.Queryable, project_id: str | None) -> DecisionPolicyView:
    org, project = await store.policy_rows(db, project_id)
    org_document = store.policy_document(org["document"]) if org else None
    org_version = org["version"] if org else 0
    project_document = store.policy_document(project["document"]) if project else None
    effective = effective_policy(
        org=org_document,
        org_version=org_version,
        project=project_document,
        project_version=project["version"] if project else 0,
    )
    row = org if project_id is None else project
    return DecisionPolicyView(
        scope="org" if project_id is None else "project",
        project_id=project_id,
        version=row["version"] if row else 0,
        document=org_document if project_id is None else project_document,
        effective=as_document(effective),
        org_version=org_version,
        updated_at=row["updated_at"] if row else None,
        updated_by=row["updated_by"] if row else None,
    )
