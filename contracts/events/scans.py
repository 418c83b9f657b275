"""Events owned by the scanner's scans: the scan lifecycle and the findings it produces.

A scan moves ``queued → running → succeeded | failed | cancelled`` (and may later be
``deleted``). Bulk data never travels in an event: the uploaded document and the scan's full
result (components and findings) are blobs named by their SHA-256 digest; ``scan.completed``
carries the summary a release decision needs without calling back.

Findings: one per (scan, component, vulnerability alias group). Their ids are deterministic
(UUIDv5 of scan id, component ref and group id), so a re-run and a replay agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.envelope import EventPayload, register

ScanKind = Literal["sbom", "source"]
ScanStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ScanStage = Literal["parse", "match", "evaluate", "store"]
# VEX analysis states of a finding (CycloneDX's vocabulary, plus suppressed).
VexState = Literal[
    "new", "analyzing", "exploitable", "not_affected", "false_positive", "suppressed", "fixed"
]
VEX_STATES: tuple[VexState, ...] = (
    "new",
    "analyzing",
    "exploitable",
    "not_affected",
    "false_positive",
    "suppressed",
    "fixed",
)
# States that take a finding out of the counts that gate a release.
NOT_EFFECTIVE_STATES: frozenset[str] = frozenset(
    {"not_affected", "false_positive", "suppressed", "fixed"}
)
SeverityLevel = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]
FindingCause = Literal["scan", "rematch"]
ResolvedReason = Literal["not_in_new_snapshot", "advisory_withdrawn", "no_longer_in_range"]
TriageCause = Literal["triage", "bulk", "vex"]

# Caps that keep scan.completed well under the NATS payload limit (1 MiB).
BLOCKING_IDS_MAX = 200

Digest = Annotated[str, msgspec.Meta(pattern=r"^sha256:[0-9a-f]{64}$")]
Repo = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}/[A-Za-z0-9._-]{1,100}$",
        description="owner/name",
    ),
]
CommitSha = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9a-f]{7,64}$", description="Commit id (lower-case hex)")
]
ReleaseLabel = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$",
        description="Release label, e.g. v1.4.0 or 2.0.0-rc1",
    ),
]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class SeverityCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Findings per severity (CVSS ``NONE`` counts as LOW)."""

    CRITICAL: int = 0
    HIGH: int = 0
    MEDIUM: int = 0
    LOW: int = 0
    UNKNOWN: int = 0


@register
class ScanQueued(EventPayload, frozen=True, kw_only=True):
    """An SBOM or a source archive was accepted for scanning; the bytes are the blob
    ``source_digest``."""

    event_type = "scan.queued"
    scan_id: str
    project_id: str
    kind: ScanKind
    repo: Repo | None = None
    commit: CommitSha | None = None
    label: ReleaseLabel | None = None
    source_digest: Digest
    source_name: Annotated[str, msgspec.Meta(max_length=255)] = ""
    size: Annotated[int, msgspec.Meta(ge=0, description="Bytes of the upload")]
    format: Annotated[
        str,
        msgspec.Meta(
            description="Detected at upload: cyclonedx-json, cyclonedx-xml, spdx-json, "
            "spdx-tag-value, or zip for a source archive"
        ),
    ]
    # A registry artifact's SBOM (scanned on upload): the artifact it came with.
    artifact_id: Annotated[str, msgspec.Meta(pattern=r"^art_[0-9a-f]{32}$")] | None = None


@register
class ScanStarted(EventPayload, frozen=True, kw_only=True):
    """A worker started the scan."""

    event_type = "scan.started"
    scan_id: str
    project_id: str


@register
class ScanProgressed(EventPayload, frozen=True, kw_only=True):
    """A stage of a running scan finished (a handful per scan; they make its log)."""

    event_type = "scan.progressed"
    scan_id: str
    project_id: str
    stage: ScanStage
    done: Annotated[int, msgspec.Meta(ge=0)]
    total: Annotated[int, msgspec.Meta(ge=0)]
    message: str


@register
class ScanCompleted(EventPayload, frozen=True, kw_only=True):
    """A scan succeeded. Carries what a release decision needs without calling back.

    Counts are of *effective* findings: affected, and not triaged away (state not in
    not_affected, false_positive, suppressed, fixed). Blocking findings are the scanner's
    default view: effective and CRITICAL/HIGH, or EPSS at or above ``epss_threshold``; the
    release gate applies its own policy. ``result_digest`` is the blob of every component
    and finding of the scan. The scan's ``finding.*`` announcements follow this event, and
    ``scan.findings-announced`` follows them.
    """

    event_type = "scan.completed"
    scan_id: str
    project_id: str
    kind: ScanKind
    repo: str | None = None
    commit: str | None = None
    label: str | None = None
    sbom_digest: Annotated[
        Digest,
        msgspec.Meta(description="The uploaded SBOM, or the CycloneDX one made for a source scan"),
    ]
    result_digest: Digest
    format: str
    spec_version: str
    component_count: int
    finding_count: Annotated[int, msgspec.Meta(description="Effective findings")]
    severity_counts: SeverityCounts
    highest_epss: Probability | None = None
    epss_threshold: Probability
    epss_over_threshold_count: int = 0
    forbidden_license_count: int = 0
    blocking_finding_ids: Annotated[
        list[str], msgspec.Meta(description=f"At most {BLOCKING_IDS_MAX}; see the total")
    ] = []
    blocking_finding_total: int = 0
    not_evaluated_count: Annotated[
        int,
        msgspec.Meta(
            description="(component, vulnerability) pairs that could not be evaluated (GIT "
            "ranges, versions that do not parse): never a silent miss"
        ),
    ] = 0
    warning_count: int = 0
    vulndb_advisories: Annotated[
        int, msgspec.Meta(description="Active advisories the scan matched against")
    ] = 0
    vulndb_version: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="Stream sequence of the last vulndb.updated the matcher held (0: none)",
        ),
    ] = 0
    epss_as_of: dt.date | None = None


@register
class ScanFindingsAnnounced(EventPayload, frozen=True, kw_only=True):
    """Every ``finding.created`` / ``finding.resolved`` / ``finding.threshold-exceeded`` of a
    completed scan has been published (they follow ``scan.completed``, which does not wait
    for them); this closes the scan's work. ``given_up``: the announcements kept failing and
    were abandoned (the findings themselves are recorded with the scan)."""

    event_type = "scan.findings-announced"
    scan_id: str
    project_id: str
    created: int = 0
    resolved: int = 0
    threshold_exceeded: int = 0
    given_up: bool = False


@register
class ScanFailed(EventPayload, frozen=True, kw_only=True):
    """A scan failed; ``code`` is stable and ``location`` says where (a JSON path,
    ``line N`` or ``path/in/archive:line``) when the input is at fault."""

    event_type = "scan.failed"
    scan_id: str
    project_id: str
    code: str
    message: str
    location: str | None = None


@register
class ScanCancelled(EventPayload, frozen=True, kw_only=True):
    """A queued or running scan was cancelled."""

    event_type = "scan.cancelled"
    scan_id: str
    project_id: str
    reason: str = ""


@register
class ScanDeleted(EventPayload, frozen=True, kw_only=True):
    """A finished scan was deleted with its components and findings (``forced``: it carried
    a release label)."""

    event_type = "scan.deleted"
    scan_id: str
    project_id: str
    forced: bool = False


@register
class ScanRematched(EventPayload, frozen=True, kw_only=True):
    """A project's latest snapshot was matched again after the vulnerability database
    changed; ``finding.created`` / ``finding.resolved`` events precede it for each
    difference, and ``result_digest`` (absent when nothing changed) is the blob of the new
    and resolved findings."""

    event_type = "scan.rematched"
    scan_id: str
    project_id: str
    job_id: str
    import_id: str
    created: int = 0
    resolved: int = 0
    rerated: Annotated[
        int, msgspec.Meta(ge=0, description="Open findings whose severity changed")
    ] = 0
    result_digest: Digest | None = None
    vulndb_advisories: Annotated[
        int, msgspec.Meta(ge=0, description="Active advisories the re-match matched against")
    ] = 0
    vulndb_version: Annotated[
        int,
        msgspec.Meta(ge=0, description="Stream sequence of the vulndb.updated it matched against"),
    ] = 0


@register
class FindingCreated(EventPayload, frozen=True, kw_only=True):
    """A finding that is new relative to the project's previous snapshot (``cause: scan``)
    or appeared when the vulnerability database changed (``cause: rematch``)."""

    event_type = "finding.created"
    finding_id: str
    scan_id: str
    project_id: str
    component_ref: str
    component_name: str = ""
    purl: str | None = None
    package: Annotated[str, msgspec.Meta(description="<ecosystem>:<normalised name>")]
    version: str | None = None
    ecosystem: str
    vulnerability_id: Annotated[str, msgspec.Meta(description="The alias group id")]
    advisory_ids: list[str]
    aliases: list[str] = []
    severity: SeverityLevel
    cvss_score: float | None = None
    epss: Probability | None = None
    epss_percentile: Probability | None = None
    state: VexState = "new"
    justification: str | None = None
    discovered_at: dt.datetime
    cause: FindingCause


@register
class FindingResolved(EventPayload, frozen=True, kw_only=True):
    """A finding went away: the next snapshot no longer has it, or (re-match) its advisory
    was withdrawn or the version is no longer in range."""

    event_type = "finding.resolved"
    finding_id: str
    scan_id: str
    project_id: str
    vulnerability_id: str
    package: str = ""
    reason: ResolvedReason
    resolved_by_scan_id: str | None = None


@register
class FindingTriaged(EventPayload, frozen=True, kw_only=True):
    """The VEX state of a finding changed. The (project, package, vulnerability) remembers
    it: the next scan of the project inherits the state (triage carries forward)."""

    event_type = "finding.triaged"
    finding_id: str
    project_id: str
    scan_id: str
    package: str
    vulnerability_id: str
    from_state: VexState
    to_state: VexState
    justification: str | None = None
    detail: str = ""
    version: Annotated[int, msgspec.Meta(ge=1, description="The finding's version after")]
    cause: Annotated[
        TriageCause,
        msgspec.Meta(
            description="triage: PATCH of one finding; bulk: a bulk transition; vex: a VEX "
            "document's statement"
        ),
    ] = "triage"
    source: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=600,
                description="For cause vex: the document's blob digest and the deciding "
                "statement's JSON path, sha256:<hex>#$.statements[2]",
            ),
        ]
        | None
    ) = None


@register
class FindingThresholdExceeded(EventPayload, frozen=True, kw_only=True):
    """A new effective finding's EPSS score is at or above the threshold."""

    event_type = "finding.threshold-exceeded"
    finding_id: str
    scan_id: str
    project_id: str
    vulnerability_id: str
    epss: Probability
    threshold: Probability
