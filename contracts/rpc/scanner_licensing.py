"""``svc.scanner.license_*`` and ``licenses``: the license policy (org default and project
overrides), waivers, and a snapshot's licenses.

The bodies the gateway takes (``LicensePolicyBody``, ``WaiverBody``) and the views are the
HTTP bodies as they are. ``if_match``: the versions the caller accepts (from ``If-Match:
"v<n>"``); None is no ``If-Match`` or ``*`` (any version). A policy that was never set has
version 0 (``If-Match: "v0"`` creates it only if nobody did meanwhile).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.events.licensing import (
    POLICY_ENTRIES_MAX,
    LicenseCategory,
    LicensePolicyDocument,
    LicenseText,
    PolicyScope,
)
from contracts.rpc.scanner_scans import DEFAULT_LIMIT, Cursor, Limit, ScanIdPin

SERVICE = "scanner"
POLICY_GET = "license_policy_get"
POLICY_PUT = "license_policy_put"
POLICY_DELETE = "license_policy_delete"
WAIVER_GRANT = "license_waiver_grant"
WAIVER_REVOKE = "license_waiver_revoke"
WAIVER_LIST = "license_waiver_list"
WAIVER_GET = "license_waiver_get"
LICENSES = "licenses"

# A waiver's reason; a policy document's encoded size (it travels in one event).
REASON_MAX = 1000
POLICY_BYTES_MAX = 256 * 1024

PolicyEntries = Annotated[
    list[LicenseText],
    msgspec.Meta(
        max_length=POLICY_ENTRIES_MAX,
        description="SPDX license ids (GPL-2.0-or-later), ids WITH an exception, or "
        "LicenseRef-… ids; no AND/OR expressions",
    ),
]


# ---- policies -------------------------------------------------------------------------------
class LicensePolicyBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PUT /api/v1/license-policy`` and ``PUT /api/v1/projects/{project}/license-policy``.

    ``default``: the category of an SPDX license on no list; ``unknown``: of a license SPDX
    does not know (an unrecognised name, a LicenseRef not listed); ``no_license``: of a
    component that declares none. In the org policy an unset fallback is ``unknown``; in a
    project override it is inherited from the org policy.
    """

    allowed: PolicyEntries = []
    conditional: PolicyEntries = []
    forbidden: PolicyEntries = []
    default: LicenseCategory | None = None
    unknown: LicenseCategory | None = None
    no_license: LicenseCategory | None = None


ProjectId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PolicyGetRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The org policy (``project_id`` None) or a project's."""

    project_id: ProjectId | None = None


class PolicyPutRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ProjectId | None = None
    if_match: list[int] | None = None
    document: LicensePolicyBody


class PolicyDeleteRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Remove a project's override: the project follows the org policy again."""

    project_id: ProjectId
    if_match: list[int] | None = None


class LicensePolicyView(msgspec.Struct, frozen=True, kw_only=True):
    """A policy and what is in force.

    Org: ``document`` is the org policy (the built-in default, every license ``unknown``,
    while ``version`` is 0). Project: ``document`` is its override (null: none, the org
    policy applies), ``effective`` the org policy merged with it, ``org_version`` the org
    policy's version it was merged with. ``version`` is the ETag (``"v<version>"``).
    """

    scope: PolicyScope
    project_id: str | None = None
    version: int
    document: LicensePolicyDocument | None
    effective: LicensePolicyDocument
    org_version: int
    updated_at: dt.datetime | None = None
    updated_by: str | None = None


# ---- waivers --------------------------------------------------------------------------------
WaiverStatus = Literal["active", "expired", "revoked"]


class WaiverBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/v1/projects/{project}/license-policy/waivers``."""

    license: Annotated[
        LicenseText,
        msgspec.Meta(
            description="An SPDX id, a license name as components declare it, or a "
            "whole expression (GPL-2.0-only OR MIT)"
        ),
    ]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=REASON_MAX)]
    expires_at: Annotated[
        dt.datetime, msgspec.Meta(tz=True, description="When the waiver ends (in the future)")
    ]
    purl: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=1000,
                description="Only components of this package (pkg:npm/x: every version; "
                "pkg:npm/x@1.0.0: that version)",
            ),
        ]
        | None
    ) = None


class WaiverGrantRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ProjectId
    body: WaiverBody


class WaiverRevokeRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ProjectId
    waiver_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    reason: Annotated[str, msgspec.Meta(max_length=REASON_MAX)] = ""


class WaiverRef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ProjectId
    waiver_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class WaiverView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    project_id: str
    license: str
    purl: str | None
    reason: str
    expires_at: dt.datetime
    status: Annotated[WaiverStatus, msgspec.Meta(description="expired: expires_at has passed")]
    granted_at: dt.datetime
    granted_by: str
    revoked_at: dt.datetime | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None


class WaiverListQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Waivers of the project, newest first (``status`` filters; repeat it for several)."""

    status: list[WaiverStatus] | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class WaiverListRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ProjectId
    query: WaiverListQuery = WaiverListQuery()


class WaiverPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[WaiverView]
    next_cursor: str | None


# ---- a snapshot's licenses -----------------------------------------------------------------
class LicensesQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Licenses of the latest snapshot (or of ``scan_id``), most restrictive first."""

    scan_id: ScanIdPin | None = None
    category: list[LicenseCategory] | None = None
    cursor: Cursor | None = None
    limit: Limit = DEFAULT_LIMIT


class LicensesRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project_id: ProjectId
    query: LicensesQuery = LicensesQuery()


class PolicyInForce(msgspec.Struct, frozen=True, kw_only=True):
    """The policy a snapshot's categories were evaluated with."""

    org_policy_version: int
    project_policy_version: int
    project_override: bool
    waiver_ids: list[str]
    evaluated_at: dt.datetime
    source: Annotated[
        Literal["scan", "relicensed"],
        msgspec.Meta(
            description="scan: as the scan classified them; relicensed: evaluated "
            "again after the policy or a waiver changed"
        ),
    ]


class LicenseUsage(msgspec.Struct, frozen=True, kw_only=True):
    """One license expression in one category (a purl-scoped waiver can split an
    expression over two categories)."""

    license: Annotated[
        str | None, msgspec.Meta(description="The normalised SPDX expression; null: none declared")
    ]
    category: LicenseCategory
    component_count: int
    waived: Annotated[bool, msgspec.Meta(description="A waiver made some of them allowed")]
    waived_count: int
    waiver_ids: list[str]
    unknown: Annotated[list[str], msgspec.Meta(description="Parts SPDX does not know")]
    reason: str


class LicensesPage(msgspec.Struct, frozen=True, kw_only=True):
    scan_id: Annotated[str | None, msgspec.Meta(description="The snapshot read (None: none yet)")]
    policy: PolicyInForce | None
    items: list[LicenseUsage]
    next_cursor: str | None
