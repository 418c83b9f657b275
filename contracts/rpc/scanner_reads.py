"""``svc.scanner.policy_gate``, ``snapshot_diff``, ``sbom_export``, ``notice``: reports on a
project's snapshots (the latest, or the one pinned by ``scan_id``).

Documents (SBOMs, notices) travel as blobs: the scanner stores the rendered document and
names it by digest, the gateway reads it back (a large project's SBOM exceeds a NATS
message). Rendering is deterministic: the same snapshot and triage give the same bytes.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.events.scans import Digest, SeverityLevel, VexState
from contracts.rpc.scanner_scans import DEFAULT_LIMIT, Cursor, Limit, ScanIdPin

SERVICE = "scanner"
POLICY_GATE = "policy_gate"
SNAPSHOT_DIFF = "snapshot_diff"
SBOM_EXPORT = "sbom_export"
NOTICE = "notice"

Gate = Literal["pass", "warn", "fail"]
SbomFormat = Literal["cyclonedx-json", "cyclonedx-xml", "spdx-json"]
NoticeFormat = Literal["text", "markdown", "html"]
ProjectId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


# ---- policy gate ----------------------------------------------------------------------------
class PolicyGateQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    scan_id: ScanIdPin | None = None


class PolicyGateRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ProjectId
    query: PolicyGateQuery = PolicyGateQuery()


class PolicyGateView(msgspec.Struct, frozen=True, kw_only=True):
    """The scanner's verdict on a snapshot.

    ``fail``: an effective CRITICAL finding, a forbidden license, or an effective finding
    with EPSS at or above ``epss_threshold``. ``warn``: otherwise an effective HIGH finding,
    a conditional or unknown license, or (component, vulnerability) pairs that could not be
    evaluated. ``pass``: none of those. A project without a snapshot fails (nothing was
    scanned). Counts of vulnerabilities are of distinct vulnerabilities; license counts
    are of components.
    """

    gate: Gate
    critical_cve_count: int
    high_cve_count: int
    forbidden_license_count: int
    conditional_license_count: int
    unknown_license_count: int
    epss_gate_count: int
    epss_threshold: float
    not_evaluated_count: int
    reason: str
    reasons: list[str]
    blocking_finding_ids: list[str]
    scan_id: str | None
    evaluated_at: dt.datetime
    licenses_evaluated_at: Annotated[
        dt.datetime | None,
        msgspec.Meta(description="When the snapshot's license categories were last evaluated"),
    ] = None


# ---- diff -----------------------------------------------------------------------------------
class DiffQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``target``: a snapshot (default: the latest); ``base``: an earlier or any other
    snapshot of the project (default: the snapshot before ``target``). The five lists are
    paged together, in the order components added, removed, changed, vulnerabilities new,
    resolved; the counts are of everything."""

    base: ScanIdPin | None = None
    target: ScanIdPin | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class DiffRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ProjectId
    query: DiffQuery = DiffQuery()


class ComponentChangeView(msgspec.Struct, frozen=True, kw_only=True):
    ecosystem: str
    package: str
    name: str
    base_versions: list[str]
    target_versions: list[str]


class VulnerabilityChangeView(msgspec.Struct, frozen=True, kw_only=True):
    ecosystem: str
    package: str
    vulnerability_id: str
    aliases: list[str]
    severity: SeverityLevel
    state: VexState
    finding_ids: list[str]


class DiffCounts(msgspec.Struct, frozen=True, kw_only=True):
    components_added: int
    components_removed: int
    components_changed: int
    vulnerabilities_new: int
    vulnerabilities_resolved: int


class SnapshotDiffPage(msgspec.Struct, frozen=True, kw_only=True):
    base_scan_id: str
    target_scan_id: str
    counts: DiffCounts
    components_added: list[ComponentChangeView]
    components_removed: list[ComponentChangeView]
    components_changed: list[ComponentChangeView]
    vulnerabilities_new: list[VulnerabilityChangeView]
    vulnerabilities_resolved: list[VulnerabilityChangeView]
    next_cursor: str | None


# ---- documents ------------------------------------------------------------------------------
class SbomQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format: Annotated[
        SbomFormat,
        msgspec.Meta(
            description="cyclonedx-json, cyclonedx-xml (with vulnerabilities and "
            "their VEX analysis) or spdx-json (2.3; advisories as SECURITY references)"
        ),
    ] = "cyclonedx-json"
    spec_version: Annotated[Literal["1.5", "1.6"], msgspec.Meta(description="CycloneDX only")] = (
        "1.6"
    )
    scan_id: ScanIdPin | None = None


class SbomRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ProjectId
    product_name: Annotated[str, msgspec.Meta(max_length=255)]
    query: SbomQuery = SbomQuery()


class NoticeQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format: NoticeFormat = "text"
    scan_id: ScanIdPin | None = None


class NoticeRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ProjectId
    title: Annotated[str, msgspec.Meta(max_length=255)]
    query: NoticeQuery = NoticeQuery()


class DocumentExported(msgspec.Struct, frozen=True, kw_only=True):
    """The document is the blob ``digest``; ``media_type`` its Content-Type."""

    scan_id: str
    format: str
    media_type: str
    extension: Annotated[str, msgspec.Meta(description="File name ending: .cdx.json …")]
    digest: Digest
    size: int
    components: int
