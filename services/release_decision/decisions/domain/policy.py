"""The effective decision policy: built-in defaults <- the org policy <- a project override
(a null field inherits)."""

from __future__ import annotations

from contracts.events.releases import DecisionPolicyDocument
from services.release_decision.decisions.domain.model import EffectivePolicy

DEFAULTS = EffectivePolicy()

_FIELDS = (
    "block_on_severity",
    "epss_threshold",
    "block_forbidden_licenses",
    "require_signed_commits",
    "required_evidence",
    "max_snapshot_age_hours",
    "max_vulndb_age_hours",
    "block_on_unknown_severity",
)


def _overlay(base: dict[str, object], document: DecisionPolicyDocument | None) -> None:
    if document is None:
        return
    for name in _FIELDS:
        value = getattr(document, name)
        if value is not None:
            base[name] = tuple(value) if isinstance(value, list) else value


def effective_policy(
    *,
    org: DecisionPolicyDocument | None,
    org_version: int,
    project: DecisionPolicyDocument | None,
    project_version: int,
) -> EffectivePolicy:
    """``project`` None: no override in force (never set, or removed)."""
    fields: dict[str, object] = {name: getattr(DEFAULTS, name) for name in _FIELDS}
    _overlay(fields, org)
    _overlay(fields, project)
    if project is not None:
        version, scope = project_version, "project"
    elif org is not None:
        version, scope = org_version, "org"
    else:
        version, scope = 0, "default"
    # epss_threshold: an org may switch it on and a project cannot switch it back off with
    # null (null inherits); that is the documented merge, kept simple on purpose.
    return EffectivePolicy(**fields, version=version, scope=scope)  # type: ignore[arg-type]


def as_document(policy: EffectivePolicy) -> DecisionPolicyDocument:
    """The effective policy in the document shape (every field set)."""
    return DecisionPolicyDocument(
        block_on_severity=list(policy.block_on_severity),  # type: ignore[arg-type]
        epss_threshold=policy.epss_threshold,
        block_forbidden_licenses=policy.block_forbidden_licenses,
        require_signed_commits=policy.require_signed_commits,
        required_evidence=list(policy.required_evidence),
        max_snapshot_age_hours=policy.max_snapshot_age_hours,
        max_vulndb_age_hours=policy.max_vulndb_age_hours,
        block_on_unknown_severity=policy.block_on_unknown_severity,
    )
