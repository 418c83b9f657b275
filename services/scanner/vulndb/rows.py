"""What the read model stores of an advisory, and alias groups over stored edges. Pure.

Severity is derived here (``domain.severity``), as is the package index (``package_ids``):
the same functions the matcher uses, so the table and the in-memory index agree on which
package an advisory names and which group an id belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.scanner.domain.advisory_index import canonical_group_id
from services.scanner.domain.package_ids import PackageId, package_id
from services.scanner.domain.severity import advisory_severity
from services.scanner.vulndb.bundle import BundleEntry, ecosystems_of


@dataclass(frozen=True, slots=True)
class AdvisoryRow:
    id: str
    modified: datetime
    published: datetime | None
    withdrawn: datetime | None
    ecosystems: tuple[str, ...]
    aliases: tuple[str, ...]
    severity: str
    cvss_score: float | None
    severity_source: str | None
    severity_vector: str | None
    summary: str | None
    document: bytes
    packages: tuple[PackageId, ...]

    @property
    def active(self) -> bool:
        return self.withdrawn is None


def advisory_row(entry: BundleEntry) -> AdvisoryRow:
    advisory = entry.advisory
    rating = advisory_severity(advisory)
    packages = sorted(
        {
            package_id(affected.package.ecosystem, affected.package.name)
            for affected in advisory.affected
            if affected.package is not None
        }
    )
    return AdvisoryRow(
        id=advisory.id,
        modified=advisory.modified,
        published=advisory.published,
        withdrawn=advisory.withdrawn,
        ecosystems=ecosystems_of(advisory),
        # An alias naming the advisory itself joins nothing.
        aliases=tuple(sorted({a for a in advisory.aliases if a and a != advisory.id})),
        severity=rating.level,
        cvss_score=rating.score,
        severity_source=rating.source,
        severity_vector=rating.vector,
        summary=(advisory.summary or None) and advisory.summary[:1000],
        document=entry.raw,
        packages=tuple(packages),
    )


def alias_groups(active_ids: Iterable[str], edges: Iterable[tuple[str, str]]) -> dict[str, str]:
    """member → group id for every active advisory and every id joined to one by an edge
    (an advisory id and one of its aliases), with the matcher's choice of group id."""
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        parent.setdefault(node, node)
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:
            parent[node], node = root, parent[node]
        return root

    for node in active_ids:
        find(node)
    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, list[str]] = {}
    for node in parent:
        members.setdefault(find(node), []).append(node)
    groups: dict[str, str] = {}
    for group in members.values():
        group_id = canonical_group_id(group)
        for node in group:
            groups[node] = group_id
    return groups
