"""Events owned by the scanner's license policy: the policy documents, waivers, and the
re-evaluation of a snapshot's license categories after either changed.

A license policy lists licenses as ``allowed``, ``conditional`` or ``forbidden`` and names
the category of what the lists do not (``default``: an SPDX license on no list;
``unknown``: a license SPDX does not know; ``no_license``: a component that declares
none). The org policy is the default of every project; a project's override wins for what
it lists and for the fallbacks it sets. Each scope's ``version`` counts its changes (1, 2 …)
and is its ETag.

A waiver accepts a license (an id, a name or a whole expression) as ``allowed`` for one
project, optionally only for components whose purl matches (``pkg:npm/x`` every version,
``pkg:npm/x@1.0.0`` one), until ``expires_at``.

``scan.relicensed`` records that a snapshot's license categories were evaluated again
(``policy.changed``, a waiver granted, revoked or expired, or a scan that raced one of
those): ``result_digest`` is the blob of every component's category, and the counts tell a
release decision what changed without calling back.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.envelope import EventPayload, register
from contracts.events.releases import DecisionPolicyDocument
from contracts.events.scans import Digest

LicenseCategory = Literal["allowed", "conditional", "unknown", "forbidden"]
PolicyScope = Literal["org", "project"]
RelicenseCause = Literal[
    "policy_changed", "waiver_granted", "waiver_revoked", "waiver_expired", "scan_raced_change"
]
# Caps that keep the events well under the NATS payload limit (1 MiB).
POLICY_ENTRIES_MAX = 2000
WAIVER_IDS_MAX = 1000
LicenseText = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class LicensePolicyDocument(msgspec.Struct, frozen=True, kw_only=True):
    """A policy as stored: licenses in canonical SPDX spelling. The org policy always sets
    the three fallbacks; a project override sets those it overrides (null: inherited)."""

    allowed: Annotated[list[LicenseText], msgspec.Meta(max_length=POLICY_ENTRIES_MAX)] = []
    conditional: Annotated[list[LicenseText], msgspec.Meta(max_length=POLICY_ENTRIES_MAX)] = []
    forbidden: Annotated[list[LicenseText], msgspec.Meta(max_length=POLICY_ENTRIES_MAX)] = []
    default: LicenseCategory | None = None
    unknown: LicenseCategory | None = None
    no_license: LicenseCategory | None = None


@register
class PolicyChanged(EventPayload, frozen=True, kw_only=True):
    """A policy was set or removed. ``kind: license``: the org license policy (``scope:
    org``) or a project's override (``scope: project``; ``document`` null when the override
    was removed and the project follows the org policy again). The latest snapshot of every
    affected project is evaluated again (``scan.relicensed``). ``kind: release``: the
    release-decision policy (``release_document``, policy id release:org or
    release:project:<project id>); every affected commit is decided again."""

    event_type = "policy.changed"
    policy_id: Annotated[str, msgspec.Meta(description="<kind>:org or <kind>:project:<project id>")]
    kind: Literal["license", "release"] = "license"
    scope: PolicyScope
    project_id: str | None = None
    version: Annotated[int, msgspec.Meta(ge=1, description="Changes of this policy so far")]
    document: LicensePolicyDocument | None = None
    release_document: Annotated[
        DecisionPolicyDocument | None,
        msgspec.Meta(description="kind release: the decision policy (null: override removed)"),
    ] = None


@register
class LicenseWaiverGranted(EventPayload, frozen=True, kw_only=True):
    """A license is accepted as allowed for a project (for one package when ``purl`` is
    set) until ``expires_at``."""

    event_type = "license.waiver-granted"
    waiver_id: str
    project_id: str
    license: LicenseText
    purl: str | None = None
    reason: str
    expires_at: dt.datetime


@register
class LicenseWaiverRevoked(EventPayload, frozen=True, kw_only=True):
    """A waiver was withdrawn before it expired (``revoke_reason`` says why)."""

    event_type = "license.waiver-revoked"
    waiver_id: str
    project_id: str
    license: str
    purl: str | None = None
    reason: str
    expires_at: dt.datetime
    revoke_reason: str = ""


@register
class LicenseWaiverExpired(EventPayload, frozen=True, kw_only=True):
    """A waiver reached ``expires_at`` (published once by the scanner when it notices)."""

    event_type = "license.waiver-expired"
    waiver_id: str
    project_id: str
    license: str
    purl: str | None = None
    reason: str
    expires_at: dt.datetime


class LicenseCounts(msgspec.Struct, frozen=True, kw_only=True):
    """Components per license category."""

    allowed: int = 0
    conditional: int = 0
    unknown: int = 0
    forbidden: int = 0


@register
class ScanRelicensed(EventPayload, frozen=True, kw_only=True):
    """A snapshot's license categories were evaluated again with the policy in force
    (org ``org_policy_version``, project ``project_policy_version``, the active
    ``waiver_ids``, at ``evaluated_at``). ``result_digest`` is the blob of every component's
    category; absent when the job gave up (``given_up``), which changes nothing."""

    event_type = "scan.relicensed"
    scan_id: str
    project_id: str
    job_id: str
    cause: RelicenseCause
    result_digest: Digest | None = None
    org_policy_version: Annotated[int, msgspec.Meta(ge=0, description="0: none set")] = 0
    project_policy_version: Annotated[
        int, msgspec.Meta(ge=0, description="0: the project never had an override")
    ] = 0
    project_override: Annotated[
        bool, msgspec.Meta(description="Whether a project override was in force")
    ] = False
    waiver_ids: Annotated[list[str], msgspec.Meta(max_length=WAIVER_IDS_MAX)] = []
    evaluated_at: dt.datetime
    component_count: int = 0
    counts: LicenseCounts = LicenseCounts()
    forbidden_license_count: Annotated[
        int, msgspec.Meta(description="Components whose license is forbidden, as scan.completed")
    ] = 0
    changed_count: Annotated[int, msgspec.Meta(description="Components whose category changed")] = 0
    given_up: bool = False
