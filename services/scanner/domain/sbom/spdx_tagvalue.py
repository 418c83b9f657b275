"""SPDX 2.2/2.3 tag-value: ``Tag: value`` lines, ``<text>...</text>`` spanning lines, sections
opened by ``PackageName`` / ``FileName`` / ``SnippetSPDXID`` / ``LicenseID``."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..errors import MalformedDocument
from ..model import Bom
from .common import spdx_version
from .spdx import DOCUMENT_ID, SpdxPackage, SpdxRelationship, build_bom

_TAG = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\s*:\s?(.*)")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise MalformedDocument(
            "SPDX tag-value is not valid UTF-8", location=f"line {line}"
        ) from None


def tag_values(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, tag, value) for every tag; a ``<text>`` value may span lines."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        match = _TAG.fullmatch(line)
        if match is None:
            raise MalformedDocument(
                f"expected 'Tag: value', found {line[:60]!r}", location=f"line {number}"
            )
        tag, value = match.group(1), match.group(2).strip()
        if value.startswith("<text>"):
            parts = [value[len("<text>") :]]
            while "</text>" not in parts[-1]:
                if index >= len(lines):
                    raise MalformedDocument(
                        f"<text> of {tag} is never closed", location=f"line {number}"
                    )
                parts.append(lines[index])
                index += 1
            value = "\n".join(parts).split("</text>", 1)[0].strip()
        yield number, tag, value


def parse_spdx_tag_value(data: bytes) -> Bom:
    """Parse an SPDX 2.2/2.3 tag-value document. Raises ``MalformedDocument`` with the line."""
    version_text: str | None = None
    version_line = 1
    packages: list[SpdxPackage] = []
    relationships: list[SpdxRelationship] = []
    others: set[str] = {DOCUMENT_ID}
    extracted: dict[str, str] = {}
    section = "document"
    package: SpdxPackage | None = None
    license_id: str | None = None
    for number, tag, value in tag_values(_decode(data)):
        if tag == "SPDXVersion":
            version_text, version_line = value, number
        elif tag == "PackageName":
            section, package = (
                "package",
                SpdxPackage(spdx_id="", name=value, location=f"line {number}"),
            )
            packages.append(package)
        elif tag in ("FileName", "SnippetSPDXID"):
            section, package = "file", None
            if tag == "SnippetSPDXID":
                others.add(value)
        elif tag == "LicenseID":
            section, package, license_id = "license", None, value
        elif tag == "LicenseName" and section == "license" and license_id:
            extracted[license_id] = value
        elif tag == "Relationship":
            parts = value.split()
            if len(parts) != 3:
                raise MalformedDocument(
                    f"Relationship needs 'element TYPE element', found {value[:80]!r}",
                    location=f"line {number}",
                )
            relationships.append(
                SpdxRelationship(parts[0], parts[1].upper(), parts[2], f"line {number}")
            )
        elif tag == "SPDXID":
            if section == "package" and package is not None:
                package.spdx_id = value
            elif section == "file":
                others.add(value)
        elif section == "package" and package is not None:
            _package_tag(package, tag, value, number)
    if version_text is None:
        raise MalformedDocument("SPDX tag-value has no SPDXVersion", location="line 1")
    version, note = spdx_version(version_text, location=f"line {version_line}")
    for package in packages:
        if not package.spdx_id:
            raise MalformedDocument(
                f"package {package.name!r} has no SPDXID", location=package.location
            )
    return build_bom(
        encoding="tag-value",
        spec_version=version,
        version_note=note,
        packages=packages,
        relationships=relationships,
        describes=[],
        other_elements=others,
        extracted_names=extracted,
    )


def _package_tag(package: SpdxPackage, tag: str, value: str, number: int) -> None:
    if tag == "PackageVersion":
        package.version = value
    elif tag == "PackageLicenseConcluded":
        package.license_concluded = value
    elif tag == "PackageLicenseDeclared":
        package.license_declared = value
    elif tag == "PrimaryPackagePurpose":
        package.purpose = value
    elif tag == "PackageChecksum":
        algorithm, colon, checksum = value.partition(":")
        if not colon:
            raise MalformedDocument(
                f"PackageChecksum needs 'ALGORITHM: value', found {value[:80]!r}",
                location=f"line {number}",
            )
        package.checksums.append((algorithm.strip(), checksum.strip()))
    elif tag == "ExternalRef":
        parts = value.split()
        if len(parts) < 3:
            raise MalformedDocument(
                f"ExternalRef needs 'CATEGORY type locator', found {value[:80]!r}",
                location=f"line {number}",
            )
        category, ref_type, locator = parts[0], parts[1], parts[2]
        if ref_type == "purl" and category.upper().replace("_", "-") == "PACKAGE-MANAGER":
            package.purls.append(locator)
