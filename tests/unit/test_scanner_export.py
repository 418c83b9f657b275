"""SBOM and VEX exports: valid against the official schemas, deterministic, and read back by
our own parsers with the same components, graph and VEX states."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.scanner.domain.export_cyclonedx import (
    build_cyclonedx_json,
    cyclonedx_document,
    export_serial,
)
from services.scanner.domain.export_cyclonedx_xml import build_cyclonedx_xml, document_to_xml
from services.scanner.domain.export_spdx import build_spdx_json
from services.scanner.domain.findings import VEX_STATES, Finding
from services.scanner.domain.licenses import normalize
from services.scanner.domain.model import Bom, Component, Dependency, Hash, License
from services.scanner.domain.sbom import parse_sbom
from services.scanner.domain.vex_apply import apply_statements
from services.scanner.domain.vex_export import build_cyclonedx_vex, build_openvex
from services.scanner.domain.vex_import import parse_vex
from tests.conftest import SHARED_DATA, shared_data

NOW = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
SERIAL = export_serial("project-1", "scan-1", "sbom")
SCHEMAS = Path(__file__).parent.parent / "fixtures" / "schemas"

SUBJECT = Component(ref="app", name="shop", version="2.0.0", type="application")
COMPONENTS = (
    Component(
        ref="pkg:pypi/django@3.2.0",
        name="Django",
        version="3.2.0",
        purl="pkg:pypi/django@3.2.0",
        ecosystem="PyPI",
        package="django",
        hashes=(
            Hash("SHA-256", "a" * 64),
            Hash("sha512", "sha512-base64notHex=="),  # npm integrity style: left out
            Hash("SHA-1", "b" * 40),
        ),
        licenses=(License(id="BSD-3-Clause"),),
        scope="required",
        direct=True,
    ),
    Component(
        ref="npm-left-pad",
        name="left-pad",
        version="1.3.0",
        purl="pkg:npm/left-pad@1.3.0",
        ecosystem="npm",
        package="left-pad",
        licenses=(License(expression="MIT OR Apache-2.0"),),
        scope="dev",
    ),
    Component(
        ref="weird&<ref>",
        name='odd "name" <with> & \x07 bell',
        version="0.1",
        licenses=(License(name="Acme Corp Proprietary"), License(id="MIT")),
        type="framework",
    ),
    Component(
        ref="classpath",
        name="jdk-lib",
        version="17",
        purl="pkg:maven/org.example/jdk-lib@17",
        ecosystem="Maven",
        package="org.example:jdk-lib",
        licenses=(License(expression="GPL-2.0-only WITH Classpath-exception-2.0"),),
        type="no-such-type",
    ),
)
DEPENDENCIES = (
    Dependency("app", ("pkg:pypi/django@3.2.0", "npm-left-pad")),
    Dependency("pkg:pypi/django@3.2.0", ("weird&<ref>", "missing-ref")),
)


def make_finding(n: int, state: str, **kw: Any) -> Finding:
    base: dict[str, Any] = {
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "component_ref": "pkg:pypi/django@3.2.0",
        "component_name": "Django",
        "purl": "pkg:pypi/django@3.2.0",
        "ecosystem": "PyPI",
        "package": "django",
        "version": "3.2.0",
        "vulnerability_id": f"CVE-2024-{1000 + n}",
        "advisory_ids": (f"GHSA-{n:04d}-aaaa-bbbb", f"PYSEC-2024-{n}"),
        "severity": "HIGH",
        "cvss_score": 7.5,
        "cvss_vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
        "epss": 0.25,
        "state": state,
    }
    if state == "not_affected":
        base["justification"] = "vulnerable_code_not_in_execute_path"
    if state in ("false_positive", "suppressed"):
        base["detail"] = "reviewed <by> the board & co"
    base.update(kw)
    return Finding(**base)


FINDINGS = (
    *(make_finding(n, state) for n, state in enumerate(VEX_STATES)),
    make_finding(
        20,
        "exploitable",
        component_ref="npm-left-pad",
        component_name="left-pad",
        purl="pkg:npm/left-pad@1.3.0",
        ecosystem="npm",
        package="left-pad",
        version="1.3.0",
        vulnerability_id="GHSA-left-pad0-0000",
        advisory_ids=(),
        severity="UNKNOWN",
        cvss_score=None,
        cvss_vector=None,
        epss=None,
    ),
    # The same weakness in two components with the same analysis: one entry, two affects.
    make_finding(
        2,
        "exploitable",
        id="00000000-0000-0000-0000-000000000099",
        component_ref="classpath",
        purl="pkg:maven/org.example/jdk-lib@17",
        ecosystem="Maven",
        package="org.example:jdk-lib",
        version="17",
    ),
)


def cyclonedx_validators() -> Any:
    pytest.importorskip("cyclonedx.validation.json", reason="cyclonedx-python-lib validates")
    pytest.importorskip("lxml", reason="lxml validates the XML")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from cyclonedx.validation.xml import XmlValidator

    versions = {"1.5": SchemaVersion.V1_5, "1.6": SchemaVersion.V1_6}
    return versions, JsonStrictValidator, XmlValidator


def export_all(
    bom: Bom, findings: tuple[Finding, ...] = (), spec_version: str = "1.6"
) -> tuple[bytes, bytes]:
    args: dict[str, Any] = {
        "dependencies": bom.dependencies,
        "findings": findings,
        "subject": bom.metadata_component,
        "serial_number": SERIAL,
        "timestamp": NOW,
        "spec_version": spec_version,
    }
    return build_cyclonedx_json(bom.components, **args), build_cyclonedx_xml(bom.components, **args)


SYNTHETIC = Bom(
    format="cyclonedx",
    encoding="json",
    spec_version="1.6",
    components=COMPONENTS,
    dependencies=DEPENDENCIES,
    metadata_component=SUBJECT,
)


# --- CycloneDX ---------------------------------------------------------------------------


@pytest.mark.parametrize("spec_version", ["1.5", "1.6"])
def test_synthetic_cyclonedx_is_valid_in_both_encodings(spec_version: str) -> None:
    versions, json_validator, xml_validator = cyclonedx_validators()
    as_json, as_xml = export_all(SYNTHETIC, FINDINGS, spec_version)
    assert json_validator(versions[spec_version]).validate_str(as_json.decode()) is None
    assert xml_validator(versions[spec_version]).validate_str(as_xml.decode()) is None


def test_the_validators_do_refuse_invalid_documents() -> None:
    versions, json_validator, xml_validator = cyclonedx_validators()
    document = cyclonedx_document(
        COMPONENTS, findings=FINDINGS, serial_number=SERIAL, timestamp=NOW
    )
    document["vulnerabilities"][1]["analysis"]["state"] = "maybe"
    broken = msgspec.json.encode(document).decode()
    assert json_validator(versions["1.6"]).validate_str(broken) is not None
    assert xml_validator(versions["1.6"]).validate_str(document_to_xml(document).decode())


def shared_sboms() -> list[Path]:
    folder = SHARED_DATA / "sbom"
    paths = [
        p
        for p in sorted(folder.glob("*/*"))
        if p.suffix in (".json", ".xml", ".spdx") and "requirements" not in p.name
    ]
    return paths


@pytest.mark.parametrize("path", shared_sboms(), ids=lambda p: p.name)
def test_every_shared_sbom_exports_valid_documents_that_read_back(path: Path) -> None:
    versions, json_validator, xml_validator = cyclonedx_validators()
    bom = parse_sbom(shared_data("sbom", path.parent.name, path.name).read_bytes())
    findings = (
        tuple(
            make_finding(1, "not_affected", component_ref=c.ref, purl=c.purl)
            for c in bom.components[:3]
        )
        if bom.components
        else ()
    )
    as_json, as_xml = export_all(bom, findings)
    assert json_validator(versions["1.6"]).validate_str(as_json.decode()) is None
    assert xml_validator(versions["1.6"]).validate_str(as_xml.decode()) is None
    for data in (as_json, as_xml):
        again = parse_sbom(data)
        assert_same_components(bom, again)
    spdx = build_spdx_json(
        bom.components,
        dependencies=bom.dependencies,
        findings=findings,
        subject=bom.metadata_component,
        name=path.name,
        serial_number=SERIAL,
        timestamp=NOW,
    )
    assert_valid_spdx(spdx)
    assert_same_components(bom, parse_sbom(spdx), by="purl")


def assert_same_components(before: Bom, after: Bom, by: str = "ref") -> None:
    def view(bom: Bom) -> list[tuple[Any, ...]]:
        # SPDX renames licenses it does not know to LicenseRef ids: compare the known ones.
        return sorted(
            (
                (c.ref if by == "ref" else c.purl or c.name),
                c.name,
                c.version,
                c.purl,
                license_view(bom, c, by),
            )
            for c in bom.components
        )

    def license_view(bom: Bom, component: Component, by: str) -> str | None:
        normalized = normalize(component.licenses)
        if by == "ref" or not normalized.unknown:
            return normalized.expression
        return "some unknown"

    assert view(after) == view(before)
    if by == "ref":
        graph = {d.ref: set(d.depends_on) for d in before.dependencies if d.depends_on}
        assert {d.ref: set(d.depends_on) for d in after.dependencies if d.depends_on} == graph
        assert [c.direct for c in after.components] == [c.direct for c in before.components]


def test_xml_round_trip_keeps_escaped_text_and_drops_illegal_characters() -> None:
    _, as_xml = export_all(SYNTHETIC, FINDINGS)
    ET.fromstring(as_xml)  # well-formed
    again = parse_sbom(as_xml)
    odd = next(c for c in again.components if c.ref == "weird&<ref>")
    assert odd.name == 'odd "name" <with> & \ufffd bell'
    assert [c.ref for c in again.components] == [c.ref for c in COMPONENTS]


def test_cyclonedx_content_decisions() -> None:
    document = json.loads(export_all(SYNTHETIC, FINDINGS)[0])
    components = {c["bom-ref"]: c for c in document["components"]}
    django = components["pkg:pypi/django@3.2.0"]
    assert django["hashes"] == [
        {"alg": "SHA-256", "content": "a" * 64},
        {"alg": "SHA-1", "content": "b" * 40},
    ]
    assert django["licenses"] == [{"expression": "BSD-3-Clause"}]
    assert components["npm-left-pad"]["scope"] == "excluded"  # dev
    assert components["weird&<ref>"]["licenses"] == [
        {"license": {"name": "Acme Corp Proprietary"}},
        {"license": {"name": "MIT"}},
    ]
    assert components["classpath"]["type"] == "library"
    assert document["dependencies"][1] == {
        "ref": "pkg:pypi/django@3.2.0",
        "dependsOn": ["weird&<ref>"],
    }
    assert document["metadata"]["timestamp"] == "2026-03-01T12:30:00Z"

    analyses = {
        v["id"]: (v.get("analysis"), [a["ref"] for a in v["affects"]])
        for v in document["vulnerabilities"]
    }
    assert analyses["CVE-2024-1000"] == (None, ["pkg:pypi/django@3.2.0"])  # new
    assert analyses["CVE-2024-1001"][0] == {"state": "in_triage"}
    assert analyses["CVE-2024-1002"] == (
        {"state": "exploitable"},
        ["classpath", "pkg:pypi/django@3.2.0"],
    )
    assert analyses["CVE-2024-1003"][0] == {
        "state": "not_affected",
        "justification": "code_not_reachable",
    }
    assert analyses["CVE-2024-1005"][0] == {
        "state": "exploitable",
        "response": ["will_not_fix"],
        "detail": "Suppressed: reviewed <by> the board & co",
    }
    assert analyses["CVE-2024-1006"][0] == {"state": "resolved"}
    first = document["vulnerabilities"][0]
    assert first["ratings"] == [
        {
            "score": 7.5,
            "severity": "high",
            "method": "CVSSv31",
            "vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N",
        }
    ]
    assert [r["id"] for r in first["references"]] == ["GHSA-0000-aaaa-bbbb", "PYSEC-2024-0"]
    assert first["properties"] == [{"name": "gatehouse:epss", "value": "0.25000"}]


def test_exports_are_deterministic() -> None:
    assert export_all(SYNTHETIC, FINDINGS) == export_all(SYNTHETIC, FINDINGS)
    assert export_serial("p", "s") == export_serial("p", "s") != export_serial("p", "t")
    reordered = export_all(SYNTHETIC, tuple(reversed(FINDINGS)))[0]
    assert (
        json.loads(reordered)["vulnerabilities"]
        == json.loads(export_all(SYNTHETIC, FINDINGS)[0])["vulnerabilities"]
    )


# --- SPDX --------------------------------------------------------------------------------


def assert_valid_spdx(data: bytes) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema validates SPDX")
    schema = json.loads((SCHEMAS / "spdx-2.3.schema.json").read_bytes())
    jsonschema.Draft7Validator(schema).validate(json.loads(data))


def test_spdx_export() -> None:
    data = build_spdx_json(
        COMPONENTS,
        dependencies=DEPENDENCIES,
        findings=FINDINGS,
        subject=SUBJECT,
        name="shop 2.0.0",
        serial_number=SERIAL,
        timestamp=NOW,
    )
    assert_valid_spdx(data)
    document = json.loads(data)
    packages = {p["name"]: p for p in document["packages"]}
    assert packages['odd "name" <with> & \x07 bell']["licenseDeclared"] == (
        "LicenseRef-Acme-Corp-Proprietary AND MIT"
    )
    assert document["hasExtractedLicensingInfos"] == [
        {
            "licenseId": "LicenseRef-Acme-Corp-Proprietary",
            "extractedText": "Acme Corp Proprietary",
            "name": "Acme Corp Proprietary",
        }
    ]
    assert packages["jdk-lib"]["licenseDeclared"] == "GPL-2.0-only WITH Classpath-exception-2.0"
    django = packages["Django"]
    assert {r["referenceLocator"] for r in django["externalRefs"]} >= {
        "pkg:pypi/django@3.2.0",
        "https://nvd.nist.gov/vuln/detail/CVE-2024-1000",
    }
    types = [r["relationshipType"] for r in document["relationships"]]
    assert types.count("DESCRIBES") == 1
    assert types.count("DEPENDS_ON") == 2
    assert types.count("DEV_DEPENDENCY_OF") == 1
    again = parse_sbom(data)
    assert again.metadata_component is not None
    assert again.metadata_component.name == "shop"
    left_pad = next(c for c in again.components if c.name == "left-pad")
    assert (left_pad.scope, left_pad.purl) == ("dev", "pkg:npm/left-pad@1.3.0")
    # SPDX ids are stable per component ref.
    assert django["SPDXID"] == build_and_find("Django")


def build_and_find(name: str) -> str:
    data = build_spdx_json(
        COMPONENTS[:1], name="x", serial_number=SERIAL, timestamp=NOW, subject=None
    )
    return str(next(p["SPDXID"] for p in json.loads(data)["packages"] if p["name"] == name))


# --- VEX ---------------------------------------------------------------------------------


def openvex_schema() -> dict[str, Any]:
    path = shared_data("vex", "openvex", "openvex_json_schema.json")
    return dict(json.loads(path.read_bytes()))


def test_openvex_export_is_valid_and_round_trips() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema validates OpenVEX")
    data = build_openvex(FINDINGS, author="Gatehouse", timestamp=NOW, document_name=("p", "s"))
    assert data == build_openvex(
        tuple(reversed(FINDINGS)), author="Gatehouse", timestamp=NOW, document_name=("p", "s")
    )
    document = json.loads(data)
    jsonschema.validate(document, openvex_schema())
    statuses = {s["vulnerability"]["name"]: s for s in document["statements"]}
    assert statuses["CVE-2024-1000"]["status"] == "under_investigation"
    assert statuses["CVE-2024-1003"]["justification"] == "vulnerable_code_not_in_execute_path"
    assert statuses["CVE-2024-1004"]["status"] == "not_affected"  # false positive
    assert statuses["CVE-2024-1005"]["action_statement"].startswith("Risk accepted")
    assert [p["@id"] for p in statuses["CVE-2024-1002"]["products"]] == [
        "pkg:maven/org.example/jdk-lib@17",
        "pkg:pypi/django@3.2.0",
    ]

    applied = {
        a.finding_id: a.state for a in apply_statements(FINDINGS, parse_vex(data).statements)
    }
    expected = {
        "new": "analyzing",
        "analyzing": "analyzing",
        "exploitable": "exploitable",
        "not_affected": "not_affected",
        "false_positive": "not_affected",
        "suppressed": "exploitable",
        "fixed": "fixed",
    }
    assert applied == {f.id: expected[f.state] for f in FINDINGS}
    changed = build_openvex(
        (*FINDINGS[:-1], msgspec.structs.replace(FINDINGS[-1], state="fixed")),
        author="Gatehouse",
        timestamp=NOW,
        document_name=("p", "s"),
    )
    assert json.loads(changed)["@id"] != document["@id"]


@pytest.mark.parametrize("spec_version", ["1.5", "1.6"])
def test_cyclonedx_vex_export_is_valid_and_round_trips(spec_version: str) -> None:
    versions, json_validator, _ = cyclonedx_validators()
    data = build_cyclonedx_vex(
        FINDINGS,
        subject=SUBJECT,
        timestamp=NOW,
        document_name=("p",),
        spec_version=spec_version,  # type: ignore[arg-type]
    )
    assert json_validator(versions[spec_version]).validate_str(data.decode()) is None
    parsed = parse_vex(data)
    assert parsed.format == "cyclonedx"
    applied = {a.finding_id: a.state for a in apply_statements(FINDINGS, parsed.statements)}
    expected = {
        "new": "analyzing",
        "analyzing": "analyzing",
        "exploitable": "exploitable",
        "not_affected": "not_affected",
        "false_positive": "false_positive",
        "suppressed": "exploitable",
        "fixed": "fixed",
    }
    assert applied == {f.id: expected[f.state] for f in FINDINGS}
