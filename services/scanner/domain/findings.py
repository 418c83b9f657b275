"""A finding as the read side sees it: one (scan, component, vulnerability alias group).

This is the domain's view of a finding row (and of the findings in a scan's result blob);
the VEX, export, diff, gate and notice functions take it, so the wiring only maps rows to
it. ``version`` is the component's version (as in ``finding.created``); ``revision`` is the
finding's optimistic-concurrency version (``If-Match``), bumped by every triage.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

# The states are part of the event contract (finding.created / finding.triaged): one
# definition, there.
from contracts.events.scans import VEX_STATES, VexState

from .package_ids import PackageId, package_id, purl_package
from .severity import Level

__all__ = [
    "NOT_EFFECTIVE",
    "VEX_STATES",
    "Finding",
    "VexState",
    "finding_package",
    "is_effective",
]

# States that take a finding out of the counts that gate a release.
NOT_EFFECTIVE: frozenset[VexState] = frozenset(
    {"not_affected", "false_positive", "suppressed", "fixed"}
)


def is_effective(state: VexState) -> bool:
    """Whether a finding in ``state`` still counts (gate, severity counts, blocking ids)."""
    return state not in NOT_EFFECTIVE


class Finding(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    component_ref: str
    component_name: str = ""
    purl: str | None = None
    ecosystem: str | None = None
    package: str = ""  # the name as the ecosystem spells it ("@scope/name", "group:artifact")
    version: str | None = None
    vulnerability_id: str  # the alias group id (a CVE when the group has one)
    advisory_ids: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    severity: Level = "UNKNOWN"
    cvss_score: float | None = None
    cvss_vector: str | None = None
    epss: float | None = None
    epss_percentile: float | None = None
    state: VexState = "new"
    justification: str | None = None
    detail: str = ""
    revision: int = 1
    discovered_at: datetime | None = None

    @property
    def effective(self) -> bool:
        return is_effective(self.state)

    @property
    def vulnerability_ids(self) -> tuple[str, ...]:
        """The group id, then every advisory id and alias (no repeats)."""
        return tuple(dict.fromkeys((self.vulnerability_id, *self.advisory_ids, *self.aliases)))


def finding_package(finding: Finding) -> PackageId | None:
    """The package identity of a finding's component: from its purl, else from its OSV
    ecosystem and package name; None when neither says which ecosystem."""
    if finding.purl:
        found = purl_package(finding.purl)
        if found is not None:
            return found[0]
    if finding.ecosystem and (finding.package or finding.component_name):
        return package_id(finding.ecosystem, finding.package or finding.component_name)
    return None
