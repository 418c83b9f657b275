"""From parsed components and matcher output to the findings of a scan: pure functions.

* One finding per (component, alias group); its severity is the highest rating among the
  group's advisories that affect the component, its EPSS the highest score among the
  group's CVE ids.
* Triage carries forward: a (package, vulnerability) the project triaged before starts in
  that state.
* ``discovered_at`` is when the project first had the (package, vulnerability): kept from
  the previous snapshot, else the scan's time.
* Counts that gate a release are of *effective* findings (affected and not triaged away);
  *blocking* ones are effective and CRITICAL/HIGH, or with EPSS at or above the threshold.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence

import msgspec

from contracts.events.scans import BLOCKING_IDS_MAX, NOT_EFFECTIVE_STATES, SeverityCounts
from services.scanner.domain.advisory_index import Match
from services.scanner.domain.model import Component, Dependency
from services.scanner.domain.package_ids import PackageId, component_package, package_id
from services.scanner.domain.severity import Rating, effective_rating
from services.scanner.scans.ids import finding_id
from services.scanner.scans.result import ComponentRecord, FindingRecord

SEVERITY_RANK: dict[str, int] = {"CRITICAL": 4, "HIGH": 3, "MEDIUM": 2, "LOW": 1, "UNKNOWN": 0}
# Most restrictive first, so an ascending sort lists what needs attention first.
LICENSE_RANK: dict[str, int] = {"forbidden": 0, "unknown": 1, "conditional": 2, "allowed": 3}
BLOCKING_SEVERITIES = frozenset({"CRITICAL", "HIGH"})


class EpssScore(msgspec.Struct, frozen=True):
    score: float
    percentile: float | None = None


class TriageMemo(msgspec.Struct, frozen=True, kw_only=True):
    state: str
    justification: str | None = None
    detail: str = ""


class PriorFinding(msgspec.Struct, frozen=True, kw_only=True):
    """A finding of the project's previous snapshot, as the diff needs it."""

    id: str
    scan_id: str
    package: str
    vulnerability_id: str
    discovered_at: dt.datetime
    affected: bool = True
    severity: str = "UNKNOWN"


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    component_count: int
    finding_count: int
    severity_counts: SeverityCounts
    highest_epss: float | None
    epss_over_threshold_count: int
    forbidden_license_count: int
    blocking_finding_ids: list[str]
    blocking_finding_total: int
    not_evaluated_count: int


def package_string(pid: PackageId) -> str:
    """``<ecosystem>:<normalised name>``: how findings and triage name a package."""
    return f"{pid[0]}:{pid[1]}"


def counted_level(level: str) -> str:
    """A rating's level as findings count it: CVSS ``NONE`` is LOW."""
    return "LOW" if level == "NONE" else level if level in SEVERITY_RANK else "UNKNOWN"


def is_effective(finding: FindingRecord) -> bool:
    return finding.match == "affected" and finding.state not in NOT_EFFECTIVE_STATES


def is_blocking(finding: FindingRecord, *, threshold: float) -> bool:
    if not is_effective(finding):
        return False
    if finding.severity in BLOCKING_SEVERITIES:
        return True
    return finding.epss is not None and finding.epss >= threshold


# ---- components -----------------------------------------------------------------------------
LicenseVerdictFn = Callable[[Component], tuple[str, str | None]]


def package_of(component: Component) -> tuple[PackageId, str | None] | None:
    """``component_package``, without parsing the purl again when the reader already took
    the ecosystem and the registry name from it (SBOM and lockfile readers do): the same
    answer, for a fraction of the cost on a 10,000-component document."""
    if component.ecosystem and component.package and component.version:
        return package_id(component.ecosystem, component.package), component.version
    return component_package(component)


def component_records(
    components: Iterable[Component], *, classify: LicenseVerdictFn
) -> list[ComponentRecord]:
    """Components as the result stores them: with their package id and license verdict."""
    records = []
    for component in components:
        found = package_of(component)
        category, expression = classify(component)
        records.append(
            ComponentRecord(
                ref=component.ref,
                name=component.name,
                version=found[1] if found else component.version,
                purl=component.purl,
                ecosystem=found[0][0] if found else component.ecosystem,
                package=package_string(found[0]) if found else None,
                type=component.type,
                group=component.group,
                scope=component.scope,
                direct=component.direct,
                hashes=component.hashes,
                licenses=component.licenses,
                license_expression=expression,
                license_category=category,
            )
        )
    return records


def matchable(records: Iterable[ComponentRecord]) -> list[Component]:
    """What the matcher needs of each component with a package id: ref, ecosystem, the
    normalised name and the version (no purl to parse again)."""
    found = []
    for record in records:
        if record.package is None:
            continue
        ecosystem, _, key = record.package.partition(":")
        found.append(
            Component(ref=record.ref, name=key, ecosystem=ecosystem, version=record.version)
        )
    return found


# ---- findings -------------------------------------------------------------------------------
def group_rating(advisory_ids: Iterable[str], ratings: Mapping[str, Rating]) -> Rating:
    """The highest rating among ``advisory_ids``: by score when both have one, else by level."""
    best: Rating | None = None
    for advisory_id in advisory_ids:
        rating = ratings.get(advisory_id)
        if rating is None:
            continue
        if best is None or _rating_key(rating) > _rating_key(best):
            best = rating
    return best or Rating("UNKNOWN")


def _rating_key(rating: Rating) -> tuple[int, float]:
    return SEVERITY_RANK[counted_level(rating.level)], rating.score or -1.0


def group_epss(members: Iterable[str], scores: Mapping[str, EpssScore]) -> EpssScore | None:
    """The highest EPSS score among the CVE ids of an alias group."""
    best: EpssScore | None = None
    for member in members:
        score = scores.get(member)
        if score is not None and (best is None or score.score > best.score):
            best = score
    return best


def build_findings(
    *,
    scan_id: str,
    components: Sequence[ComponentRecord],
    matches: Iterable[Match],
    ratings: Mapping[str, Rating],
    members: Callable[[str], Sequence[str]],
    epss: Mapping[str, EpssScore],
    triage: Mapping[tuple[str, str], TriageMemo],
    prior: Mapping[tuple[str, str], PriorFinding],
    now: dt.datetime,
) -> list[FindingRecord]:
    by_ref = {c.ref: c for c in components}
    findings = []
    for match in matches:
        component = by_ref.get(match.component_ref)
        if component is None or component.package is None:
            continue
        group = match.group_id
        group_members = members(match.advisory_ids[0]) if match.advisory_ids else (group,)
        # No CVSS among the matched advisories: the group's other records (a GHSA or CVE
        # naming the same weakness) rate it.
        rating = effective_rating(
            group_rating(match.advisory_ids, ratings),
            {m: ratings[m] for m in group_members if m in ratings},
        )
        score = group_epss(group_members, epss)
        key = (component.package, group)
        memo = triage.get(key)
        before = prior.get(key)
        findings.append(
            FindingRecord(
                id=finding_id(scan_id, component.ref, group),
                component_ref=component.ref,
                component_name=component.name,
                component_version=component.version,
                purl=component.purl,
                ecosystem=component.ecosystem or component.package.split(":", 1)[0],
                package=component.package,
                vulnerability_id=group,
                advisory_ids=match.advisory_ids,
                aliases=tuple(m for m in group_members if m != group),
                match=match.verdict.status,
                match_reason=match.verdict.reason,
                severity=counted_level(rating.level),
                cvss_score=rating.score,
                epss=score.score if score else None,
                epss_percentile=score.percentile if score else None,
                state=memo.state if memo else "new",
                justification=memo.justification if memo else None,
                detail=memo.detail if memo else "",
                discovered_at=before.discovered_at if before else now,
            )
        )
    return findings


def summarize(
    components: Sequence[ComponentRecord], findings: Sequence[FindingRecord], *, threshold: float
) -> Summary:
    counts = dict.fromkeys(SEVERITY_RANK, 0)
    effective = [f for f in findings if is_effective(f)]
    for finding in effective:
        counts[finding.severity] += 1
    epss_values = [f.epss for f in effective if f.epss is not None]
    blocking = [f.id for f in effective if is_blocking(f, threshold=threshold)]
    return Summary(
        component_count=len(components),
        finding_count=len(effective),
        severity_counts=SeverityCounts(**counts),
        highest_epss=max(epss_values) if epss_values else None,
        epss_over_threshold_count=sum(1 for value in epss_values if value >= threshold),
        forbidden_license_count=sum(1 for c in components if c.license_category == "forbidden"),
        blocking_finding_ids=sorted(blocking)[:BLOCKING_IDS_MAX],
        blocking_finding_total=len(blocking),
        not_evaluated_count=sum(1 for f in findings if f.match == "not_evaluated"),
    )


def snapshot_diff(
    current: Sequence[FindingRecord], prior: Iterable[PriorFinding]
) -> tuple[list[FindingRecord], list[PriorFinding]]:
    """Affected findings new relative to the previous snapshot, and the previous snapshot's
    affected findings this one no longer has, by (package, vulnerability)."""
    before = {(p.package, p.vulnerability_id): p for p in prior if p.affected}
    now_keys = {(f.package, f.vulnerability_id) for f in current if f.match == "affected"}
    created = [
        f
        for f in current
        if f.match == "affected" and (f.package, f.vulnerability_id) not in before
    ]
    resolved = [p for key, p in sorted(before.items()) if key not in now_keys]
    return created, resolved


# ---- a canonical SBOM for a source scan -----------------------------------------------------
def cyclonedx_for(
    components: Sequence[ComponentRecord], dependencies: Sequence[Dependency]
) -> bytes:
    """A CycloneDX 1.5 JSON document of what a source scan found: deterministic (no serial
    number, no timestamp), so the same tree gives the same digest."""
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "components": [
            {
                key: value
                for key, value in (
                    ("bom-ref", c.ref),
                    ("type", c.type),
                    ("name", c.name),
                    ("version", c.version),
                    ("purl", c.purl),
                    ("scope", _cyclonedx_scope(c.scope)),
                )
                if value is not None
            }
            for c in components
        ],
        "dependencies": [{"ref": d.ref, "dependsOn": list(d.depends_on)} for d in dependencies],
    }
    return msgspec.json.encode(document)


def _cyclonedx_scope(scope: str) -> str | None:
    if scope in ("required", "optional", "excluded"):
        return scope
    return "optional" if scope == "dev" else None
