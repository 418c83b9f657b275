"""Every real SBOM in ../shared/data/sbom parses, with the counts and spot checks below.

Skipped with a reason when ../shared/data is absent; the readers' behaviour is covered by
the in-test documents of test_scanner_sbom*.py either way.
"""

from __future__ import annotations

from collections import Counter

import pytest

from services.scanner.domain.model import Bom, Hash, License
from services.scanner.domain.sbom import parse_sbom
from tests.conftest import shared_data

pytestmark = pytest.mark.data


def load(*parts: str) -> Bom:
    return parse_sbom(shared_data("sbom", *parts).read_bytes())


@pytest.mark.parametrize(
    ("name", "spec", "components", "ecosystem", "direct", "transitive", "dependencies"),
    [
        ("juice-shop-11.1.2.cdx.json", "1.2", 840, "npm", 0, 0, 0),
        ("dropwizard-1.3.15.cdx.json", "1.2", 167, "Maven", 29, 138, 167),
        ("proton-bridge-1.6.3.cdx.json", "1.2", 201, "Go", 56, 145, 202),
        ("laravel-7.12.0.cdx-1.4.json", "1.4", 62, "Packagist", 1, 61, 63),
        ("laravel-7.12.0.cdx-1.3.xml", "1.3", 62, "Packagist", 1, 61, 63),
        ("python-legacy-app.cdx-1.5.json", "1.5", 12, "PyPI", 0, 0, 12),
        ("cern-lhc-vdm-editor.cdx.json", "1.2", 43, "npm", 0, 0, 0),
    ],
)
def test_cyclonedx_documents(
    name: str,
    spec: str,
    components: int,
    ecosystem: str,
    direct: int,
    transitive: int,
    dependencies: int,
) -> None:
    bom = load("cyclonedx", name)
    assert (bom.format, bom.spec_version) == ("cyclonedx", spec)
    assert len(bom.components) == components
    assert Counter(c.ecosystem for c in bom.components) == {ecosystem: components}
    assert sum(c.direct is True for c in bom.components) == direct
    assert sum(c.direct is False for c in bom.components) == transitive
    assert len(bom.dependencies) == dependencies
    assert all(c.purl and c.version for c in bom.components)
    assert bom.warnings == ()


def test_juice_shop_spot_check() -> None:
    bom = load("cyclonedx", "juice-shop-11.1.2.cdx.json")
    assert bom.metadata_component is not None
    assert (bom.metadata_component.name, bom.metadata_component.version) == ("juice-shop", "11.1.2")
    body_parser = next(c for c in bom.components if c.ref == "pkg:npm/body-parser@1.19.0")
    assert body_parser.hashes == (Hash("SHA-1", "96b2709e57c9c4e09a6fd66a8fd979844f69f08a"),)
    assert body_parser.licenses == (License(id="MIT"),)
    assert body_parser.direct is None  # the document has no dependency graph


def test_dropwizard_spot_check() -> None:
    bom = load("cyclonedx", "dropwizard-1.3.15.cdx.json")
    jackson = next(c for c in bom.components if c.name == "jackson-databind")
    assert jackson.package == "com.fasterxml.jackson.core:jackson-databind"
    assert jackson.group == "com.fasterxml.jackson.core"
    assert jackson.ecosystem == "Maven"
    assert {h.alg for h in jackson.hashes} >= {"SHA-1", "SHA-256", "SHA-512"}


def test_proton_bridge_go_modules() -> None:
    bom = load("cyclonedx", "proton-bridge-1.6.3.cdx.json")
    notificator = bom.components[0]
    assert notificator.package == "github.com/0xAX/notificator"
    assert notificator.version == "v0.0.0-20191016112426-3962a5ea8da1"
    assert notificator.direct is True


def test_laravel_xml_and_json_agree() -> None:
    as_json = load("cyclonedx", "laravel-7.12.0.cdx-1.4.json")
    as_xml = load("cyclonedx", "laravel-7.12.0.cdx-1.3.xml")
    assert [(c.ref, c.purl, c.direct, c.licenses) for c in as_json.components] == [
        (c.ref, c.purl, c.direct, c.licenses) for c in as_xml.components
    ]
    assert as_json.dependencies == as_xml.dependencies
    (framework,) = (c for c in as_json.components if c.direct)
    assert framework.package == "laravel/laravel" and framework.version == "v7.12.0"


def test_python_legacy_app_matches_its_requirements() -> None:
    bom = load("cyclonedx", "python-legacy-app.cdx-1.5.json")
    pinned = dict(
        line.split("==")
        for line in shared_data("sbom", "cyclonedx", "python-legacy-app.requirements.txt")
        .read_text()
        .split()
    )
    assert {c.package: c.version for c in bom.components} == pinned


def test_spdx_tag_value_example() -> None:
    bom = load("spdx", "example1.spdx")
    assert (bom.format, bom.encoding, bom.spec_version) == ("spdx", "tag-value", "2.2")
    assert bom.metadata_component is not None
    assert bom.metadata_component.name == "hello"
    assert bom.metadata_component.licenses == (License(id="GPL-3.0-or-later"),)
    assert bom.components == ()  # files only besides the described package


def test_spdx_json_cargo_example() -> None:
    bom = load("spdx", "example11.spdx.json")
    assert bom.spec_version == "2.3"
    assert bom.metadata_component is not None and bom.metadata_component.name == "hello-server-src"
    by_name = {c.name: c for c in bom.components}
    assert set(by_name) == {"hyper", "tokio", "pretty_env_logger"}
    assert all(c.ecosystem == "crates.io" and c.direct for c in by_name.values())
    assert by_name["tokio"].version == "1.19.2"
    assert by_name["pretty_env_logger"].licenses == (License(expression="MIT OR Apache-2.0"),)


def test_spdx_json_single_package() -> None:
    bom = load("spdx", "hello-source.spdx.json")
    assert bom.metadata_component is not None and bom.metadata_component.name == "hello"
    assert bom.components == ()


def test_spdx_json_with_security_refs() -> None:
    bom = load("spdx", "sbom-with-security.spdx.json")
    (xlsx,) = bom.components
    assert (xlsx.package, xlsx.version, xlsx.ecosystem) == (
        "org.webjars.npm:xlsx",
        "0.16.6",
        "Maven",
    )
    assert xlsx.direct is True  # tools-java DYNAMIC_LINK xlsx


def test_requirements_reader_agrees_with_the_sbom_generated_from_it() -> None:
    from services.scanner.domain.lockfiles import DictTree, scan_tree

    requirements = shared_data("sbom", "cyclonedx", "python-legacy-app.requirements.txt")
    scan = scan_tree(DictTree({"python-legacy-app.requirements.txt": requirements.read_bytes()}))
    bom = load("cyclonedx", "python-legacy-app.cdx-1.5.json")
    assert {c.purl for c in scan.components} == {c.purl for c in bom.components}
