"""What changed between two snapshots of a project (``diff?base=&target=``).

Components are keyed by package identity: ``(ecosystem, normalised name)`` from the purl or
the ecosystem (so ``Django`` and ``django`` are one package), else ``(type, group/name)``
lower-cased. A package only in the target is *added*, only in the base *removed*; in both
with different version sets it *changed* (npm trees can hold several versions of one
package, so the versions are sets).

Vulnerabilities are keyed by (package identity, vulnerability). Alias groups can merge
between snapshots (a GHSA group becomes a CVE group when the alias arrives), so two findings
of the same package are the same vulnerability when their id sets (group id, advisory ids,
aliases) intersect. *New*: in the target without a counterpart in the base; *resolved*: the
reverse. Triage states do not make a finding new or resolved; they are reported as they are
in the target (new) or base (resolved).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from .findings import Finding, VexState, finding_package
from .model import Component
from .package_ids import component_package
from .severity import Level

Identity = tuple[str, str]


class ComponentChange(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ecosystem: str
    package: str
    name: str
    base_versions: list[str] = []
    target_versions: list[str] = []


class VulnerabilityChange(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ecosystem: str
    package: str
    vulnerability_id: str
    aliases: list[str] = []
    severity: Level
    state: VexState
    finding_ids: list[str]


class SnapshotDiff(msgspec.Struct, frozen=True, kw_only=True):
    components_added: list[ComponentChange]
    components_removed: list[ComponentChange]
    components_changed: list[ComponentChange]
    vulnerabilities_new: list[VulnerabilityChange]
    vulnerabilities_resolved: list[VulnerabilityChange]


def component_identity(component: Component) -> Identity:
    """``(ecosystem, key)`` when the ecosystem is known, else ``(type, group/name)``."""
    found = component_package(component)
    if found is not None:
        return found[0]
    name = component.name
    return (
        component.type.lower() or "library",
        f"{component.group}/{name}".lower() if component.group else name.lower(),
    )


def _finding_identity(finding: Finding) -> Identity:
    pid = finding_package(finding)
    if pid is not None:
        return pid
    name = finding.package or finding.component_name or finding.component_ref
    return ("library", name.lower())


def _components(components: Iterable[Component]) -> dict[Identity, tuple[str, set[str]]]:
    result: dict[Identity, tuple[str, set[str]]] = {}
    for component in components:
        identity = component_identity(component)
        _, versions = result.setdefault(identity, (component.name, set()))
        if component.version:
            versions.add(component.version)
    return result


def _vulnerabilities(findings: Iterable[Finding]) -> dict[Identity, list[list[Finding]]]:
    """Per package, findings clustered by intersecting id sets (one cluster = one
    vulnerability of that package)."""
    clusters: dict[Identity, list[tuple[set[str], list[Finding]]]] = {}
    for finding in findings:
        identity = _finding_identity(finding)
        ids = {i.upper() for i in finding.vulnerability_ids}
        groups = clusters.setdefault(identity, [])
        joined = [g for g in groups if g[0] & ids]
        if not joined:
            groups.append((ids, [finding]))
            continue
        first = joined[0]
        first[0].update(ids)
        first[1].append(finding)
        for other in joined[1:]:
            first[0].update(other[0])
            first[1].extend(other[1])
            groups.remove(other)
    return {identity: [members for _, members in groups] for identity, groups in clusters.items()}


def _change(identity: Identity, members: Sequence[Finding]) -> VulnerabilityChange:
    representative = min(members, key=lambda f: (f.vulnerability_id, f.id))
    ids = {i for f in members for i in f.vulnerability_ids}
    return VulnerabilityChange(
        ecosystem=identity[0],
        package=identity[1],
        vulnerability_id=representative.vulnerability_id,
        aliases=sorted(ids - {representative.vulnerability_id}),
        severity=representative.severity,
        state=representative.state,
        finding_ids=sorted(f.id for f in members),
    )


def diff_snapshots(
    base_components: Iterable[Component],
    target_components: Iterable[Component],
    base_findings: Iterable[Finding],
    target_findings: Iterable[Finding],
) -> SnapshotDiff:
    """Every list in the result is sorted (by package identity, then vulnerability id)."""
    base, target = _components(base_components), _components(target_components)
    added = [
        ComponentChange(
            ecosystem=i[0], package=i[1], name=target[i][0], target_versions=sorted(target[i][1])
        )
        for i in sorted(target.keys() - base.keys())
    ]
    removed = [
        ComponentChange(
            ecosystem=i[0], package=i[1], name=base[i][0], base_versions=sorted(base[i][1])
        )
        for i in sorted(base.keys() - target.keys())
    ]
    changed = [
        ComponentChange(
            ecosystem=i[0],
            package=i[1],
            name=target[i][0],
            base_versions=sorted(base[i][1]),
            target_versions=sorted(target[i][1]),
        )
        for i in sorted(base.keys() & target.keys())
        if base[i][1] != target[i][1]
    ]
    base_vulns, target_vulns = _vulnerabilities(base_findings), _vulnerabilities(target_findings)

    def unmatched(
        side: dict[Identity, list[list[Finding]]], other: dict[Identity, list[list[Finding]]]
    ) -> list[VulnerabilityChange]:
        result = []
        for identity in sorted(side):
            other_ids = [
                {i.upper() for f in members for i in f.vulnerability_ids}
                for members in other.get(identity, [])
            ]
            for members in side[identity]:
                ids = {i.upper() for f in members for i in f.vulnerability_ids}
                if not any(ids & o for o in other_ids):
                    result.append(_change(identity, members))
        return sorted(result, key=lambda c: (c.ecosystem, c.package, c.vulnerability_id))

    return SnapshotDiff(
        components_added=added,
        components_removed=removed,
        components_changed=changed,
        vulnerabilities_new=unmatched(target_vulns, base_vulns),
        vulnerabilities_resolved=unmatched(base_vulns, target_vulns),
    )
