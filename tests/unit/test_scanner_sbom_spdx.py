"""SPDX 2.2/2.3 readers (JSON and tag-value) on documents built in the test."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.scanner.domain.errors import MalformedDocument, UnsupportedSpecVersion
from services.scanner.domain.model import Bom, Hash, License
from services.scanner.domain.sbom import parse_sbom


def package(spdx_id: str, name: str, version: str | None = "1.0", **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"SPDXID": spdx_id, "name": name, "downloadLocation": "NOASSERTION"}
    if version is not None:
        result["versionInfo"] = version
    result.update(fields)
    return result


def purl_ref(purl: str, category: str = "PACKAGE-MANAGER") -> list[dict[str, str]]:
    return [{"referenceCategory": category, "referenceType": "purl", "referenceLocator": purl}]


def rel(a: str, kind: str, b: str) -> dict[str, str]:
    return {"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b}


def spdx(
    packages: list[dict[str, Any]], relationships: list[dict[str, str]], **extra: Any
) -> bytes:
    document: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "test",
        "documentNamespace": "https://example.com/test",
        "creationInfo": {"created": "2024-01-01T00:00:00Z", "creators": ["Tool: test"]},
        "packages": packages,
        "relationships": relationships,
    }
    document.update(extra)
    return json.dumps(document).encode()


APP_GRAPH = spdx(
    [
        package("SPDXRef-app", "app"),
        package(
            "SPDXRef-requests",
            "requests",
            "2.19.1",
            externalRefs=purl_ref("pkg:pypi/requests@2.19.1"),
            checksums=[{"algorithm": "SHA256", "checksumValue": "ab" * 32}],
            licenseConcluded="Apache-2.0",
            licenseDeclared="MIT",
        ),
        package(
            "SPDXRef-urllib3",
            "urllib3",
            "1.24.1",
            externalRefs=purl_ref("pkg:pypi/urllib3@1.24.1", "PACKAGE_MANAGER"),
            licenseConcluded="NOASSERTION",
            licenseDeclared="MIT OR Apache-2.0",
        ),
        package("SPDXRef-pytest", "pytest", "7.0", externalRefs=purl_ref("pkg:pypi/pytest@7.0")),
        package("SPDXRef-lib", "libfoo", "2", licenseConcluded="LicenseRef-foo"),
    ],
    [
        rel("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-app"),
        rel("SPDXRef-app", "DEPENDS_ON", "SPDXRef-requests"),
        rel("SPDXRef-urllib3", "DEPENDENCY_OF", "SPDXRef-requests"),
        rel("SPDXRef-pytest", "DEV_DEPENDENCY_OF", "SPDXRef-app"),
        rel("SPDXRef-app", "CONTAINS", "SPDXRef-lib"),
        rel("SPDXRef-file", "GENERATED_FROM", "SPDXRef-app"),
    ],
    files=[{"SPDXID": "SPDXRef-file", "fileName": "./a.out"}],
    hasExtractedLicensingInfos=[
        {"licenseId": "LicenseRef-foo", "name": "Foo Corp License", "extractedText": "..."}
    ],
)


def test_spdx_json_packages_and_graph() -> None:
    bom = parse_sbom(APP_GRAPH)
    assert (bom.format, bom.encoding, bom.spec_version) == ("spdx", "json", "2.3")
    assert bom.metadata_component is not None and bom.metadata_component.name == "app"
    comps = {c.name: c for c in bom.components}
    assert list(comps) == ["requests", "urllib3", "pytest", "libfoo"]
    requests = comps["requests"]
    assert (requests.ecosystem, requests.package, requests.version) == (
        "PyPI",
        "requests",
        "2.19.1",
    )
    assert requests.hashes == (Hash("SHA-256", "ab" * 32),)
    assert requests.licenses == (License(id="Apache-2.0"),)  # concluded wins over declared
    assert comps["urllib3"].licenses == (License(expression="MIT OR Apache-2.0"),)
    assert comps["urllib3"].ecosystem == "PyPI"  # SPDX 2.2 spelling PACKAGE_MANAGER
    assert comps["libfoo"].licenses == (License(id="LicenseRef-foo", name="Foo Corp License"),)
    assert {n: (c.direct, c.scope) for n, c in comps.items()} == {
        "requests": (True, "required"),
        "urllib3": (False, "required"),
        "pytest": (True, "dev"),
        "libfoo": (True, "required"),
    }
    assert bom.warnings == ()  # the file relationship is not a dependency and not unknown


def test_spdx_document_describes_field_and_several_subjects() -> None:
    bom = parse_sbom(
        spdx(
            [package("SPDXRef-a", "a"), package("SPDXRef-b", "b"), package("SPDXRef-c", "c")],
            [rel("SPDXRef-b", "DEPENDS_ON", "SPDXRef-c")],
            documentDescribes=["SPDXRef-a", "SPDXRef-b"],
        )
    )
    assert bom.metadata_component is None
    assert {c.name: c.direct for c in bom.components} == {"a": True, "b": True, "c": False}


def test_spdx_without_relationships_has_unknown_direct_and_scope() -> None:
    bom = parse_sbom(spdx([package("SPDXRef-a", "a"), package("SPDXRef-b", "b")], []))
    assert [(c.direct, c.scope) for c in bom.components] == [(None, "unknown"), (None, "unknown")]


def test_spdx_relationship_to_unknown_element_warns() -> None:
    bom = parse_sbom(
        spdx(
            [package("SPDXRef-a", "a")],
            [
                rel("SPDXRef-a", "DEPENDS_ON", "SPDXRef-ghost"),
                rel("SPDXRef-a", "DEPENDS_ON", "NOASSERTION"),
                rel("SPDXRef-a", "DEPENDS_ON", "DocumentRef-other:SPDXRef-x"),
            ],
        )
    )
    assert [w.code for w in bom.warnings] == ["unknown_dependency_ref"]
    assert bom.warnings[0].location == "$.relationships[0]"


def test_spdx_duplicate_purls_fold() -> None:
    bom = parse_sbom(
        spdx(
            [
                package("SPDXRef-a", "a", externalRefs=purl_ref("pkg:npm/a@1.0")),
                package("SPDXRef-a2", "a", externalRefs=purl_ref("pkg:npm/a@1.0")),
            ],
            [],
        )
    )
    assert [c.ref for c in bom.components] == ["SPDXRef-a"]
    assert [w.code for w in bom.warnings] == ["duplicate_component"]


@pytest.mark.parametrize("version", ["SPDX-3.0", "2.3", "SPDX-1.2"])
def test_spdx_unsupported_versions(version: str) -> None:
    with pytest.raises(UnsupportedSpecVersion) as caught:
        parse_sbom(spdx([], [], spdxVersion=version))
    assert caught.value.location == "$.spdxVersion"


def test_spdx_older_minor_version_warns() -> None:
    bom = parse_sbom(spdx([package("SPDXRef-a", "a")], [], spdxVersion="SPDX-2.1"))
    assert [w.code for w in bom.warnings] == ["spec_version_untested"]


def test_spdx_json_shape_error_path() -> None:
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(spdx([package("SPDXRef-a", "a"), {"SPDXID": "SPDXRef-b"}], []))
    assert caught.value.location == "$.packages[1]"


TAG_VALUE = """SPDXVersion: SPDX-2.2
DataLicense: CC0-1.0
SPDXID: SPDXRef-DOCUMENT
DocumentName: tv
DocumentComment: <text>A comment
spanning: lines, with a colon
</text>

## the application
PackageName: app
SPDXID: SPDXRef-app
PackageVersion: 3.0
PackageDownloadLocation: NOASSERTION
PackageLicenseDeclared: Apache-2.0

PackageName: django
SPDXID: SPDXRef-django
PackageVersion: 2.2.0
PackageDownloadLocation: NOASSERTION
PackageChecksum: SHA1: 85ed0817af83a24ad8da68c2b5094de69833983c
PackageLicenseConcluded: BSD-3-Clause
ExternalRef: SECURITY cpe23Type cpe:2.3:a:djangoproject:django:2.2.0:*:*:*:*:*:*:*
ExternalRef: PACKAGE-MANAGER purl pkg:pypi/Django@2.2.0
PackageComment: <text>multi
line</text>

PackageName: sqlparse
SPDXID: SPDXRef-sqlparse
PackageVersion: 0.4.1
ExternalRef: PACKAGE-MANAGER purl pkg:pypi/sqlparse@0.4.1

FileName: ./manage.py
SPDXID: SPDXRef-manage
FileChecksum: SHA1: 85ed0817af83a24ad8da68c2b5094de69833983c

LicenseID: LicenseRef-x
LicenseName: X License
ExtractedText: <text>x</text>

Relationship: SPDXRef-DOCUMENT DESCRIBES SPDXRef-app
Relationship: SPDXRef-app DEPENDS_ON SPDXRef-django
Relationship: SPDXRef-django DEPENDS_ON SPDXRef-sqlparse
Relationship: SPDXRef-app CONTAINS SPDXRef-manage
"""


def test_spdx_tag_value() -> None:
    bom = parse_sbom(TAG_VALUE.encode())
    assert (bom.format, bom.encoding, bom.spec_version) == ("spdx", "tag-value", "2.2")
    assert bom.metadata_component is not None and bom.metadata_component.version == "3.0"
    django, sqlparse = bom.components
    assert (django.name, django.version, django.package, django.ecosystem) == (
        "django",
        "2.2.0",
        "django",
        "PyPI",
    )
    assert django.hashes == (Hash("SHA-1", "85ed0817af83a24ad8da68c2b5094de69833983c"),)
    assert django.licenses == (License(id="BSD-3-Clause"),)
    assert (django.direct, sqlparse.direct) == (True, False)
    assert bom.warnings == ()


@pytest.mark.parametrize(
    ("mutate", "location"),
    [
        (lambda t: t.replace("PackageVersion: 0.4.1", "this line has no tag"), "line 29"),
        (lambda t: t.replace("<text>x</text>", "<text>x"), "line 38"),
        (lambda t: t.replace("SPDXVersion: SPDX-2.2\n", ""), "line 1"),
        (lambda t: t.replace("SPDXID: SPDXRef-sqlparse\n", ""), "line 27"),
        (
            lambda t: t.replace(
                "Relationship: SPDXRef-app DEPENDS_ON SPDXRef-django", "Relationship: x"
            ),
            "line 41",
        ),
    ],
)
def test_spdx_tag_value_errors_name_the_line(mutate: Any, location: str) -> None:
    with pytest.raises(MalformedDocument) as caught:
        parse_sbom(mutate(TAG_VALUE).encode())
    assert caught.value.location == location


def test_spdx_tag_value_wrong_version() -> None:
    with pytest.raises(UnsupportedSpecVersion) as caught:
        parse_sbom(TAG_VALUE.replace("SPDX-2.2", "SPDX-3.0").encode())
    assert caught.value.location == "line 1"


def bom_names(bom: Bom) -> list[str]:
    return [c.name for c in bom.components]


def test_tag_value_and_json_agree() -> None:
    as_json = spdx(
        [
            package("SPDXRef-app", "app", "3.0"),
            package(
                "SPDXRef-django", "django", "2.2.0", externalRefs=purl_ref("pkg:pypi/Django@2.2.0")
            ),
            package(
                "SPDXRef-sqlparse",
                "sqlparse",
                "0.4.1",
                externalRefs=purl_ref("pkg:pypi/sqlparse@0.4.1"),
            ),
        ],
        [
            rel("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-app"),
            rel("SPDXRef-app", "DEPENDS_ON", "SPDXRef-django"),
            rel("SPDXRef-django", "DEPENDS_ON", "SPDXRef-sqlparse"),
        ],
    )
    from_json, from_tags = parse_sbom(as_json), parse_sbom(TAG_VALUE.encode())
    assert bom_names(from_json) == bom_names(from_tags)
    assert from_json.dependencies == from_tags.dependencies
    assert [(c.purl, c.direct) for c in from_json.components] == [
        (c.purl, c.direct) for c in from_tags.components
    ]
