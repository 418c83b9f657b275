"""Pure pieces of the triage wiring: which finding may be triaged, how a refusal reads per
row, and which VEX statements name no finding."""

from __future__ import annotations

from collections.abc import Sequence

from services.scanner.domain.findings import Finding
from services.scanner.domain.vex_apply import product_matches
from services.scanner.domain.vex_import import VexStatement
from shared.errors import Conflict

# The HTTP status a refused row would have had on its own (see domain/vex.py's codes).
_ROW_STATUS = {
    "vex_role_forbidden": 403,
    "finding_not_found": 404,
    "vex_transition_not_allowed": 409,
    "finding_not_current": 409,
    "precondition_failed": 412,
}


def row_status(code: str) -> int:
    return _ROW_STATUS.get(code, 422)


class FindingNotCurrent(Conflict):
    """Triage decides about the project's latest snapshot: an older snapshot is the record
    of what was known then (and the triage memory follows the latest decision)."""

    code, title = "finding_not_current", "The finding is not in the project's latest snapshot"


def not_current(finding_id: str, *, latest_scan_id: str | None, current: str | None) -> Conflict:
    extra: dict[str, object] = {"latest_scan_id": latest_scan_id}
    if current is not None:
        extra["current_finding_id"] = current
    hint = f"; triage {current} instead" if current else ""
    return FindingNotCurrent(
        f"finding {finding_id} belongs to an older snapshot than {latest_scan_id}{hint}",
        extra=extra,
    )


def unmatched_statements(
    findings: Sequence[Finding],
    statements: Sequence[VexStatement],
    *,
    product_version: str | None,
) -> list[VexStatement]:
    """Statements that apply to no finding (by vulnerability id and product), in order."""
    by_vulnerability: dict[str, list[Finding]] = {}
    for finding in findings:
        for vulnerability_id in finding.vulnerability_ids:
            by_vulnerability.setdefault(vulnerability_id.upper(), []).append(finding)
    unmatched: list[VexStatement] = []
    for statement in statements:
        candidates = {
            f.id: f
            for v in statement.vulnerability_ids
            for f in by_vulnerability.get(v.upper(), ())
        }
        if not any(
            product_matches(product, finding, product_version=product_version)
            for finding in candidates.values()
            for product in statement.products
        ):
            unmatched.append(statement)
    return unmatched
