"""Snapshot diff: components by package identity, vulnerabilities by (package, weakness)."""

from __future__ import annotations

from typing import Any

from services.scanner.domain.diff import diff_snapshots
from services.scanner.domain.findings import Finding
from services.scanner.domain.model import Component


def pypi(name: str, version: str, ref: str | None = None) -> Component:
    return Component(
        ref=ref or f"{name}@{version}",
        name=name,
        version=version,
        purl=f"pkg:pypi/{name}@{version}",
        ecosystem="PyPI",
    )


def finding(ref: str, purl: str, group: str, **kw: Any) -> Finding:
    return Finding(
        id=f"{ref}:{group}",
        component_ref=ref,
        purl=purl,
        ecosystem="PyPI",
        vulnerability_id=group,
        **kw,
    )


BASE = [
    pypi("Django", "3.2.0"),
    pypi("requests", "2.0.0"),
    pypi("six", "1.16.0"),
    Component(ref="x", name="Vendored-Thing", version="1", type="library"),
]
TARGET = [
    pypi("django", "4.2.0"),  # same package (PEP 503), new version
    pypi("requests", "2.0.0"),
    pypi("flask", "3.0.0"),
    Component(ref="y", name="vendored-thing", version="1", type="library"),
]


def test_components() -> None:
    result = diff_snapshots(BASE, TARGET, [], [])
    assert [(c.package, c.target_versions) for c in result.components_added] == [
        ("flask", ["3.0.0"])
    ]
    assert [(c.package, c.base_versions) for c in result.components_removed] == [
        ("six", ["1.16.0"])
    ]
    assert [
        (c.ecosystem, c.package, c.base_versions, c.target_versions)
        for c in result.components_changed
    ] == [("PyPI", "django", ["3.2.0"], ["4.2.0"])]


def test_several_versions_of_one_package_are_a_set() -> None:
    base = [pypi("a", "1"), pypi("a", "2")]
    assert diff_snapshots(base, list(reversed(base)), [], []).components_changed == []
    changed = diff_snapshots(base, [pypi("a", "2")], [], []).components_changed
    assert [(c.base_versions, c.target_versions) for c in changed] == [(["1", "2"], ["2"])]


def test_vulnerabilities_new_and_resolved_with_merged_alias_groups() -> None:
    base = [
        finding("d1", "pkg:pypi/django@3.2.0", "GHSA-aaaa", severity="HIGH"),
        finding("r1", "pkg:pypi/requests@2.0.0", "CVE-2023-0001", advisory_ids=("PYSEC-1",)),
        finding("r1", "pkg:pypi/requests@2.0.0", "CVE-2023-0002"),
    ]
    target = [
        # The GHSA group gained its CVE alias and is now named by it: the same weakness.
        finding(
            "d2",
            "pkg:pypi/django@4.2.0",
            "CVE-2024-9999",
            advisory_ids=("GHSA-aaaa",),
            state="not_affected",
        ),
        finding("r1", "pkg:pypi/requests@2.0.0", "CVE-2023-0001", advisory_ids=("PYSEC-1",)),
        finding("r1", "pkg:pypi/requests@2.0.0", "CVE-2024-0003", severity="CRITICAL"),
        # Same CVE, other package: a different finding.
        finding("f1", "pkg:pypi/flask@3.0.0", "CVE-2023-0002"),
    ]
    result = diff_snapshots(BASE, TARGET, base, target)
    assert [(v.package, v.vulnerability_id, v.severity) for v in result.vulnerabilities_new] == [
        ("flask", "CVE-2023-0002", "UNKNOWN"),
        ("requests", "CVE-2024-0003", "CRITICAL"),
    ]
    assert [(v.package, v.vulnerability_id) for v in result.vulnerabilities_resolved] == [
        ("requests", "CVE-2023-0002")
    ]
    assert diff_snapshots(BASE, BASE, base, base).vulnerabilities_new == []


def test_findings_joined_through_a_shared_alias_are_one_vulnerability() -> None:
    base = [finding("a", "pkg:pypi/a@1", "CVE-1", advisory_ids=("GHSA-1",))]
    target = [
        finding("a", "pkg:pypi/a@1", "GHSA-1"),
        finding("a2", "pkg:pypi/a@1", "PYSEC-1", aliases=("CVE-1",)),
    ]
    result = diff_snapshots([], [], base, target)
    assert result.vulnerabilities_new == result.vulnerabilities_resolved == []
