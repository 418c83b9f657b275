"""Hostile SBOMs and lockfiles: refused with a location, promptly and in bounded memory,
never read into values a database would refuse (issue 9, §2)."""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

import pytest

from services.scanner.domain.errors import IngestError, MalformedDocument
from services.scanner.domain.limits import (
    MAX_COMPONENT_NESTING,
    MAX_COMPONENTS,
    MAX_IDENTIFIER_BYTES,
    MAX_XML_DEPTH,
    TooLarge,
)
from services.scanner.domain.lockfiles import scan_tree
from services.scanner.domain.lockfiles.tree import DictTree
from services.scanner.domain.sbom import assemble, parse_sbom
from services.scanner.domain.vex_import import VexMalformed, parse_vex
from services.scanner.scans.result import ComponentRecord, ScanResult
from services.scanner.scans.worker import storable_result
from shared.storable import find_unstorable

CDX_NS = "http://cyclonedx.org/schema/bom/1.5"


def nested_xml(levels: int, *, purls: bool = True) -> bytes:
    opening = "".join(
        f'<component type="library"><name>c{i}</name><version>1</version>'
        + (f"<purl>pkg:pypi/c{i}@1</purl>" if purls else "")
        + "<components>"
        for i in range(levels)
    )
    closing = "</components></component>" * levels
    return (
        f'<?xml version="1.0"?><bom xmlns="{CDX_NS}" version="1"><components>'
        f"{opening}{closing}</components></bom>"
    ).encode()


def nested_json(levels: int) -> bytes:
    opening = "".join(
        f'{{"name":"c{i}","version":"1","purl":"pkg:pypi/c{i}@1","components":['
        for i in range(levels)
    )
    return (
        b'{"bomFormat":"CycloneDX","specVersion":"1.5","components":['
        + opening.encode()
        + b"]}" * levels
        + b"]}"
    )


def cdx(components: list[dict[str, Any]], **extra: Any) -> bytes:
    document = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components}
    document.update(extra)
    return json.dumps(document).encode()


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- nesting ---------------------------------------------------------------------------------
@pytest.mark.parametrize("build", [nested_xml, nested_json], ids=["xml", "json"])
def test_components_nested_to_the_limit_are_read(build: Any) -> None:
    bom = parse_sbom(build(MAX_COMPONENT_NESTING))
    assert len(bom.components) == MAX_COMPONENT_NESTING


@pytest.mark.parametrize("build", [nested_xml, nested_json], ids=["xml", "json"])
def test_one_level_more_is_refused_at_the_component(build: Any) -> None:
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(build(MAX_COMPONENT_NESTING + 1))
    assert caught.value.code == "sbom_malformed"
    assert "32 levels of components" in caught.value.detail
    location = caught.value.location or ""
    assert location.count("component") >= MAX_COMPONENT_NESTING


@pytest.mark.parametrize("levels", [10_000, 20_000])
@pytest.mark.parametrize("build", [nested_xml, nested_json], ids=["xml", "json"])
def test_ten_thousand_levels_are_refused_in_bounded_memory(build: Any, levels: int) -> None:
    """Before the limits, 10,000 XML levels took 4 s and 2.3 GB (each component's location
    repeats every level above it) and 20,000 grew past 13 GB; JSON crashed the worker with a
    RecursionError. Now either is one cheap refusal."""
    document = build(levels)
    before = peak_rss_mib()
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(document)
    assert "nested more than" in caught.value.detail
    # ru_maxrss is the process's peak: the refusal may not raise it by more than a few
    # times the document itself (1-3 MB), whatever else the test process holds.
    assert peak_rss_mib() - before < 64


def test_xml_deeper_than_the_element_limit_is_refused_even_without_components() -> None:
    inner = "<x>" * MAX_XML_DEPTH + "</x>" * MAX_XML_DEPTH
    document = f'<bom xmlns="{CDX_NS}"><metadata>{inner}</metadata></bom>'.encode()
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(document)
    assert caught.value.location == "/bom/metadata"
    assert f"{MAX_XML_DEPTH} elements" in caught.value.detail


def test_deep_json_outside_components_is_refused_not_a_crash() -> None:
    deep = "[" * 5000 + "]" * 5000
    document = f'{{"bomFormat":"CycloneDX","specVersion":"1.5","x":{deep}}}'.encode()
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(document)
    assert caught.value.location == "$"
    assert sys.getrecursionlimit() < 5000  # what makes this a RecursionError in msgspec


# ---- values a database refuses ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("component", "location"),
    [
        ({"name": "evil\u0000name", "version": "1"}, "$.components[1].name"),
        ({"name": "x", "version": "1\u0000"}, "$.components[1].version"),
        ({"name": "x", "version": "1", "purl": "pkg:pypi/x@1\u0000"}, "$.components[1].purl"),
        ({"name": "x", "bom-ref": "r\u0000"}, "$.components[1].ref"),
        (
            {"name": "x", "licenses": [{"license": {"id": "MIT\u0000"}}]},
            "$.components[1].licenses[0].id",
        ),
        (
            {"name": "x", "hashes": [{"alg": "SHA-256", "content": "ab\u0000"}]},
            "$.components[1].hashes[0].content",
        ),
        ({"name": "x" * (MAX_IDENTIFIER_BYTES + 1)}, "$.components[1].name"),
        ({"name": "é" * (MAX_IDENTIFIER_BYTES // 2 + 1)}, "$.components[1].name"),
    ],
)
def test_a_value_no_database_stores_is_refused_with_its_location(
    component: dict[str, Any], location: str
) -> None:
    document = cdx([{"name": "fine", "version": "1"}, component])
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(document)
    assert caught.value.code == "sbom_malformed"
    assert caught.value.location == location
    assert find_unstorable(caught.value.detail) is None  # the refusal itself is storable


def test_nul_in_the_subject_is_refused() -> None:
    document = cdx([], metadata={"component": {"name": "app\u0000", "type": "application"}})
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(document)
    assert caught.value.location == "$.metadata.component.name"


def test_nul_in_an_spdx_tag_value_package_is_refused() -> None:
    document = (
        b"SPDXVersion: SPDX-2.3\nDataLicense: CC0-1.0\nSPDXID: SPDXRef-DOCUMENT\n"
        b"DocumentName: x\nDocumentNamespace: https://example.com/x\n"
        b"PackageName: bad\x00name\nSPDXID: SPDXRef-p\nPackageVersion: 1\n"
    )
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(document)
    assert "NUL" in caught.value.detail
    assert "name" in (caught.value.location or "")


def test_a_warning_that_quotes_a_nul_is_stored_escaped() -> None:
    document = cdx(
        [{"name": "a", "bom-ref": "a"}],
        dependencies=[{"ref": "a", "dependsOn": ["ghost\u0000"]}],
    )
    bom = parse_sbom(document)
    assert [w.code for w in bom.warnings] == ["unknown_dependency_ref"]
    assert find_unstorable(bom) is None


def test_more_components_than_the_bound_is_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assemble, "MAX_COMPONENTS", 5)
    with pytest.raises(TooLarge) as caught:
        parse_sbom(cdx([{"name": f"c{i}"} for i in range(6)]))
    assert caught.value.code == "too_large"
    assert MAX_COMPONENTS > 10_000  # a large real SBOM is read


# ---- lockfiles -------------------------------------------------------------------------------
def test_a_lockfile_with_a_nul_fails_alone() -> None:
    tree = DictTree(
        {
            "a/requirements.txt": b"flask==2.0.0\n",
            "b/package-lock.json": json.dumps(
                {
                    "name": "x",
                    "lockfileVersion": 3,
                    "packages": {
                        "": {"name": "x"},
                        "node_modules/evil\u0000": {"version": "1.0.0"},
                    },
                }
            ).encode(),
        }
    )
    scanned = scan_tree(tree)
    assert [c.name for c in scanned.components] == ["flask"]
    [failure] = scanned.failures
    assert (failure.path, failure.code) == ("b/package-lock.json", "lockfile_malformed")
    assert "NUL" in failure.detail
    assert find_unstorable(scanned) is None


def test_a_deep_json_lockfile_fails_alone() -> None:
    deep = "[" * 5000 + "]" * 5000
    tree = DictTree({"package-lock.json": f'{{"lockfileVersion": 3, "x": {deep}}}'.encode()})
    [failure] = scan_tree(tree).failures
    assert failure.code == "lockfile_malformed"


# ---- the worker's last check -----------------------------------------------------------------
def test_the_worker_refuses_a_result_it_could_not_store() -> None:
    def result(name: str) -> ScanResult:
        return ScanResult(
            scan_id="s",
            project_id="p",
            format="cyclonedx-json",
            spec_version="1.5",
            components=(ComponentRecord(ref="r", name=name),),
        )

    assert storable_result("sbom", result("fine \\u0000 as text"))  # escaped text is fine
    with pytest.raises(IngestError) as caught:
        storable_result("sbom", result("bad\x00"))
    assert caught.value.code == "sbom_malformed"
    assert caught.value.location == "result.components[0].name"
    with pytest.raises(IngestError) as caught:
        storable_result("source", result("bad\x00"))
    assert caught.value.code == "lockfile_malformed"


# ---- VEX documents ---------------------------------------------------------------------------
def test_a_vex_statement_with_a_nul_is_refused_naming_it() -> None:
    document = json.dumps(
        {
            "@context": "https://openvex.dev/ns/v0.2.0",
            "statements": [
                {
                    "vulnerability": {"name": "CVE-2024-1"},
                    "products": [{"@id": "pkg:pypi/django@3.2.0"}],
                    "status": "affected",
                    "action_statement": "upgrade\u0000now",
                }
            ],
        }
    ).encode()
    with pytest.raises(VexMalformed) as caught:
        parse_vex(document)
    assert caught.value.location == "$.statements[0] (detail)"


def test_a_deep_vex_document_is_refused_not_a_crash() -> None:
    deep = "[" * 5000 + "]" * 5000
    document = f'{{"@context": "https://openvex.dev/ns/v0.2.0", "x": {deep}}}'.encode()
    with pytest.raises(VexMalformed):
        parse_vex(document)
