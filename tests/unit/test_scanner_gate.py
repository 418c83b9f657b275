"""The policy gate: fail / warn / pass rules over effective findings and license results."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.scanner.domain.findings import VEX_STATES, Finding
from services.scanner.domain.gate import evaluate_gate
from services.scanner.domain.license_policy import LicenseResult
from services.scanner.domain.licenses import CATEGORIES, LicenseVerdict
from services.scanner.domain.severity import LEVELS

THRESHOLD = 0.5


def finding(n: int, severity: str = "LOW", **kw: Any) -> Finding:
    base: dict[str, Any] = {
        "id": f"f-{n:03d}",
        "component_ref": f"c{n}",
        "vulnerability_id": f"CVE-2024-{n:04d}",
        "severity": severity,
    }
    base.update(kw)
    return Finding(**base)


def license_result(name: str, category: str, expression: str | None = "X") -> LicenseResult:
    return LicenseResult(
        component_ref=name,
        name=name,
        verdict=LicenseVerdict(category=category, expression=expression, reason=""),  # type: ignore[arg-type]
    )


def test_pass() -> None:
    verdict = evaluate_gate(
        [finding(1, "MEDIUM"), finding(2, "CRITICAL", state="not_affected")],
        [license_result("a", "allowed")],
        epss_threshold=THRESHOLD,
        scan_id="s1",
        evaluated_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert verdict.gate == "pass"
    assert verdict.reasons == []
    assert "no effective CRITICAL" in verdict.reason
    assert (verdict.scan_id, verdict.critical_cve_count) == ("s1", 0)


def test_fail_lists_every_blocker_and_counts_distinct_cves() -> None:
    verdict = evaluate_gate(
        [
            finding(1, "CRITICAL"),
            finding(2, "CRITICAL", vulnerability_id="CVE-2024-0001"),  # same CVE, 2nd component
            finding(3, "LOW", epss=0.5),
            finding(4, "LOW", epss=0.49),
            finding(5, "HIGH"),
            finding(6, "CRITICAL", state="suppressed"),
            finding(7, "LOW", epss=0.9, state="fixed"),
        ],
        [
            license_result("gpl-thing", "forbidden", "GPL-3.0-only"),
            license_result("lgpl-thing", "conditional", "LGPL-2.1-only"),
            license_result("mystery", "unknown", None),
        ],
        epss_threshold=THRESHOLD,
        not_evaluated_count=2,
    )
    assert verdict.gate == "fail"
    assert (
        verdict.critical_cve_count,
        verdict.high_cve_count,
        verdict.epss_gate_count,
        verdict.forbidden_license_count,
        verdict.conditional_license_count,
        verdict.unknown_license_count,
        verdict.not_evaluated_count,
    ) == (1, 1, 1, 1, 1, 1, 2)
    assert verdict.reasons == [
        "1 effective CRITICAL vulnerability: CVE-2024-0001",
        "1 component with a forbidden license: gpl-thing (GPL-3.0-only)",
        "1 effective vulnerability with EPSS >= 0.5: CVE-2024-0003",
        "1 effective HIGH vulnerability: CVE-2024-0005",
        "1 component with a conditional license: lgpl-thing (LGPL-2.1-only)",
        "1 component with an unknown license: mystery (none declared)",
        "2 (component, vulnerability) pairs could not be evaluated",
    ]
    assert verdict.reason == "; ".join(verdict.reasons)
    assert verdict.blocking_finding_ids == ["f-001", "f-002", "f-003"]


def test_warn_and_long_lists_are_shortened() -> None:
    verdict = evaluate_gate([finding(n, "HIGH") for n in range(8)], [], epss_threshold=THRESHOLD)
    assert verdict.gate == "warn"
    assert verdict.reasons == [
        "8 effective HIGH vulnerabilities: CVE-2024-0000, CVE-2024-0001, CVE-2024-0002, "
        "CVE-2024-0003, CVE-2024-0004 and 3 more"
    ]
    only_unknown = evaluate_gate([], [license_result("x", "unknown")], epss_threshold=0.1)
    assert only_unknown.gate == "warn"
    not_evaluated = evaluate_gate([], [], epss_threshold=0.1, not_evaluated_count=1)
    assert not_evaluated.gate == "warn"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(LEVELS),
            st.sampled_from(VEX_STATES),
            st.none() | st.floats(min_value=0, max_value=1),
        ),
        max_size=12,
    ),
    st.lists(st.sampled_from(CATEGORIES), max_size=6),
    st.floats(min_value=0.01, max_value=1),
)
def test_gate_laws(
    rows: list[tuple[str, str, float | None]], categories: list[str], threshold: float
) -> None:
    findings = [
        finding(i, severity, state=state, epss=epss)
        for i, (severity, state, epss) in enumerate(rows)
    ]
    licenses = [license_result(f"l{i}", c) for i, c in enumerate(categories)]
    verdict = evaluate_gate(findings, licenses, epss_threshold=threshold)
    effective = [f for f in findings if f.effective]
    must_fail = (
        any(f.severity == "CRITICAL" for f in effective)
        or "forbidden" in categories
        or any(f.epss is not None and f.epss >= threshold for f in effective)
    )
    must_warn = any(f.severity == "HIGH" for f in effective) or bool(
        {"conditional", "unknown"} & set(categories)
    )
    expected = "fail" if must_fail else "warn" if must_warn else "pass"
    assert verdict.gate == expected
    # Triage away every finding: only licenses can still fail or warn.
    cleared = evaluate_gate(
        [f.__class__(**{**_fields(f), "state": "not_affected"}) for f in findings],
        licenses,
        epss_threshold=threshold,
    )
    assert cleared.critical_cve_count == cleared.epss_gate_count == cleared.high_cve_count == 0


def _fields(f: Finding) -> dict[str, Any]:
    return {name: getattr(f, name) for name in f.__struct_fields__}


def test_a_component_without_a_license_is_named_so() -> None:
    verdict = evaluate_gate(
        [], [license_result("bare", "conditional", None)], epss_threshold=THRESHOLD
    )
    assert verdict.reasons == ["1 component with a conditional license: bare (none declared)"]
