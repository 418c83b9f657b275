"""``svc.release-decision.*``: decisions, the decision policy, promotions and health.

``DecisionView`` is also the body of ``GET /api/v1/releases/decision``; the other views are
the HTTP bodies of their routes as they are. Projects are named by id here: the gateway
resolves a slug first (it owns projects).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from contracts.events.registry import Provenance
from contracts.events.releases import (
    METADATA_BYTES_MAX,
    Blocker,
    Decision,
    DecisionPolicyDocument,
    EvidenceKind,
    EvidenceRef,
    Status,
)
from contracts.events.scans import Digest, ReleaseLabel, Repo, SeverityLevel
from contracts.rpc.dead_letters import DeadLetterRef
from contracts.rpc.scanner_scans import DEFAULT_LIMIT, Cursor, Limit

PolicyScopeName = Literal["org", "project", "default"]
SERVICE = "release-decision"
DECISION_GET = "decision_get"
DECISION_HISTORY = "decision_history"
POLICY_GET = "policy_get"
POLICY_PUT = "policy_put"
PROMOTE = "promote"
PROMOTIONS = "promotions"
HEALTH = "health"
ARTIFACT_DECISION = "artifact_decision"

ProjectId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]

CommitRef = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^([0-9a-fA-F]{7,64}|HEAD)$",
        description="A commit id (7 to 64 hex digits), or HEAD: the newest commit seen on "
        "the default branch of the repo's project",
    ),
]


# RFC 3339 requires the offset: a time without one would be read in some unstated zone.
AsOf = Annotated[
    dt.datetime,
    msgspec.Meta(
        tz=True,
        description="RFC 3339 date-time with its offset (Z or ±hh:mm): the decision as it was then",
    ),
]


class DecisionRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Query of ``GET /api/v1/releases/decision``. ``as_of``: the decision as it was then."""

    repo: Repo
    commit: CommitRef
    as_of: AsOf | None = None


class DecisionQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Query of ``GET /api/v1/releases/decision``: a commit (``repo`` and ``commit``, and
    ``as_of`` for the decision as it was then), or a registry artifact by its digest
    (``artifact=sha256:<hex>``)."""

    repo: Repo | None = None
    commit: CommitRef | None = None
    artifact: (
        Annotated[
            Digest,
            msgspec.Meta(
                description="sha256:<hex> of a registry artifact: its decision (see the README's "
                "registry section: its provenance commit's decision plus artifact_blocked, or, "
                "without provenance, a decision from its own scan)"
            ),
        ]
        | None
    ) = None
    as_of: AsOf | None = None


class ArtifactDecisionRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The decision of the registry artifacts of ``digest`` (a project-scoped caller: of
    its projects' artifacts only)."""

    digest: Digest
    project_ids: list[str] | None = None


class ArtifactDecisionRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What an artifact's decision was made from: the live artifacts of the digest, the
    provenance commit whose decision it takes (none: decided on its own scan), its scan on
    upload (``scan_status`` pending / passed / blocked / failed; ``scan_id``: the scan of the
    SBOM it carries) and the blocks that apply to it."""

    digest: str
    artifact_ids: list[str]
    provenance: Provenance | None = None
    commit_revision: int | None = None
    scan_status: str = "pending"
    scan_id: str | None = None
    advisories: list[str] = []
    block_ids: list[str] = []


class Baseline(msgspec.Struct, frozen=True, kw_only=True):
    """The repo's latest promoted snapshot."""

    snapshot_id: str | None = None
    commit_sha: str | None = None
    promotion_id: str | None = None
    target_status: str | None = None
    promoted_at: dt.datetime | None = None


class DecisionView(msgspec.Struct, frozen=True, kw_only=True):
    repo: str
    commit: Annotated[str, msgspec.Meta(description="Resolved (HEAD → the commit id)")]
    project_id: str | None = None
    decision: Decision
    blockers: list[Blocker]
    blocker_total: int = 0
    baseline: Baseline = Baseline()
    evaluated_at: dt.datetime
    policy_version: int
    policy_scope: Annotated[
        PolicyScopeName,
        msgspec.Meta(
            description="Which policy policy_version counts: a project's override, the org "
            "policy, or the built-in default (version 0)"
        ),
    ] = "default"
    revision: Annotated[int, msgspec.Meta(ge=0, description="0: never decided (no evidence)")]
    evidence: EvidenceRef = EvidenceRef()
    # Set for ?artifact=: repo and commit are then its provenance commit's (both empty when
    # it names none, and the decision is made from its own scan).
    artifact: ArtifactDecisionRef | None = None


# ---- history --------------------------------------------------------------------------------
class DecisionHistoryQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Query of ``GET /api/v1/releases/decision/history`` (also the RPC request): the
    revisions of one commit, or of every commit of the repo, newest first. ``commit`` is
    resolved as the decision's is (any case, a short or longer id, HEAD)."""

    repo: Repo
    commit: CommitRef | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class DecisionRevision(msgspec.Struct, frozen=True, kw_only=True):
    """One change of a decision and the event that caused it."""

    repo: str
    commit: str
    project_id: str | None = None
    revision: int
    decision: Decision
    blockers: list[Blocker]
    blocker_total: int = 0
    policy_version: int
    policy_scope: Annotated[
        PolicyScopeName,
        msgspec.Meta(
            description="Which policy policy_version counts: a project's override, the org "
            "policy, or the built-in default (version 0)"
        ),
    ] = "default"
    evaluated_at: dt.datetime
    cause_event_id: str
    cause_event_type: str
    evidence: EvidenceRef = EvidenceRef()


class DecisionHistoryPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[DecisionRevision]
    next_cursor: str | None = None


# ---- policy ---------------------------------------------------------------------------------
class DecisionPolicyBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PUT /api/v1/releases/policy[?project=]``: a null (or absent) field takes the
    default (org policy) or is inherited from the org policy (project override)."""

    block_on_severity: list[SeverityLevel] | None = None
    epss_threshold: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    block_forbidden_licenses: bool | None = None
    require_signed_commits: bool | None = None
    required_evidence: Annotated[list[EvidenceKind], msgspec.Meta(min_length=1)] | None = None
    max_snapshot_age_hours: Annotated[int, msgspec.Meta(ge=1, le=100_000)] | None = None
    # 0: the vulnerability database may be of any age.
    max_vulndb_age_hours: Annotated[float, msgspec.Meta(ge=0.0, le=100_000.0)] | None = None
    block_on_unknown_severity: bool | None = None


class PolicyQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``?project=``: a project's override (id or slug); absent: the org policy."""

    project: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class PolicyGetRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ProjectId | None = None


class PolicyPutRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``if_match``: the versions the caller accepts (``If-Match: "v<n>"``); None: any."""

    project_id: ProjectId | None = None
    if_match: list[int] | None = None
    document: DecisionPolicyBody


class DecisionPolicyView(msgspec.Struct, frozen=True, kw_only=True):
    """A decision policy and the policy in force. ``version`` is the ETag (``"v<n>"``, 0:
    never set); ``effective`` merges defaults <- org <- project override."""

    scope: Literal["org", "project"]
    project_id: str | None = None
    version: int
    document: DecisionPolicyDocument | None
    effective: DecisionPolicyDocument
    org_version: int
    updated_at: dt.datetime | None = None
    updated_by: str | None = None


# ---- promotions -----------------------------------------------------------------------------
class OverrideBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class PromoteBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/releases/promote``. ``override`` (APPROVER only): promote despite
    NO_SHIP, with the reason (audited)."""

    snapshot_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    target_status: Status
    release_label: ReleaseLabel | None = None
    metadata: Annotated[
        dict[str, Any], msgspec.Meta(description=f"At most {METADATA_BYTES_MAX} bytes as JSON")
    ] = {}
    override: OverrideBody | None = None


class PromoteRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``allowed_project``: a project-scoped caller's project (the snapshot must be of it)."""

    body: PromoteBody
    allowed_project: ProjectId | None = None


class PromotionView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    snapshot_id: str
    repo: str
    commit: str
    project_id: str
    status: str
    label: str | None = None
    metadata: dict[str, Any] = {}
    promoted_by: str
    promoted_at: dt.datetime
    decision: Decision
    blockers: list[Blocker] = []
    policy_version: int = 0
    override: dict[str, str] | None = None


class PromotionsQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Query of ``GET /api/v1/releases/promotions``: by repo and/or project (id or slug)."""

    repo: Repo | None = None
    project: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class PromotionsRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    repo: Repo | None = None
    project_id: ProjectId | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class PromotionPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[PromotionView]
    next_cursor: str | None = None


# ---- health ---------------------------------------------------------------------------------
class HealthQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``GET /api/v1/releases/health[?repo=|?project=]``."""

    repo: Repo | None = None
    project: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class HealthRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    repo: Repo | None = None
    project_id: ProjectId | None = None


class LatestPromoted(msgspec.Struct, frozen=True, kw_only=True):
    snapshot_id: str | None = None
    repo: str | None = None
    commit: str | None = None
    promoted_at: dt.datetime | None = None
    age_hours: float | None = None
    max_age_hours: int
    fresh: bool


class MissingEvidence(msgspec.Struct, frozen=True, kw_only=True):
    """Required evidence the newest decided commit of a repo lacks."""

    repo: str
    commit: str | None = None
    kind: str
    message: str


class FailedJobRef(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A job of release-decision that exhausted its attempts (`gatehouse jobs` answers it,
    by ``id``). A ``publish_decided`` job names the revision whose ``release.decided`` was
    never published: the decision is current here, but whatever follows the events (the
    gateway's hot copy, SCM statuses, webhooks) still shows an older revision."""

    id: str  # <service>:<table>:<job id>
    kind: str
    attempts: int
    error: str
    repo: str | None = None
    commit: str | None = None
    revision: int | None = None
    decision: Decision | None = None


class VulnDbHealth(msgspec.Struct, frozen=True, kw_only=True):
    """The vulnerability database decisions are matched against: ``fresh``, ``missing``
    (no OSV import yet: every snapshot decides NO_SHIP ``vulndb_missing``) or ``stale``
    (the newest import is older than the scope's ``max_vulndb_age_hours``, 0: no limit)."""

    status: Literal["fresh", "missing", "stale"]
    version: int = 0
    imported_at: dt.datetime | None = None
    age_hours: float | None = None
    max_age_hours: float
    reason: str = ""


class HealthView(msgspec.Struct, frozen=True, kw_only=True):
    """Whether the verification graph is reachable and the evidence is fresh. Services:
    ``answering``, ``unavailable`` (nothing answers) or ``error``. ``status``: ``ok``;
    ``degraded`` when everything answers but events that decisions depend on were
    dead-lettered (listed in ``dead_letters``: release-decision's, the scanner's and the
    signature-verifier's; `gatehouse deadletters` answers them); ``failing`` when something
    does not answer, lags or the promoted snapshot is stale; also ``degraded`` when a job of
    release-decision failed for good (listed in ``failed_jobs``; `gatehouse jobs` answers
    them). ``ok`` is true only with ``status`` ``ok``."""

    ok: bool
    status: Literal["ok", "degraded", "failing"] = "ok"
    bus: bool
    projection_lag: int
    projection_lag_max: int
    scanner: str
    signature_verifier: str
    latest_promoted: LatestPromoted
    missing_evidence: list[MissingEvidence]
    dead_letters: list[DeadLetterRef] = []
    failed_jobs: list[FailedJobRef] = []
    vulndb: VulnDbHealth
