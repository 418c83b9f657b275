"""The parts of an artifact's decision that need no database: its own purl's advisories as
findings, and what its scan on upload adds (pending, failed, vulnerabilities at a blocking
severity when no SBOM snapshot carries them)."""

from __future__ import annotations

from typing import Any

from services.release_decision.decisions.artifact_decisions import (
    own_purl_findings,
    scan_blockers,
)
from services.release_decision.decisions.domain.model import EffectivePolicy


def row(**fields: Any) -> dict[str, Any]:
    return {
        "id": "art_" + "0" * 32,
        "digest": "sha256:" + "a" * 64,
        "path": "lib-2.0-py3-none-any.whl",
        "purl": "pkg:pypi/lib@2.0",
        "scan_status": "passed",
        "advisories": {},
        **fields,
    }


def test_own_purl_findings_one_per_advisory() -> None:
    rows = [
        row(advisories={"GHSA-1": "HIGH", "PYSEC-1": "LOW"}),
        row(id="art_" + "1" * 32, advisories={"GHSA-1": "HIGH"}),
    ]
    found = own_purl_findings(rows)  # type: ignore[arg-type]
    assert [(f.vulnerability_id, f.severity, f.package) for f in found] == [
        ("GHSA-1", "HIGH", "pkg:pypi/lib@2.0"),
        ("PYSEC-1", "LOW", "pkg:pypi/lib@2.0"),
    ]
    assert found[0].id == f"sha256:{'a' * 64}:GHSA-1"


def test_scan_blockers() -> None:
    policy = EffectivePolicy()
    pending = scan_blockers(policy, [row(scan_status="pending")], (), snapshot_known=False)  # type: ignore[list-item]
    assert [(b.code, b.ref) for b in pending] == [("evidence_pending", "art_" + "0" * 32)]
    failed = scan_blockers(policy, [row(scan_status="failed")], (), snapshot_known=False)  # type: ignore[list-item]
    assert [(b.code, b.ref) for b in failed] == [("no_evidence", "artifact_scan")]
    rows = [row(advisories={"GHSA-1": "HIGH", "PYSEC-1": "LOW"})]
    findings = own_purl_findings(rows)  # type: ignore[arg-type]
    vulnerable = scan_blockers(policy, rows, findings, snapshot_known=False)  # type: ignore[arg-type]
    assert [(b.code, b.message) for b in vulnerable] == [
        ("vulnerability", "GHSA-1 in pkg:pypi/lib@2.0 (HIGH)")
    ]
    # An SBOM snapshot carries them (the rules see them there): not twice.
    assert scan_blockers(policy, rows, findings, snapshot_known=True) == []  # type: ignore[arg-type]
    lenient = EffectivePolicy(block_on_severity=("CRITICAL",))
    assert scan_blockers(lenient, rows, findings, snapshot_known=False) == []  # type: ignore[arg-type]
