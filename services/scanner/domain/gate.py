"""The policy gate of a snapshot: ``pass``, ``warn`` or ``fail``, with every reason.

Rules (over *effective* findings: not not_affected / false_positive / suppressed / fixed):

* **fail** when any of: an effective CRITICAL finding; a component whose license is
  ``forbidden`` (after waivers); an effective finding whose EPSS is at or above the
  threshold (a likely-exploited weakness blocks whatever its CVSS says).
* **warn** when none of those, but any of: an effective HIGH finding; a ``conditional`` or
  ``unknown`` license (someone has to look: unknown is never silently allowed);
  (component, vulnerability) pairs that could not be evaluated (GIT ranges, versions that
  do not parse: never a silent pass).
* **pass** otherwise.

Counts: ``critical_cve_count`` and ``epss_gate_count`` count distinct vulnerabilities (the
same CVE in two components is one CVE to fix), ``forbidden_license_count`` counts
components. ``reasons`` lists every blocker and every warning, fail ones first; ``reason``
joins them (or says why it passed). This is the scanner's view; the release gate may apply
its own, stricter policy to the same facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal

import msgspec

from .findings import Finding
from .license_policy import LicenseResult

Gate = Literal["pass", "warn", "fail"]
_SHOWN = 5  # ids named in a reason before "and N more"


class GateVerdict(msgspec.Struct, frozen=True, kw_only=True):
    gate: Gate
    critical_cve_count: int
    high_cve_count: int
    forbidden_license_count: int
    conditional_license_count: int
    unknown_license_count: int
    epss_gate_count: int
    epss_threshold: float
    not_evaluated_count: int
    reason: str
    reasons: list[str]
    blocking_finding_ids: list[str]  # the findings behind the fail reasons, sorted
    scan_id: str | None = None
    evaluated_at: datetime | None = None


def _named(ids: Iterable[str]) -> str:
    ordered = sorted(ids)
    shown = ", ".join(ordered[:_SHOWN])
    more = len(ordered) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count} {word}"
    if word.endswith("vulnerability"):
        return f"{count} {word[:-1]}ies"
    return f"{count} {word}s"


def evaluate_gate(
    findings: Sequence[Finding],
    licenses: Sequence[LicenseResult],
    *,
    epss_threshold: float,
    not_evaluated_count: int = 0,
    scan_id: str | None = None,
    evaluated_at: datetime | None = None,
) -> GateVerdict:
    effective = [f for f in findings if f.effective]
    critical = [f for f in effective if f.severity == "CRITICAL"]
    high = [f for f in effective if f.severity == "HIGH"]
    likely = [f for f in effective if f.epss is not None and f.epss >= epss_threshold]
    by_category: dict[str, list[LicenseResult]] = {}
    for result in licenses:
        by_category.setdefault(result.verdict.category, []).append(result)
    forbidden = by_category.get("forbidden", [])
    conditional = by_category.get("conditional", [])
    unknown = by_category.get("unknown", [])

    critical_ids = {f.vulnerability_id for f in critical}
    high_ids = {f.vulnerability_id for f in high}
    likely_ids = {f.vulnerability_id for f in likely}
    failures: list[str] = []
    if critical_ids:
        failures.append(
            f"{_plural(len(critical_ids), 'effective CRITICAL vulnerability')}: "
            f"{_named(critical_ids)}"
        )
    if forbidden:
        failures.append(
            f"{_plural(len(forbidden), 'component')} with a forbidden license: "
            + _named(f"{r.name} ({r.verdict.expression or 'no license'})" for r in forbidden)
        )
    if likely_ids:
        failures.append(
            f"{_plural(len(likely_ids), 'effective vulnerability')} with EPSS >= "
            f"{epss_threshold:g}: {_named(likely_ids)}"
        )
    warnings: list[str] = []
    if high_ids:
        warnings.append(
            f"{_plural(len(high_ids), 'effective HIGH vulnerability')}: {_named(high_ids)}"
        )
    if conditional:
        warnings.append(
            f"{_plural(len(conditional), 'component')} with a conditional license: "
            + _named(f"{r.name} ({r.verdict.expression or 'none declared'})" for r in conditional)
        )
    if unknown:
        warnings.append(
            f"{_plural(len(unknown), 'component')} with an unknown license: "
            + _named(f"{r.name} ({r.verdict.expression or 'none declared'})" for r in unknown)
        )
    if not_evaluated_count:
        warnings.append(
            f"{_plural(not_evaluated_count, '(component, vulnerability) pair')} could not be "
            "evaluated"
        )
    gate: Gate = "fail" if failures else "warn" if warnings else "pass"
    reasons = failures + warnings
    if gate == "pass":
        reason = (
            f"no effective CRITICAL or HIGH vulnerability, none with EPSS >= "
            f"{epss_threshold:g}, no forbidden, conditional or unknown license"
        )
    else:
        reason = "; ".join(reasons)
    blocking = sorted({f.id for f in (*critical, *likely)})
    return GateVerdict(
        gate=gate,
        critical_cve_count=len(critical_ids),
        high_cve_count=len(high_ids),
        forbidden_license_count=len(forbidden),
        conditional_license_count=len(conditional),
        unknown_license_count=len(unknown),
        epss_gate_count=len(likely_ids),
        epss_threshold=epss_threshold,
        not_evaluated_count=not_evaluated_count,
        reason=reason,
        reasons=reasons,
        blocking_finding_ids=blocking,
        scan_id=scan_id,
        evaluated_at=evaluated_at,
    )
