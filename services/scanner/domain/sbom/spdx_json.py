"""SPDX 2.2/2.3 JSON."""

from __future__ import annotations

import msgspec

from ..model import Bom
from .common import json_error, spdx_version
from .spdx import SpdxPackage, SpdxRelationship, build_bom


class SpdxChecksum(msgspec.Struct):
    algorithm: str
    checksumValue: str


class SpdxExternalRef(msgspec.Struct):
    referenceCategory: str
    referenceType: str
    referenceLocator: str


class SpdxJsonPackage(msgspec.Struct):
    SPDXID: str
    name: str
    versionInfo: str | None = None
    checksums: list[SpdxChecksum] | None = None
    licenseConcluded: str | None = None
    licenseDeclared: str | None = None
    externalRefs: list[SpdxExternalRef] | None = None
    primaryPackagePurpose: str | None = None


class SpdxJsonRelationship(msgspec.Struct):
    spdxElementId: str
    relationshipType: str
    relatedSpdxElement: str


class SpdxElement(msgspec.Struct):
    SPDXID: str


class SpdxExtractedLicense(msgspec.Struct):
    licenseId: str
    name: str | None = None


class SpdxJsonDocument(msgspec.Struct):
    spdxVersion: str
    documentDescribes: list[str] | None = None
    packages: list[SpdxJsonPackage] | None = None
    files: list[SpdxElement] | None = None
    snippets: list[SpdxElement] | None = None
    relationships: list[SpdxJsonRelationship] | None = None
    hasExtractedLicensingInfos: list[SpdxExtractedLicense] | None = None


_DECODER = msgspec.json.Decoder(SpdxJsonDocument)


def _purls(refs: list[SpdxExternalRef] | None) -> list[str]:
    return [
        r.referenceLocator
        for r in refs or ()
        if r.referenceType == "purl"
        and r.referenceCategory.upper().replace("_", "-") == "PACKAGE-MANAGER"
    ]


def parse_spdx_json(data: bytes) -> Bom:
    """Parse an SPDX 2.2/2.3 JSON document. Raises ``MalformedDocument`` (with the JSON path
    or line) or ``UnsupportedSpecVersion``."""
    try:
        document = _DECODER.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise json_error(exc, data, "SPDX JSON") from None
    version, note = spdx_version(document.spdxVersion, location="$.spdxVersion")
    packages = [
        SpdxPackage(
            spdx_id=p.SPDXID,
            name=p.name,
            location=f"$.packages[{i}]",
            version=p.versionInfo,
            checksums=[(c.algorithm, c.checksumValue) for c in p.checksums or ()],
            license_concluded=p.licenseConcluded,
            license_declared=p.licenseDeclared,
            purls=_purls(p.externalRefs),
            purpose=p.primaryPackagePurpose,
        )
        for i, p in enumerate(document.packages or ())
    ]
    relationships = [
        SpdxRelationship(
            r.spdxElementId,
            r.relationshipType.upper(),
            r.relatedSpdxElement,
            f"$.relationships[{i}]",
        )
        for i, r in enumerate(document.relationships or ())
    ]
    others = {e.SPDXID for e in (document.files or []) + (document.snippets or [])}
    others.add("SPDXRef-DOCUMENT")
    return build_bom(
        encoding="json",
        spec_version=version,
        version_note=note,
        packages=packages,
        relationships=relationships,
        describes=document.documentDescribes or [],
        other_elements=others,
        extracted_names={
            e.licenseId: e.name for e in document.hasExtractedLicensingInfos or () if e.name
        },
    )
