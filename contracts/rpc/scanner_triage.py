"""``svc.scanner.finding_triage``, ``bulk_transition``, ``vex_import``, ``vex_export``: the
triage of findings (VEX states) and VEX documents in and out.

The bodies the gateway takes (``TriageBody``, ``BulkTransitionBody``) and the replies
(``FindingView`` from ``scanner_scans``, ``BulkTransitionReply``, ``VexImportSummary``) are
the HTTP bodies as they are. Roles travel with the call (``CallContext.roles``): the scanner
applies the triage role rules (``services/scanner/domain/vex.py``) itself, so its refusals
carry the domain's codes (``vex_role_forbidden`` …). VEX documents travel as blobs: the
gateway stores an uploaded one and names it by digest; an export is stored by the scanner
and read back by the gateway (a document of a large project exceeds a NATS message).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from contracts.events.scans import Digest, VexState
from contracts.rpc.scanner_scans import FindingView, ScanIdPin

SERVICE = "scanner"
FINDING_TRIAGE = "finding_triage"
BULK_TRANSITION = "bulk_transition"
VEX_IMPORT = "vex_import"
VEX_EXPORT = "vex_export"

FindingId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Justification = Annotated[
    str,
    msgspec.Meta(
        max_length=100,
        description="With not_affected only: a CycloneDX (code_not_reachable …) or OpenVEX "
        "(vulnerable_code_not_in_execute_path …) justification",
    ),
]
Detail = Annotated[
    str,
    msgspec.Meta(
        description="The reason in words (required for false_positive and suppressed; at "
        "most 4,000 characters)"
    ),
]
VexFormat = Literal["openvex", "cyclonedx"]


# ---- one finding ---------------------------------------------------------------------------
class TriageBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PATCH /api/v1/findings/{id}``: the state to set, with its reasons."""

    state: VexState
    justification: Justification | None = None
    detail: Detail = ""


class FindingTriageRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``if_match``: the revisions the caller accepts (from ``If-Match: "v<n>"``); None is
    ``If-Match: *`` (any revision)."""

    finding_id: FindingId
    only_project: str | None = None
    if_match: list[int] | None
    state: VexState
    justification: Justification | None = None
    detail: Detail = ""


# ---- bulk ----------------------------------------------------------------------------------
class BulkTransitionBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One transition for 1..200 findings of the project (no If-Match: unconditional)."""

    ids: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=100)]],
        msgspec.Meta(description="1 to 200 distinct finding ids"),
    ]
    state: VexState
    justification: Justification | None = None
    detail: Detail = ""


class BulkTransitionRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: str
    body: BulkTransitionBody


RowOutcome = Literal["updated", "unchanged", "failed"]


class BulkRowView(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One requested finding. ``status``: the HTTP status this row would have had alone
    (200, or 403 / 404 / 409 / 412 / 422 with ``code``)."""

    id: str
    ok: bool
    status: int
    outcome: RowOutcome
    code: str | None = None
    detail: str | None = None
    from_state: VexState | None = None
    finding: FindingView | None = None


class BulkTransitionReply(msgspec.Struct, frozen=True, kw_only=True):
    """Rows in request order; a refused row does not stop the others."""

    items: list[BulkRowView]
    updated: int
    unchanged: int
    failed: int


# ---- VEX import ----------------------------------------------------------------------------
class VexImportRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: str
    digest: Digest
    size: Annotated[int, msgspec.Meta(ge=1)]


class VexChange(msgspec.Struct, frozen=True, kw_only=True):
    finding_id: str
    vulnerability_id: str
    package: str
    from_state: VexState
    to_state: VexState
    statement: Annotated[str, msgspec.Meta(description="JSON path of the deciding statement")]


class VexRefusal(msgspec.Struct, frozen=True, kw_only=True):
    """A statement the triage rules refused for a finding (e.g. ``fixed`` →
    ``not_affected``: ``vex_transition_not_allowed``; ``not_affected`` without a
    justification: ``vex_justification_required``)."""

    finding_id: str
    vulnerability_id: str
    package: str
    from_state: VexState
    to_state: VexState
    statement: str
    code: str
    detail: str


class VexUnmatched(msgspec.Struct, frozen=True, kw_only=True):
    """A statement that names no finding of the snapshot."""

    statement: str
    vulnerability_id: str


class VexWarningView(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    detail: str
    location: str


class VexImportSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What an import did to the project's latest snapshot. ``applied``: findings whose
    state changed (one ``finding.triaged`` each); ``unchanged``: already in the stated
    state; ``refused``: refused by the triage rules (listed with codes); ``unmatched``:
    statements that name no finding. Lists are capped at ``LIST_MAX`` (the counts are not)."""

    scan_id: str
    format: VexFormat
    spec_version: str
    statements: int
    applied: int
    unchanged: int
    refused: int
    unmatched: int
    changes: list[VexChange]
    refusals: list[VexRefusal]
    unmatched_statements: list[VexUnmatched]
    warnings: list[VexWarningView]


LIST_MAX = 500


# ---- VEX export ----------------------------------------------------------------------------
class VexExportQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``GET /api/v1/projects/{project}/vex`` query."""

    format: Annotated[VexFormat, msgspec.Meta(description="openvex (0.2.0) or cyclonedx (1.6)")]
    scan_id: ScanIdPin | None = None


class VexExportRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: str
    product_name: Annotated[str, msgspec.Meta(max_length=255)]
    query: VexExportQuery


class VexExported(msgspec.Struct, frozen=True, kw_only=True):
    """The document is the blob ``digest`` (deterministic: the same snapshot and triage give
    the same bytes)."""

    scan_id: str
    format: VexFormat
    digest: Digest
    size: int
    statements: Annotated[int, msgspec.Meta(description="Findings the document covers")]
