"""The pure parts of licensing and the reports: policy documents as stored, If-Match,
classifying component rows, the re-evaluation blob, the licenses summary and its pages,
the subject and the product's own component of a snapshot."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts.events.licensing import LicensePolicyDocument
from contracts.rpc.scanner_licensing import LicensePolicyBody
from services.scanner.domain.licenses import Waiver
from services.scanner.domain.model import Component, Dependency
from services.scanner.licensing.categories import decode_relicense, encode_relicense
from services.scanner.licensing.policy import (
    LicensePolicyInvalid,
    PolicyContext,
    VersionMismatch,
    canonical_document,
    check_if_match,
)
from services.scanner.licensing.relicense import classify_rows
from services.scanner.readside.licenses import page, summarize
from services.scanner.readside.snapshot import subject_ref, third_party

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def test_documents_are_stored_canonical_with_org_fallbacks() -> None:
    body = LicensePolicyBody(allowed=["mit", "GPL-2.0+"], forbidden=["AGPL-3.0"])
    org = canonical_document(body, org=True)
    assert org.allowed == ["MIT", "GPL-2.0-or-later"]
    assert org.forbidden == ["AGPL-3.0-only"]
    assert (org.default, org.unknown, org.no_license) == ("unknown", "unknown", "unknown")
    project = canonical_document(LicensePolicyBody(conditional=["MIT"]), org=False)
    assert (project.default, project.unknown, project.no_license) == (None, None, None)


def test_every_problem_is_reported_with_its_path() -> None:
    with pytest.raises(LicensePolicyInvalid) as caught:
        canonical_document(
            LicensePolicyBody(allowed=["MIT", "nonsense licence"], forbidden=["MIT AND X"]),
            org=True,
        )
    fields = [e["field"] for e in caught.value.extra["errors"]]
    assert fields == ["$.allowed[1]", "$.forbidden[0]"]
    with pytest.raises(LicensePolicyInvalid) as repeated:
        canonical_document(
            LicensePolicyBody(allowed=["MIT"], conditional=["Apache-2.0", "mit"]), org=True
        )
    assert repeated.value.extra["errors"][0]["field"] == "$.conditional[1]"


def test_if_match_accepts_listed_versions_only() -> None:
    check_if_match(None, 3)
    check_if_match([2, 3], 3)
    with pytest.raises(VersionMismatch) as caught:
        check_if_match([2], 3)
    assert caught.value.status == 412 and caught.value.extra["current_etag"] == '"v3"'
    with pytest.raises(VersionMismatch):
        check_if_match([], 0)  # only foreign or weak tags: nothing matches


def _context(**kwargs: object) -> PolicyContext:
    org = LicensePolicyDocument(
        allowed=["MIT"],
        forbidden=["GPL-3.0-only"],
        default="unknown",
        unknown="unknown",
        no_license="conditional",
    )
    return PolicyContext(org_version=1, org_document=org, now=NOW, **kwargs)  # type: ignore[arg-type]


def test_project_override_and_waivers_in_the_context() -> None:
    override = LicensePolicyDocument(allowed=["GPL-3.0-only"], unknown="forbidden")
    context = _context(project_version=2, project_document=override)
    effective = context.effective_document()
    assert effective.allowed == ["GPL-3.0-only", "MIT"] and effective.forbidden == []
    assert (effective.unknown, effective.no_license) == ("forbidden", "conditional")
    waiver = Waiver(id="w1", license="GPL-3.0-only", purl="pkg:npm/x", expires_at=NOW)
    assert _context(waivers=(waiver,)).waiver_ids == ["w1"]


def _rows() -> list[dict[str, object]]:
    return [
        {"ref": "a", "licenses": [{"id": "GPL-3.0-only"}], "purl": "pkg:npm/a@1.0.0"},
        {"ref": "b", "licenses": [{"id": "GPL-3.0-only"}], "purl": "pkg:npm/b@1.0.0"},
        {"ref": "c", "licenses": [{"expression": "MIT OR GPL-3.0-only"}], "purl": None},
        {"ref": "d", "licenses": [], "purl": None},
    ]


def test_rows_are_classified_with_purl_scoped_waivers() -> None:
    later = NOW + dt.timedelta(days=1)
    waiver = Waiver(id="w1", license="GPL-3.0-only", purl="pkg:npm/a", expires_at=later)
    classifier = _context(waivers=(waiver,)).classifier()
    assert classify_rows(_rows(), classifier, now=NOW) == [
        ("a", "allowed"),
        ("b", "forbidden"),
        ("c", "allowed"),
        ("d", "conditional"),
    ]
    assert classify_rows(_rows(), classifier, now=later)[0] == ("a", "forbidden")  # expired


def test_the_relicense_blob_is_canonical() -> None:
    first = encode_relicense("s1", [("b", "forbidden"), ("a", "allowed")])
    assert first == encode_relicense("s1", [("a", "allowed"), ("b", "forbidden")])
    decoded = decode_relicense(first)
    assert (decoded.refs, decoded.categories) == (["a", "b"], ["allowed", "forbidden"])
    with pytest.raises(ValueError):
        decode_relicense(b'{"scan_id": "s1", "refs": ["a"], "categories": []}')


def test_licenses_summary_splits_an_expression_a_waiver_splits() -> None:
    waiver = Waiver(
        id="w1", license="GPL-3.0-only", purl="pkg:npm/a", expires_at=NOW + dt.timedelta(days=1)
    )
    classifier = _context(waivers=(waiver,)).classifier()
    rows = [
        {**row, "license_expression": expression, "license_category": category}
        for row, expression, category in zip(
            _rows(),
            ["GPL-3.0-only", "GPL-3.0-only", "MIT OR GPL-3.0-only", None],
            ["allowed", "forbidden", "allowed", "conditional"],
            strict=True,
        )
    ]
    usages = summarize(rows, classifier, now=NOW)
    assert [(u.license, u.category, u.component_count, u.waived) for u in usages] == [
        ("GPL-3.0-only", "forbidden", 1, False),
        (None, "conditional", 1, False),
        ("GPL-3.0-only", "allowed", 1, True),
        ("MIT OR GPL-3.0-only", "allowed", 1, False),
    ]
    assert usages[2].waiver_ids == ["w1"] and "waived by waiver w1" in usages[2].reason
    assert usages[1].reason == "no license declared: conditional by policy"
    first, cursor = page(usages, after=None, limit=3)
    assert len(first) == 3 and cursor is not None
    rest, end = page(usages, after=cursor, limit=3)
    assert rest == usages[3:] and end is None


def test_subject_and_the_products_own_component() -> None:
    components = [
        Component(ref="shop", name="shop", type="application"),
        Component(ref="lib", name="lib"),
        Component(ref="tool", name="tool", type="application"),  # a dependency, kept
    ]
    edges = [
        Dependency("root", ("shop",)),
        Dependency("shop", ("lib", "tool")),
        Dependency("lib", ()),
    ]
    assert subject_ref(components, edges) == "root"
    assert subject_ref(components, [*edges, Dependency("other-root", ())]) is None
    kept = third_party(components, [Dependency("shop", ("lib", "tool"))])
    assert [c.ref for c in kept] == ["lib", "tool"]
    # Under the document's subject it is still the product; under a component it is not.
    assert [c.ref for c in third_party(components, edges)] == ["lib", "tool"]
    under = [*edges, Dependency("lib", ("shop",))]
    assert [c.ref for c in third_party(components, under)] == ["shop", "lib", "tool"]


def test_a_long_list_of_unknown_licenses_gets_hints_for_the_first_only() -> None:
    # Each hint is a fuzzy match over every SPDX id: 2,000 took past the RPC deadline.
    from services.scanner.domain.license_policy import HINTS_MAX

    with pytest.raises(LicensePolicyInvalid) as caught:
        canonical_document(LicensePolicyBody(allowed=["Apache-2.x"] * (HINTS_MAX + 3)), org=True)
    messages = [error["message"] for error in caught.value.extra["errors"]]
    assert len(messages) == HINTS_MAX + 3
    assert ["did you mean" in m for m in messages] == [True] * HINTS_MAX + [False] * 3
