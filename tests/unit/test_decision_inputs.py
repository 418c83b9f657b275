"""The decision's inputs: the effective policy (defaults <- org <- project), the policy
document's canonical form, and the scanner's result blob read by our tolerant Struct."""

from __future__ import annotations

import datetime as dt

from contracts.events.releases import DecisionPolicyDocument
from contracts.rpc.release_decision import DecisionPolicyBody
from services.release_decision.decisions.domain.policy import as_document, effective_policy
from services.release_decision.decisions.policies import canonical
from services.release_decision.decisions.result_blob import decode_findings
from services.scanner.scans.result import (
    ComponentRecord,
    FindingRecord,
    ScanResult,
    encode_result,
)


def test_defaults_org_and_project_override() -> None:
    default = effective_policy(org=None, org_version=0, project=None, project_version=0)
    assert (default.version, default.scope) == (0, "default")
    assert default.block_on_severity == ("CRITICAL", "HIGH")
    assert default.epss_threshold is None and default.max_snapshot_age_hours == 168
    org = DecisionPolicyDocument(epss_threshold=0.3, block_on_severity=["CRITICAL"])
    project = DecisionPolicyDocument(require_signed_commits=True)
    merged = effective_policy(org=org, org_version=4, project=project, project_version=2)
    assert (merged.version, merged.scope) == (2, "project")
    assert merged.block_on_severity == ("CRITICAL",) and merged.epss_threshold == 0.3
    assert merged.require_signed_commits is True
    org_only = effective_policy(org=org, org_version=4, project=None, project_version=3)
    assert (org_only.version, org_only.scope) == (4, "org")
    assert as_document(org_only).block_on_severity == ["CRITICAL"]


def test_canonical_documents_compare_equal() -> None:
    a = canonical(DecisionPolicyBody(block_on_severity=["LOW", "CRITICAL", "LOW"]))
    b = canonical(DecisionPolicyBody(block_on_severity=["CRITICAL", "LOW"]))
    assert a == b and a.block_on_severity == ["CRITICAL", "LOW"]
    evidence = canonical(DecisionPolicyBody(required_evidence=["signature", "sbom"]))
    assert evidence.required_evidence == ["sbom", "signature"]
    assert canonical(DecisionPolicyBody()) == DecisionPolicyDocument()


def test_reads_a_blob_the_scanner_wrote() -> None:
    """Catches drift between the scanner's result format and our tolerant reader."""
    at = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    result = ScanResult(
        scan_id="s1",
        project_id="p1",
        format="cyclonedx-json",
        spec_version="1.5",
        components=(ComponentRecord(ref="c1", name="django", version="2.2.0"),),
        findings=(
            FindingRecord(
                id="f1",
                component_ref="c1",
                component_name="django",
                component_version="2.2.0",
                purl="pkg:pypi/django@2.2.0",
                ecosystem="PyPI",
                package="PyPI:django",
                vulnerability_id="CVE-2020-0001",
                advisory_ids=("GHSA-dj01",),
                aliases=(),
                match="affected",
                severity="CRITICAL",
                epss=0.5,
                state="not_affected",
                discovered_at=at,
            ),
            FindingRecord(
                id="f2",
                component_ref="c1",
                component_name="django",
                component_version="2.2.0",
                purl=None,
                ecosystem="PyPI",
                package="PyPI:django",
                vulnerability_id="GHSA-git",
                advisory_ids=("GHSA-git",),
                aliases=(),
                match="not_evaluated",
                severity="HIGH",
                discovered_at=at,
            ),
        ),
    )
    read = decode_findings(encode_result(result))
    assert read.scan_id == "s1"
    assert [
        (f.id, f.package, f.vulnerability_id, f.severity, f.epss, f.state, f.match)
        for f in read.findings
    ] == [
        ("f1", "PyPI:django", "CVE-2020-0001", "CRITICAL", 0.5, "not_affected", "affected"),
        ("f2", "PyPI:django", "GHSA-git", "HIGH", None, "new", "not_evaluated"),
    ]
