"""Events owned by the release-decision service: the decision policy, decisions and
promotions.

A **decision** answers "may commit C of repo R ship?": ``SHIP`` or ``NO_SHIP`` with every
distinct blocker. It is a pure function of the policy in force and the evidence gathered
from events (scans and their findings, license counts, commit signatures, blocks), so it is
re-evaluated whenever one of those changes; each change of a decision is one
``release.decided``, numbered per (repo, commit) by ``revision``.

The **decision policy** is an org default plus per-project overrides, each versioned
(1, 2 …). It travels as ``policy.changed`` with ``kind: release`` (the scanner's license
policy uses the same event with ``kind: license``).

A **promotion** records that a snapshot (a scan) of a commit was promoted to a status
(``staging``, ``production`` …); the promoted snapshot becomes its repo's baseline.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from contracts.envelope import EventPayload, register
from contracts.events.scans import CommitSha, Digest, ReleaseLabel, Repo, SeverityLevel

Decision = Literal["SHIP", "NO_SHIP"]
# Kinds of evidence a policy can require.
EvidenceKind = Literal["sbom", "signature"]
EVIDENCE_KINDS: tuple[EvidenceKind, ...] = ("sbom", "signature")
# Stable blocker codes. Clients switch on them; new codes are additive.
BLOCKER_CODES: tuple[str, ...] = (
    "vulnerability",
    "forbidden_license",
    "unsigned_commit",
    "invalid_signature",
    "artifact_blocked",
    "no_evidence",
    "evidence_pending",
    "no_rules",
    "vulndb_missing",
    "vulndb_stale",
    # An artifact promotion's own refusal (registry): the artifact is held in quarantine.
    "artifact_quarantined",
)
# Caps that keep release.decided well under the NATS payload limit (1 MiB).
BLOCKERS_MAX = 500
METADATA_BYTES_MAX = 16 * 1024

BlockerCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z_]{1,63}$")]
Status = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z][a-z0-9_-]{0,62}$",
        description="Promotion target, e.g. staging or production",
    ),
]


class Blocker(msgspec.Struct, frozen=True, kw_only=True, order=True):
    """One reason a commit may not ship. ``ref`` names what blocks: a finding id, a
    snapshot (scan) id, the missing evidence kind, the commit."""

    code: BlockerCode
    message: str
    ref: str | None = None


class DecisionPolicyDocument(msgspec.Struct, frozen=True, kw_only=True):
    """A decision policy as stored. In a project override, a null field is inherited from
    the org policy; the org policy's null fields take the defaults shown."""

    block_on_severity: list[SeverityLevel] | None = None  # default ["CRITICAL", "HIGH"]
    epss_threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None  # off
    block_forbidden_licenses: bool | None = None  # default true
    require_signed_commits: bool | None = None  # default false
    required_evidence: list[EvidenceKind] | None = None  # default ["sbom"]
    max_snapshot_age_hours: Annotated[int, msgspec.Meta(ge=1)] | None = None  # default 168
    # How old the newest OSV import may be; 0 turns the check off (null inherits).
    max_vulndb_age_hours: Annotated[float, msgspec.Meta(ge=0.0)] | None = None  # default 72
    # A finding of severity UNKNOWN (no CVSS anywhere in its alias group) blocks.
    block_on_unknown_severity: bool | None = None  # default true


class VulnDbRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The vulnerability database a decision's snapshot was matched against.

    ``version`` is the stream sequence of the newest OSV ``vulndb.updated`` the decision
    knows, ``imported_at`` its time and ``digest`` its bundle; ``matched_version`` and
    ``advisory_count`` are what the snapshot's last match (``scan.completed`` or
    ``scan.rematched``) used: 0 advisories means it was matched against nothing."""

    source: Literal["osv"]
    version: int = 0
    imported_at: dt.datetime | None = None
    digest: Digest | None = None
    matched_version: int = 0
    advisory_count: int = 0


class EvidenceRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a decision was made from, by reference (ids and digests, never documents)."""

    snapshot_id: str | None = None
    snapshot_status: str | None = None
    sbom_digest: Digest | None = None
    result_digest: Digest | None = None
    # The event id of the commit.verified in force, and what it said.
    signature_event_id: str | None = None
    signature_verified: bool | None = None
    vulndb: VulnDbRef | None = None


@register
class ReleaseDecided(EventPayload, frozen=True, kw_only=True):
    """The decision of a (repo, commit) changed: its verdict, its blockers, the policy
    version it was made under or the evidence it was made from. ``revision`` counts the
    changes of this (repo, commit) from 1; ``cause_event_id`` is the event that caused
    this one (also the envelope's ``causation_id``)."""

    event_type = "release.decided"
    repo: Repo
    commit: CommitSha
    project_id: str | None = None
    revision: Annotated[int, msgspec.Meta(ge=1)]
    decision: Decision
    previous_decision: Decision | None = None
    blockers: Annotated[list[Blocker], msgspec.Meta(max_length=BLOCKERS_MAX)] = []
    blocker_total: Annotated[int, msgspec.Meta(description="Blockers before the cap")] = 0
    previous_blockers: Annotated[list[Blocker], msgspec.Meta(max_length=BLOCKERS_MAX)] = []
    policy_version: Annotated[int, msgspec.Meta(ge=0, description="0: the built-in default")]
    policy_scope: Literal["org", "project", "default"] = "default"
    evidence: EvidenceRef = EvidenceRef()
    evaluated_at: dt.datetime
    cause_event_id: str | None = None
    cause_event_type: str | None = None


class PromotionOverride(msgspec.Struct, frozen=True, kw_only=True):
    """An APPROVER promoted (or deployed) despite NO_SHIP, and why."""

    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    approver: str


@register
class ReleasePromoted(EventPayload, frozen=True, kw_only=True):
    """A snapshot was promoted to ``target_status``; it is now its repo's baseline.
    ``decision`` and ``blockers`` are the decision at promotion; ``override`` is set when
    an APPROVER promoted a NO_SHIP snapshot."""

    event_type = "release.promoted"
    promotion_id: str
    snapshot_id: str
    project_id: str
    repo: Repo
    commit: CommitSha
    target_status: Status
    release_label: ReleaseLabel | None = None
    metadata: dict[str, Any] = {}
    decision: Decision
    blockers: Annotated[list[Blocker], msgspec.Meta(max_length=BLOCKERS_MAX)] = []
    policy_version: int = 0
    override: PromotionOverride | None = None
    promoted_by: str
    promoted_at: dt.datetime
