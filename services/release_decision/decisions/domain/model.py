"""What a decision is made from: frozen evidence of one (repo, commit) and the effective
policy. Built by the projection from its tables; nothing here does I/O."""

from __future__ import annotations

import datetime as dt

import msgspec

from contracts.events.releases import Blocker, Decision, EvidenceKind
from contracts.events.scans import NOT_EFFECTIVE_STATES


class EffectivePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Defaults <- org <- project override, every field set."""

    block_on_severity: tuple[str, ...] = ("CRITICAL", "HIGH")
    epss_threshold: float | None = None
    block_forbidden_licenses: bool = True
    require_signed_commits: bool = False
    required_evidence: tuple[EvidenceKind, ...] = ("sbom",)
    max_snapshot_age_hours: int = 168
    # 0: no limit on the vulnerability database's age.
    max_vulndb_age_hours: float = 72.0
    block_on_unknown_severity: bool = True
    # The version of the most specific policy in force, and its scope.
    version: int = 0
    scope: str = "default"


class FindingEvidence(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    package: str
    vulnerability_id: str
    severity: str
    epss: float | None = None
    state: str = "new"
    affected: bool = True

    @property
    def effective(self) -> bool:
        return self.affected and self.state not in NOT_EFFECTIVE_STATES


class VulnDbEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """The vulnerability database the snapshot was matched against: the newest OSV import
    known (``version``, ``imported_at``, ``digest``; none when nothing was ever imported)
    and what the snapshot's last match used (``matched_version``, ``advisory_count``)."""

    version: int = 0
    imported_at: dt.datetime | None = None
    digest: str | None = None
    matched_version: int = 0
    advisory_count: int = 0


class SnapshotEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """The commit's newest succeeded scan."""

    scan_id: str
    sbom_digest: str | None = None
    result_digest: str | None = None
    forbidden_license_count: int = 0
    findings: tuple[FindingEvidence, ...] = ()
    vulndb: VulnDbEvidence = VulnDbEvidence()


class SignatureEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """The latest commit.verified of the commit."""

    event_id: str
    verified: bool
    reason: str


class BlockEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """An artifact of the commit is blocked (block.created; none are recorded yet)."""

    block_id: str
    message: str


class Evidence(msgspec.Struct, frozen=True, kw_only=True):
    repo: str
    commit: str
    snapshot: SnapshotEvidence | None = None
    # A queued or running scan newer than the snapshot: the evidence is not final yet.
    pending_scan_id: str | None = None
    signature: SignatureEvidence | None = None
    blocks: tuple[BlockEvidence, ...] = ()
    # When the decision is made: the causing event's time (never the clock), so the age of
    # the vulnerability database is judged the same on a replay.
    evaluated_at: dt.datetime | None = None


class DecisionResult(msgspec.Struct, frozen=True, kw_only=True):
    decision: Decision
    blockers: tuple[Blocker, ...]
