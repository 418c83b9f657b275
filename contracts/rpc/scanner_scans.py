"""``svc.scanner.scan_*`` and the project reads of scans: submit, status, log, lists,
cancel, delete, components, vulnerabilities, snapshots, one finding.

The gateway calls these; the views (``ScanView``, ``ComponentPage``, ``FindingPage`` …) are
the bodies of the HTTP responses as they are. List queries are also the gateway routes'
query strings (cursor pagination: ``cursor`` is the ``next_cursor`` of the previous page).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.events.scans import (
    CommitSha,
    Digest,
    ReleaseLabel,
    Repo,
    ScanKind,
    ScanStage,
    ScanStatus,
    SeverityCounts,
    VexState,
)

SERVICE = "scanner"
SCAN_SUBMIT = "scan_submit"
SCAN_GET = "scan_get"
SCAN_LOG = "scan_log"
SCAN_LIST = "scan_list"
SCAN_CANCEL = "scan_cancel"
SCAN_DELETE = "scan_delete"
COMPONENTS = "components"
VULNERABILITIES = "vulnerabilities"
SNAPSHOTS = "snapshots"
FINDING_GET = "finding_get"
DETECTION_FINDINGS = "detection_findings"

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

Severity = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]
LicenseCategory = Literal["allowed", "conditional", "unknown", "forbidden"]
Scope = Literal["required", "optional", "excluded", "dev", "unknown"]
Order = Literal["asc", "desc"]
MatchStatus = Literal["affected", "not_evaluated"]
ScanId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Cursor = Annotated[
    str, msgspec.Meta(max_length=512, description="next_cursor of the previous page")
]
Limit = Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT, description=f"Page size, 1..{MAX_LIMIT}")]
ScanIdPin = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        description="Read this snapshot (a succeeded scan of the project) instead of the latest",
    ),
]


# ---- submit -------------------------------------------------------------------------------
class ScanSubmitRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A scan of an upload already stored as the blob ``source_digest``."""

    project_id: str
    kind: ScanKind
    source_digest: Digest
    source_name: Annotated[str, msgspec.Meta(max_length=255)] = ""
    size: Annotated[int, msgspec.Meta(ge=1)]
    repo: Repo | None = None
    commit: CommitSha | None = None
    label: ReleaseLabel | None = None


class ScanAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """202: the scan is queued; follow ``GET /api/v1/scans/{scan_id}``."""

    scan_id: str
    status: ScanStatus
    format: str


# ---- one scan -----------------------------------------------------------------------------
class ScanRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A scan by id; ``only_project`` limits it to one project (a project-scoped key): any
    other project's scan answers 404."""

    scan_id: ScanId
    only_project: str | None = None


class ScanProgress(msgspec.Struct, frozen=True, kw_only=True):
    stage: ScanStage | Literal["queued", "started"]
    done: int
    total: int
    message: str


class ScanError(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str
    location: str | None = None


class ScanSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What ``scan.completed`` said (counts of effective findings)."""

    component_count: int
    finding_count: int
    severity_counts: SeverityCounts
    highest_epss: float | None = None
    epss_threshold: float
    epss_over_threshold_count: int = 0
    forbidden_license_count: int = 0
    blocking_finding_ids: list[str] = []
    blocking_finding_total: int = 0
    not_evaluated_count: int = 0
    warning_count: int = 0


class ScanView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    kind: ScanKind
    status: ScanStatus
    repo: str | None
    commit: str | None
    label: str | None
    source_digest: str
    source_name: str
    size: int
    format: str
    spec_version: str | None
    sbom_digest: str | None
    result_digest: str | None
    progress: ScanProgress | None
    error: ScanError | None
    summary: ScanSummary | None
    created_at: dt.datetime
    created_by: str
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    version: Annotated[int, msgspec.Meta(description="Stream sequence of the scan's last event")]


class ScanCancelRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    scan_id: ScanId
    only_project: str | None = None
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class ScanDeleteRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    scan_id: ScanId
    only_project: str | None = None
    force: bool = False


class ScanDeletedReply(msgspec.Struct, frozen=True, kw_only=True):
    scan_id: str
    forced: bool


# ---- the scan log -------------------------------------------------------------------------
class ScanLogQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class ScanLogRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    scan: ScanRef
    query: ScanLogQuery = ScanLogQuery()


class ScanLogEntry(msgspec.Struct, frozen=True, kw_only=True):
    sequence: Annotated[int, msgspec.Meta(description="Stream sequence of the event")]
    at: dt.datetime
    event: str
    stage: str | None
    level: Literal["info", "error"]
    message: str


class ScanLogPage(msgspec.Struct, frozen=True, kw_only=True):
    """The scan's lifecycle events, oldest first."""

    scan_id: str
    items: list[ScanLogEntry]
    next_cursor: str | None


# ---- a project's scans and snapshots -------------------------------------------------------
class ScanListQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: list[ScanStatus] | None = None
    kind: ScanKind | None = None
    label: ReleaseLabel | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class ScanListRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: str
    query: ScanListQuery = ScanListQuery()


class ScanPage(msgspec.Struct, frozen=True, kw_only=True):
    """Scans of a project, newest first."""

    items: list[ScanView]
    next_cursor: str | None


class SnapshotQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class SnapshotRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: str
    query: SnapshotQuery = SnapshotQuery()


class SnapshotView(msgspec.Struct, frozen=True, kw_only=True):
    scan_id: str
    kind: ScanKind
    repo: str | None
    commit: str | None
    label: str | None
    format: str
    completed_at: dt.datetime
    summary: ScanSummary


class SnapshotPage(msgspec.Struct, frozen=True, kw_only=True):
    """Succeeded scans of a project, newest first (the first is the latest snapshot)."""

    items: list[SnapshotView]
    next_cursor: str | None


# ---- components ----------------------------------------------------------------------------
ComponentSort = Literal["name", "severity", "license_category", "purl"]


class ComponentQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Components of the latest snapshot (or of ``scan_id``).

    ``severity``: components with at least one open, effective finding of that severity.
    ``sort``: name (default ascending), severity (default: most severe first),
    license_category (default: most restrictive first), purl; ``order`` reverses.
    """

    scan_id: ScanIdPin | None = None
    severity: list[Severity] | None = None
    license_category: list[LicenseCategory] | None = None
    direct: bool | None = None
    scope: list[Scope] | None = None
    sort: ComponentSort = "name"
    order: Order | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class ComponentsRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: str
    query: ComponentQuery = ComponentQuery()


class LicenseStatement(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str | None = None
    expression: str | None = None
    name: str | None = None


class ComponentView(msgspec.Struct, frozen=True, kw_only=True):
    ref: str
    name: str
    version: str | None
    purl: str | None
    ecosystem: str | None
    package: str | None
    type: str
    group: str | None
    scope: Scope
    direct: bool | None
    licenses: list[LicenseStatement]
    license_expression: str | None
    license_category: LicenseCategory
    finding_count: Annotated[int, msgspec.Meta(description="Open, effective findings")]
    highest_severity: Severity | None


class ComponentPage(msgspec.Struct, frozen=True, kw_only=True):
    scan_id: Annotated[str | None, msgspec.Meta(description="The snapshot read (None: none yet)")]
    items: list[ComponentView]
    next_cursor: str | None


# ---- findings ------------------------------------------------------------------------------
FindingSort = Literal["severity", "cvss", "epss", "discovered_at", "component"]


class VulnerabilityQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Findings of the latest snapshot (or of ``scan_id``).

    ``status``: VEX states. ``license_category``: of the finding's component.
    ``sort``: severity, cvss, epss (default: highest first), discovered_at (newest first),
    component (by name, ascending); ``order`` reverses. Resolved findings (gone after a
    re-match) only with ``include_resolved=true``.
    """

    scan_id: ScanIdPin | None = None
    severity: list[Severity] | None = None
    status: list[VexState] | None = None
    license_category: list[LicenseCategory] | None = None
    min_epss: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    include_resolved: bool = False
    sort: FindingSort = "severity"
    order: Order | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class VulnerabilitiesRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: str
    query: VulnerabilityQuery = VulnerabilityQuery()


class FindingView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    scan_id: str
    project_id: str
    component_ref: str
    component_name: str
    component_version: str | None
    purl: str | None
    ecosystem: str
    package: str
    vulnerability_id: Annotated[str, msgspec.Meta(description="The alias group id")]
    advisory_ids: list[str]
    aliases: list[str]
    match: MatchStatus
    match_reason: str | None
    severity: Severity
    cvss_score: float | None
    epss: float | None
    epss_percentile: float | None
    state: VexState
    justification: str | None
    detail: str
    effective: bool
    license_category: LicenseCategory
    direct: bool | None
    scope: Scope
    discovered_at: dt.datetime
    resolved_at: dt.datetime | None
    resolved_reason: str | None
    version: Annotated[int, msgspec.Meta(description="Bumped by every triage (the ETag)")]


class FindingPage(msgspec.Struct, frozen=True, kw_only=True):
    scan_id: Annotated[str | None, msgspec.Meta(description="The snapshot read (None: none yet)")]
    items: list[FindingView]
    next_cursor: str | None


class FindingRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    finding_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    only_project: str | None = None


# ---- findings across projects ---------------------------------------------------------------
class DetectionFindingsRequest(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """``GET /api/v1/detection/findings``: the open findings of every project's latest
    snapshot (``project_ids``: of those projects only; ``repo``: each project's latest
    snapshot scanned from that git repository), most severe first, then by id descending
    (a stable order: a page starts strictly after the previous one).

    ``severity``: these levels; ``min_severity``: this level or worse; ``state``: VEX states;
    ``epss_min``: EPSS at least this; ``package``: a component name (any case) or, starting
    with ``pkg:``, a purl prefix."""

    project_ids: list[str] | None = None
    repo: Repo | None = None
    severity: list[Severity] | None = None
    min_severity: Severity | None = None
    state: list[VexState] | None = None
    epss_min: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    package: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class DetectionFindingPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[FindingView]
    next_cursor: str | None
    snapshots: Annotated[int, msgspec.Meta(description="How many latest snapshots were read")]
