"""The pure pieces of the triage wiring: If-Match parsing, per-row statuses, the refusal of
an older snapshot's finding, and which VEX statements name no finding."""

from __future__ import annotations

from typing import Any

import pytest

from services.gateway.routes.findings import PreconditionRequired, if_match_revisions
from services.scanner.domain.findings import Finding
from services.scanner.domain.vex_import import VexProduct, VexStatement
from services.scanner.triage.rules import not_current, row_status, unmatched_statements


def _finding(**kw: Any) -> Finding:
    base: dict[str, Any] = {
        "id": "f-1",
        "component_ref": "django",
        "component_name": "django",
        "purl": "pkg:pypi/django@3.2.0",
        "ecosystem": "PyPI",
        "package": "django",
        "version": "3.2.0",
        "vulnerability_id": "CVE-2023-0001",
        "advisory_ids": ("GHSA-aaaa-bbbb-cccc",),
    }
    return Finding(**{**base, **kw})


def _statement(ids: tuple[str, ...], *products: VexProduct, where: str = "$") -> VexStatement:
    return VexStatement(
        vulnerability_ids=ids,
        products=products,
        state="not_affected",
        source_state="not_affected",
        justification="code_not_present",
        location=where,
    )


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        ('"v3"', [3]),
        ('"v1", "v4"', [1, 4]),
        ("*", None),
        ('"v2", *', None),
        ('W/"v3"', []),
        ('"3"', []),
        ("", []),
        ('"v99999999999999999999"', []),
    ],
)
def test_if_match_names_revisions(header: str, accepted: list[int] | None) -> None:
    assert if_match_revisions(header) == accepted


def test_if_match_is_required() -> None:
    with pytest.raises(PreconditionRequired) as caught:
        if_match_revisions(None)
    assert (caught.value.status, caught.value.code) == (428, "precondition_required")


def test_row_statuses_follow_the_codes() -> None:
    assert row_status("vex_role_forbidden") == 403
    assert row_status("finding_not_found") == 404
    assert row_status("vex_transition_not_allowed") == 409
    assert row_status("finding_not_current") == 409
    assert row_status("precondition_failed") == 412
    assert row_status("vex_justification_required") == 422


def test_not_current_names_the_finding_to_triage_instead() -> None:
    error = not_current("old", latest_scan_id="s2", current="new-id")
    assert (error.status, error.code) == (409, "finding_not_current")
    assert error.extra == {"latest_scan_id": "s2", "current_finding_id": "new-id"}
    assert "new-id" in error.detail
    assert "current_finding_id" not in not_current("old", latest_scan_id="s2", current=None).extra


def test_unmatched_statements_by_id_alias_and_product() -> None:
    findings = [
        _finding(),
        _finding(id="f-2", component_ref="sqlparse", component_name="sqlparse",
                 purl="pkg:pypi/sqlparse@0.4.4", package="sqlparse", version="0.4.4",
                 vulnerability_id="CVE-2024-0002", advisory_ids=()),
    ]  # fmt: skip
    statements = [
        _statement(("GHSA-AAAA-BBBB-CCCC",), VexProduct(purl="pkg:pypi/Django"), where="$[0]"),
        _statement(("CVE-2023-0001",), VexProduct(purl="pkg:pypi/django@4.0"), where="$[1]"),
        _statement(("CVE-2024-0002",), VexProduct(whole_product=True), where="$[2]"),
        _statement(("CVE-2024-0002",), VexProduct(whole_product=True, versions=("v1",)),
                   where="$[3]"),
        _statement(("CVE-2099-0001",), VexProduct(whole_product=True), where="$[4]"),
        _statement(("CVE-2023-0001",), where="$[5]"),
    ]  # fmt: skip
    unmatched = unmatched_statements(findings, statements, product_version="v2")
    assert [s.location for s in unmatched] == ["$[1]", "$[3]", "$[4]", "$[5]"]
    # A later statement that overrides an earlier one still matched: it is not unmatched.
    assert unmatched_statements(findings, statements[:1] * 2, product_version=None) == []
