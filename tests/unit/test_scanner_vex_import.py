"""VEX import: format detection, CycloneDX VEX and OpenVEX statements, applying them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.scanner.domain.findings import Finding
from services.scanner.domain.vex_apply import apply_statements, plan_vex_import
from services.scanner.domain.vex_import import (
    VexMalformed,
    VexProduct,
    VexUnknownFormat,
    detect_vex_format,
    parse_vex,
)
from tests.conftest import shared_data


def doc(value: dict[str, Any]) -> bytes:
    return json.dumps(value).encode()


def finding(**kw: Any) -> Finding:
    base: dict[str, Any] = {
        "id": "f-1",
        "component_ref": "pkg:pypi/django@3.2.0",
        "component_name": "Django",
        "purl": "pkg:pypi/django@3.2.0",
        "ecosystem": "PyPI",
        "package": "django",
        "version": "3.2.0",
        "vulnerability_id": "CVE-2023-0001",
        "advisory_ids": ("GHSA-aaaa-bbbb-cccc", "PYSEC-2023-1"),
    }
    base.update(kw)
    return Finding(**base)


# --- shared data -------------------------------------------------------------------------


def test_every_shared_cyclonedx_vex_document_imports() -> None:
    folder: Path = shared_data("vex", "cyclonedx")
    seen_states: set[str] = set()
    for path in sorted(folder.glob("*.json")):
        parsed = parse_vex(path.read_bytes())
        raw = json.loads(path.read_bytes())
        assert parsed.format == "cyclonedx", path.name
        assert len(parsed.statements) == len(raw["vulnerabilities"]), path.name
        for statement, vulnerability in zip(parsed.statements, raw["vulnerabilities"], strict=True):
            assert statement.vulnerability_ids[0] == vulnerability["id"]
            assert statement.source_state == vulnerability["analysis"]["state"]
            # Every affects ref in these documents is the product (metadata.component).
            assert all(p.whole_product for p in statement.products), path.name
            seen_states.add(statement.state)
    assert seen_states >= {"fixed", "exploitable", "analyzing", "not_affected"}


def test_shared_cyclonedx_case_4_keeps_versions_and_ranges() -> None:
    parsed = parse_vex(shared_data("vex", "cyclonedx", "case-4-vex.json").read_bytes())
    product = parsed.statements[0].products[0]
    assert product.versions == ("2.4", "2.6")
    assert product.ranges == ("vers:generic/>=2.9|<=4.1",)
    assert "Response: will_not_fix, update" in parsed.statements[0].detail


def test_shared_openvex_examples_import_and_match_the_schema() -> None:
    folder: Path = shared_data("vex", "openvex")
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema validates the examples")
    schema = json.loads((folder / "openvex_json_schema.json").read_bytes())
    examples = sorted(folder.glob("*.openvex.json"))
    assert examples
    for path in examples:
        jsonschema.validate(json.loads(path.read_bytes()), schema)
        parsed = parse_vex(path.read_bytes())
        assert parsed.format == "openvex"
        assert parsed.spec_version == "0.2.0"
        assert parsed.statements[0].vulnerability_ids == ("CVE-2023-12345",)
        assert parsed.statements[0].products[0].purl == "pkg:apk/wolfi/git@2.39.0-r1?arch=armv7"
    states = [parse_vex(p.read_bytes()).statements[0].state for p in examples]
    assert states == ["fixed", "analyzing"]


def test_shared_openvex_applies_to_an_apk_component_ignoring_qualifiers() -> None:
    parsed = parse_vex(shared_data("vex", "openvex", "spec-example-1.openvex.json").read_bytes())
    git = finding(
        id="f-git",
        component_ref="git",
        component_name="git",
        purl="pkg:apk/wolfi/git@2.39.0-r1?arch=x86_64&distro=wolfi",
        ecosystem=None,
        package="",
        version="2.39.0-r1",
        vulnerability_id="CVE-2023-12345",
        advisory_ids=(),
    )
    other_version = msgspec.structs.replace(
        git, id="f-old", purl="pkg:apk/wolfi/git@2.38.0-r0", version="2.38.0-r0"
    )
    applied = apply_statements([git, other_version], parsed.statements)
    assert [(a.finding_id, a.state) for a in applied] == [("f-git", "fixed")]


# --- detection and errors ----------------------------------------------------------------


def test_detection() -> None:
    assert detect_vex_format(b'{"bomFormat": "CycloneDX"}') == "cyclonedx"
    assert detect_vex_format(b'  {"@context": "https://openvex.dev/ns/v0.2.0"}') == "openvex"
    for data, words in [
        (b"<bom/>", "XML"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"spdxVersion": "SPDX-2.3"}', "neither"),
    ]:
        with pytest.raises(VexUnknownFormat) as caught:
            detect_vex_format(data)
        assert words in caught.value.detail
        assert caught.value.status == 415


def test_malformed_documents_say_where() -> None:
    bad_state = doc(
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "vulnerabilities": [
                {"id": "CVE-1", "analysis": {"state": "not_affected"}},
                {"id": "CVE-2", "analysis": {"state": "maybe"}},
            ],
        }
    )
    with pytest.raises(VexMalformed) as caught:
        parse_vex(bad_state)
    assert caught.value.location == "$.vulnerabilities[1].analysis.state"
    assert caught.value.code == "vex_malformed"

    bad_status = doc(
        {
            "@context": "https://openvex.dev/ns/v0.2.0",
            "statements": [{"vulnerability": {"name": "CVE-1"}, "status": "unknown"}],
        }
    )
    with pytest.raises(VexMalformed) as caught:
        parse_vex(bad_status)
    assert caught.value.location == "$.statements[0].status"

    with pytest.raises(VexMalformed) as caught:
        parse_vex(b'{"bomFormat": "CycloneDX", "vulnerabilities": [')
    assert "truncated" in caught.value.detail


# --- CycloneDX specifics -----------------------------------------------------------------


def test_cyclonedx_refs_resolve_to_components_bom_links_and_purls() -> None:
    parsed = parse_vex(
        doc(
            {
                "bomFormat": "CycloneDX",
                "specVersion": "1.6",
                "metadata": {"component": {"name": "app", "bom-ref": "app"}},
                "components": [
                    {"name": "django", "bom-ref": "c1", "purl": "pkg:pypi/django@3.2.0"},
                    {"name": "libfoo", "version": "1.0", "bom-ref": "c2"},
                ],
                "vulnerabilities": [
                    {
                        "id": "CVE-2023-0001",
                        "references": [{"id": "GHSA-xxxx", "source": {"name": "GitHub"}}],
                        "analysis": {
                            "state": "not_affected",
                            "justification": "code_not_reachable",
                            "detail": "not called",
                        },
                        "affects": [
                            {"ref": "c1"},
                            {"ref": "c2"},
                            {"ref": "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1#comp%2F9"},
                            {"ref": "pkg:npm/left-pad@1.3.0"},
                            {"ref": "app"},
                        ],
                    },
                    {"id": "CVE-2023-0002"},
                ],
            }
        )
    )
    statement = parsed.statements[0]
    assert statement.vulnerability_ids == ("CVE-2023-0001", "GHSA-xxxx")
    assert statement.products == (
        VexProduct(purl="pkg:pypi/django@3.2.0", ref="c1"),
        VexProduct(ref="c2", name="libfoo", version="1.0"),
        VexProduct(ref="comp/9"),
        VexProduct(purl="pkg:npm/left-pad@1.3.0", ref="pkg:npm/left-pad@1.3.0"),
        VexProduct(whole_product=True),
    )
    assert [w.code for w in parsed.warnings] == ["vex_no_analysis"]
    assert parsed.warnings[0].location == "$.vulnerabilities[1]"


# --- OpenVEX specifics -------------------------------------------------------------------


def test_openvex_aliases_subcomponents_legacy_vulnerability_and_timestamps() -> None:
    parsed = parse_vex(
        doc(
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "@id": "https://example.com/vex/1",
                "author": "a",
                "timestamp": "2024-01-01T00:00:00Z",
                "version": 1,
                "statements": [
                    {
                        "vulnerability": {"name": "CVE-2023-0001", "aliases": ["GHSA-aaaa"]},
                        "timestamp": "2024-03-01T00:00:00Z",
                        "products": [
                            {
                                "@id": "pkg:oci/app@sha256%3Aabc",
                                "subcomponents": [{"@id": "pkg:pypi/django@3.2.0"}],
                            }
                        ],
                        "status": "affected",
                        "action_statement": "upgrade to 4.2",
                    },
                    {
                        "vulnerability": "CVE-2023-0001",
                        "timestamp": "2024-02-01T00:00:00Z",
                        "products": [{"identifiers": {"purl": "pkg:pypi/django"}}],
                        "status": "not_affected",
                        "justification": "vulnerable_code_not_in_execute_path",
                        "impact_statement": "never called",
                    },
                    {
                        "vulnerability": {"name": "CVE-2023-0003"},
                        "products": [{"@id": "https://example.com/product"}],
                        "status": "under_investigation",
                    },
                ],
            }
        )
    )
    # Ordered by statement timestamp (the third inherits the document's January one).
    third, first, second = parsed.statements
    assert (first.location, first.state, first.justification) == (
        "$.statements[1]",
        "not_affected",
        "vulnerable_code_not_in_execute_path",
    )
    assert first.products == (VexProduct(purl="pkg:pypi/django"),)
    assert first.detail == "never called"
    assert (second.vulnerability_ids, second.state, second.detail) == (
        ("CVE-2023-0001", "GHSA-aaaa"),
        "exploitable",
        "upgrade to 4.2",
    )
    assert second.products == (VexProduct(purl="pkg:pypi/django@3.2.0"),)
    assert third.products == ()
    assert [w.code for w in parsed.warnings] == ["vex_product_unusable", "vex_no_product"]
    # The later (March) statement wins for django 3.2.0.
    applied = apply_statements([finding()], parsed.statements)
    assert [(a.finding_id, a.state, a.statement) for a in applied] == [
        ("f-1", "exploitable", "$.statements[0]")
    ]


# --- matching ----------------------------------------------------------------------------


def statement_for(product: dict[str, Any], vulnerability: str = "GHSA-aaaa-bbbb-cccc") -> bytes:
    return doc(
        {
            "@context": "https://openvex.dev/ns/v0.2.0",
            "statements": [
                {
                    "vulnerability": {"name": vulnerability},
                    "products": [product],
                    "status": "not_affected",
                    "justification": "component_not_present",
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("product", "vulnerability", "matches"),
    [
        ({"@id": "pkg:pypi/django@3.2.0"}, "GHSA-aaaa-bbbb-cccc", True),
        ({"@id": "pkg:pypi/Django@3.2"}, "ghsa-aaaa-bbbb-cccc", True),  # PEP 440 / PEP 503
        ({"@id": "pkg:pypi/django@3.2.0?extension=whl#sub"}, "CVE-2023-0001", True),
        ({"@id": "pkg:pypi/django"}, "PYSEC-2023-1", True),
        ({"@id": "pkg:pypi/django@3.2.1"}, "CVE-2023-0001", False),
        ({"@id": "pkg:pypi/flask@3.2.0"}, "CVE-2023-0001", False),
        ({"@id": "pkg:npm/django@3.2.0"}, "CVE-2023-0001", False),
        ({"@id": "pkg:pypi/django@3.2.0"}, "CVE-2099-9999", False),
    ],
)
def test_purl_matching(product: dict[str, Any], vulnerability: str, matches: bool) -> None:
    statements = parse_vex(statement_for(product, vulnerability)).statements
    assert bool(apply_statements([finding()], statements)) is matches


def test_name_version_ranges_and_whole_product() -> None:
    by_name = VexProduct(name="DJANGO", version="3.2")
    ranged = VexProduct(purl="pkg:pypi/django", ranges=("vers:pypi/>=3.0|<3.3",))
    outside = VexProduct(purl="pkg:pypi/django", ranges=("vers:pypi/>=4.0",))
    listed = VexProduct(purl="pkg:pypi/django", versions=("3.2",))
    broken = VexProduct(purl="pkg:pypi/django", ranges=("vers:nope/>=1",))
    whole = VexProduct(whole_product=True, versions=("1.0",))
    from services.scanner.domain.vex_apply import product_matches

    f = finding()
    assert product_matches(by_name, f)
    assert product_matches(ranged, f)
    assert not product_matches(outside, f)
    assert product_matches(listed, f)
    assert not product_matches(broken, f)
    assert product_matches(whole, f)  # no release label to compare
    assert product_matches(whole, f, product_version="1.0")
    assert not product_matches(whole, f, product_version="1.1")


def test_plan_runs_the_triage_rules() -> None:
    statements = parse_vex(statement_for({"@id": "pkg:pypi/django"})).statements
    findings = [
        finding(id="f-new"),
        finding(id="f-fixed", state="fixed"),
        finding(
            id="f-same", state="not_affected", justification="component_not_present", revision=4
        ),
        finding(id="f-other", vulnerability_id="CVE-2099-1", advisory_ids=()),
    ]
    rows = plan_vex_import(findings, statements, roles=("POLICY_AUTHOR",))
    assert [(r.finding_id, r.status, r.code) for r in rows] == [
        ("f-new", "updated", None),
        ("f-fixed", "failed", "vex_transition_not_allowed"),
        ("f-same", "unchanged", None),
    ]
    assert rows[0].triaged is not None and rows[0].triaged.justification == "component_not_present"

    impact_only = parse_vex(
        doc(
            {
                "@context": "https://openvex.dev/ns/v0.2.0",
                "statements": [
                    {
                        "vulnerability": {"name": "CVE-2023-0001"},
                        "products": [{"@id": "pkg:pypi/django"}],
                        "status": "not_affected",
                        "impact_statement": "we say so",
                    }
                ],
            }
        )
    ).statements
    rows = plan_vex_import([finding()], impact_only, roles=("POLICY_AUTHOR",))
    assert [(r.status, r.code) for r in rows] == [("failed", "vex_justification_required")]


def test_a_bom_link_to_our_exported_sbom_matches_the_component_ref() -> None:
    statements = parse_vex(
        doc(
            {
                "bomFormat": "CycloneDX",
                "specVersion": "1.6",
                "vulnerabilities": [
                    {
                        "id": "GHSA-aaaa-bbbb-cccc",
                        "analysis": {"state": "false_positive", "detail": "wrong package"},
                        "affects": [
                            {
                                "ref": "urn:cdx:3e671687-395b-41f5-a30f-a58921a69b79/1"
                                "#pkg%3Apypi%2Fdjango%403.2.0"
                            }
                        ],
                    }
                ],
            }
        )
    ).statements
    assert statements[0].products[0].ref == "pkg:pypi/django@3.2.0"
    other_ref = finding(id="f-2", component_ref="elsewhere", purl=None, ecosystem=None)
    applied = apply_statements([finding(), other_ref], statements)
    assert [(a.finding_id, a.state, a.detail) for a in applied] == [
        ("f-1", "false_positive", "wrong package")
    ]


def test_a_justification_is_kept_with_not_affected_only() -> None:
    parsed = parse_vex(
        doc(
            {
                "bomFormat": "CycloneDX",
                "specVersion": "1.5",
                "vulnerabilities": [
                    {
                        "id": "CVE-2023-0001",
                        "analysis": {"state": "exploitable", "justification": "code_not_present"},
                        "affects": [{"ref": "pkg:pypi/django@3.2.0"}],
                    }
                ],
            }
        )
    )
    assert parsed.statements[0].justification is None
    rows = plan_vex_import([finding()], parsed.statements, roles=("POLICY_AUTHOR",))
    assert [(r.status, r.to_state) for r in rows] == [("updated", "exploitable")]
