"""``evaluate(policy, evidence) -> DecisionResult``: SHIP only when no rule finds a blocker.

Each rule is a small object with one method, ``blockers(policy, evidence)``; ``evaluate``
runs all of them (every blocker is listed, not the first) and an empty rule set fails
closed. Blockers are distinct and sorted by (code, ref, message), so the same evidence
always gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Protocol

from contracts.events.releases import Blocker
from services.release_decision.decisions.domain.model import (
    DecisionResult,
    EffectivePolicy,
    Evidence,
    FindingEvidence,
)


class Rule(Protocol):
    def blockers(self, policy: EffectivePolicy, evidence: Evidence) -> Iterable[Blocker]: ...


class RequiredEvidence:
    """``no_evidence`` for each required kind that is missing; ``evidence_pending`` while a
    scan newer than the snapshot is queued or running (its snapshot-derived blockers wait
    for it: the pending scan will replace them)."""

    def blockers(self, policy: EffectivePolicy, evidence: Evidence) -> Iterable[Blocker]:
        if evidence.pending_scan_id is not None:
            yield Blocker(
                code="evidence_pending",
                message=f"scan {evidence.pending_scan_id} of this commit has not finished",
                ref=evidence.pending_scan_id,
            )
        elif evidence.snapshot is None and (
            "sbom" in policy.required_evidence
            # Nothing required at all: a commit without any evidence still does not ship.
            or (not policy.required_evidence and evidence.signature is None)
        ):
            yield Blocker(
                code="no_evidence", message="no succeeded scan (SBOM) of this commit", ref="sbom"
            )
        signature = evidence.signature
        if "signature" in policy.required_evidence and (
            signature is None or not signature.verified
        ):
            # Only a `valid` verification is evidence that the commit is signed.
            yield Blocker(
                code="no_evidence",
                message="the commit's signature has not been verified"
                if signature is None
                else f"the commit has no valid signature ({signature.reason})",
                ref="signature",
            )


def blocking_severities(policy: EffectivePolicy) -> tuple[str, ...]:
    """The severities whose effective findings block: ``block_on_severity``, and ``UNKNOWN``
    when ``block_on_unknown_severity`` (an advisory nobody rated is not a harmless one)."""
    unknown = ("UNKNOWN",) if policy.block_on_unknown_severity else ()
    return tuple(dict.fromkeys((*policy.block_on_severity, *unknown)))


def _blocking(policy: EffectivePolicy, finding: FindingEvidence) -> bool:
    if not finding.effective:
        return False
    if finding.severity in blocking_severities(policy):
        return True
    threshold = policy.epss_threshold
    return threshold is not None and finding.epss is not None and finding.epss >= threshold


def _describe(finding: FindingEvidence) -> str:
    epss = f", EPSS {finding.epss:.3f}" if finding.epss is not None else ""
    return f"{finding.vulnerability_id} in {finding.package} ({finding.severity}{epss})"


class Vulnerabilities:
    """One ``vulnerability`` per effective finding at a blocking severity, or at or above
    the EPSS threshold when the policy sets one."""

    def blockers(self, policy: EffectivePolicy, evidence: Evidence) -> Iterable[Blocker]:
        if evidence.snapshot is None or evidence.pending_scan_id is not None:
            return
        for finding in evidence.snapshot.findings:
            if _blocking(policy, finding):
                yield Blocker(code="vulnerability", message=_describe(finding), ref=finding.id)


class VulnerabilityDatabase:
    """A snapshot is only as good as the advisories it was matched against.

    ``vulndb_missing`` when its last match used an empty database (nothing imported yet: no
    finding means nothing, not safe); ``vulndb_stale`` when the newest OSV import is older
    than ``max_vulndb_age_hours`` at the decision's time (0: no limit)."""

    def blockers(self, policy: EffectivePolicy, evidence: Evidence) -> Iterable[Blocker]:
        snapshot = evidence.snapshot
        if snapshot is None or evidence.pending_scan_id is not None:
            return
        vulndb = snapshot.vulndb
        if vulndb.version == 0 or vulndb.advisory_count == 0 or vulndb.imported_at is None:
            yield Blocker(
                code="vulndb_missing",
                message="the snapshot was matched against an empty vulnerability database "
                "(import OSV advisories: POST /api/v1/vulndb/import)",
                ref=snapshot.scan_id,
            )
            return
        if vulndb_stale(policy, vulndb.imported_at, evidence.evaluated_at):
            imported = vulndb.imported_at.astimezone(dt.UTC)
            yield Blocker(
                code="vulndb_stale",
                message=f"the newest OSV import ({imported:%Y-%m-%dT%H:%MZ}) is older than "
                f"{policy.max_vulndb_age_hours:g} hours",
                ref=snapshot.scan_id,
            )


def vulndb_stale(policy: EffectivePolicy, imported_at: dt.datetime, at: dt.datetime | None) -> bool:
    """The import at ``imported_at`` is older than the policy allows at time ``at``."""
    limit = policy.max_vulndb_age_hours
    if limit <= 0 or at is None:
        return False
    return at - imported_at > dt.timedelta(hours=limit)


class ForbiddenLicenses:
    def blockers(self, policy: EffectivePolicy, evidence: Evidence) -> Iterable[Blocker]:
        snapshot = evidence.snapshot
        if (
            not policy.block_forbidden_licenses
            or snapshot is None
            or evidence.pending_scan_id is not None
            or snapshot.forbidden_license_count <= 0
        ):
            return
        count = snapshot.forbidden_license_count
        noun = "component has" if count == 1 else "components have"
        yield Blocker(
            code="forbidden_license",
            message=f"{count} {noun} a forbidden license",
            ref=snapshot.scan_id,
        )


# Verdicts that mean "no signature to speak of": none in the commit, or a row invalidated
# because its key was revoked (it reads as not stamped). Every other non-valid reason is a
# signature that is there and does not hold.
UNSIGNED_REASONS = frozenset({"unsigned"})


class SignedCommit:
    def blockers(self, policy: EffectivePolicy, evidence: Evidence) -> Iterable[Blocker]:
        if not policy.require_signed_commits:
            return
        signature = evidence.signature
        if signature is None:
            yield Blocker(
                code="unsigned_commit",
                message="the commit's signature has not been verified",
                ref=evidence.commit,
            )
        elif signature.reason in UNSIGNED_REASONS:
            yield Blocker(
                code="unsigned_commit",
                message=f"the commit is not signed ({signature.reason})",
                ref=evidence.commit,
            )
        elif not signature.verified:
            yield Blocker(
                code="invalid_signature",
                message=f"the commit's signature is not valid ({signature.reason})",
                ref=evidence.commit,
            )


class Blocks:
    def blockers(self, policy: EffectivePolicy, evidence: Evidence) -> Iterable[Blocker]:
        for block in evidence.blocks:
            yield Blocker(code="artifact_blocked", message=block.message, ref=block.block_id)


DEFAULT_RULES: tuple[Rule, ...] = (
    RequiredEvidence(),
    Vulnerabilities(),
    VulnerabilityDatabase(),
    ForbiddenLicenses(),
    SignedCommit(),
    Blocks(),
)

NO_RULES = Blocker(code="no_rules", message="no decision rule is configured: nothing may ship")


def _sort_key(blocker: Blocker) -> tuple[str, str, str]:
    return (blocker.code, blocker.ref or "", blocker.message)


def evaluate(
    policy: EffectivePolicy, evidence: Evidence, *, rules: Sequence[Rule] = DEFAULT_RULES
) -> DecisionResult:
    if not rules:
        return DecisionResult(decision="NO_SHIP", blockers=(NO_RULES,))
    found = {b for rule in rules for b in rule.blockers(policy, evidence)}
    blockers = tuple(sorted(found, key=_sort_key))
    return DecisionResult(decision="NO_SHIP" if blockers else "SHIP", blockers=blockers)
