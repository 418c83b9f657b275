"""SPDX 2.3 JSON out.

* SPDXIDs are ``SPDXRef-Package-`` plus 16 hex digits of the SHA-256 of the component
  ref: stable across exports of the same component, and always in SPDX's id alphabet.
* ``documentNamespace`` is a URI made from the caller's stable serial (see
  ``export_cyclonedx.export_serial``); ``created`` is passed in.
* Licenses go to ``licenseDeclared`` as the normalised SPDX expression; a license SPDX does
  not know becomes ``LicenseRef-<name>`` with its text in ``hasExtractedLicensingInfos``
  (SPDX requires every LicenseRef used to be defined). ``licenseConcluded`` is
  NOASSERTION: the scanner reads declarations, it does not conclude.
* The purl is an external reference (PACKAGE-MANAGER / purl); each vulnerability that
  affects a package is a SECURITY / advisory reference to its page (SPDX 2.3 has no
  vulnerability model; VEX states travel in the CycloneDX and OpenVEX exports).
* Relationships: the document DESCRIBES the subject (or every package when there is none);
  graph edges are DEPENDS_ON, except that an edge to a dev or optional package is written
  ``B DEV_DEPENDENCY_OF A`` / ``B OPTIONAL_DEPENDENCY_OF A`` (SPDX's way to carry scope);
  a dev or optional package nothing points at is tied to the subject that way.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .export_cyclonedx import TOOL_NAME, encode_json, timestamp_text, vulnerability_source
from .findings import Finding
from .licenses import Leaf, Node, Op, license_tree
from .model import Component, Dependency, Hash

_SPDX_CHECKSUMS = {
    "sha1": "SHA1",
    "sha224": "SHA224",
    "sha256": "SHA256",
    "sha384": "SHA384",
    "sha512": "SHA512",
    "sha3256": "SHA3-256",
    "sha3384": "SHA3-384",
    "sha3512": "SHA3-512",
    "md5": "MD5",
    "blake2b256": "BLAKE2b-256",
    "blake2b384": "BLAKE2b-384",
    "blake2b512": "BLAKE2b-512",
    "blake3": "BLAKE3",
}
_HEX = re.compile(r"[0-9a-fA-F]+")
# An edge to a dev or optional dependency is written the SPDX way, pointing back at the
# dependent ("B DEV_DEPENDENCY_OF A"), so a reader gets the scope from the relationship.
_REVERSE_BY_SCOPE = {"dev": "DEV_DEPENDENCY_OF", "optional": "OPTIONAL_DEPENDENCY_OF"}
_REF_SAFE = re.compile(r"[^A-Za-z0-9.-]+")


def spdx_id(ref: str) -> str:
    return "SPDXRef-Package-" + hashlib.sha256(ref.encode()).hexdigest()[:16]


def _checksum(item: Hash) -> dict[str, str] | None:
    algorithm = _SPDX_CHECKSUMS.get(re.sub(r"[^a-z0-9]", "", item.alg.lower()))
    value = item.value.strip()
    if algorithm is None or not _HEX.fullmatch(value):
        return None
    return {"algorithm": algorithm, "checksumValue": value.lower()}


class _LicenseRefs:
    """Unknown licenses renamed to LicenseRef ids, remembered for the extracted infos."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}

    def ref_for(self, text: str) -> str:
        if text.startswith("LicenseRef-"):
            identifier = "LicenseRef-" + (_REF_SAFE.sub("-", text[11:]).strip("-") or "unnamed")
        else:
            identifier = "LicenseRef-" + (_REF_SAFE.sub("-", text).strip("-") or "unnamed")
        known = self.texts.get(identifier)
        if known is not None and known != text:
            identifier += "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
        self.texts[identifier] = text
        return identifier

    def render(self, node: Node, top: bool = True) -> str:
        if isinstance(node, Leaf):
            return node.text if node.known else self.ref_for(node.text)
        assert isinstance(node, Op)
        text = f" {node.operator} ".join(self.render(child, False) for child in node.children)
        return text if top else f"({text})"


def _package(component: Component, refs: _LicenseRefs, advisories: Sequence[str]) -> dict[str, Any]:
    package: dict[str, Any] = {
        "SPDXID": spdx_id(component.ref),
        "name": component.name,
    }
    if component.version:
        package["versionInfo"] = component.version
    package["downloadLocation"] = "NOASSERTION"
    package["filesAnalyzed"] = False
    checksums = [c for c in (_checksum(h) for h in component.hashes) if c is not None]
    if checksums:
        package["checksums"] = list({c["algorithm"]: c for c in checksums}.values())
    tree = license_tree(component.licenses)
    package["licenseConcluded"] = "NOASSERTION"
    package["licenseDeclared"] = refs.render(tree) if tree is not None else "NOASSERTION"
    package["copyrightText"] = "NOASSERTION"
    external: list[dict[str, str]] = []
    if component.purl:
        external.append(
            {
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": component.purl,
            }
        )
    for advisory in advisories:
        external.append(
            {
                "referenceCategory": "SECURITY",
                "referenceType": "advisory",
                "referenceLocator": vulnerability_source(advisory)["url"],
            }
        )
    if external:
        package["externalRefs"] = external
    purpose = {
        "application": "APPLICATION",
        "framework": "FRAMEWORK",
        "library": "LIBRARY",
        "container": "CONTAINER",
        "operating-system": "OPERATING_SYSTEM",
        "device": "DEVICE",
        "firmware": "FIRMWARE",
        "file": "FILE",
    }.get(component.type)
    if purpose is not None:
        package["primaryPackagePurpose"] = purpose
    return package


def spdx_document(
    components: Sequence[Component],
    *,
    dependencies: Sequence[Dependency] = (),
    findings: Sequence[Finding] = (),
    subject: Component | None = None,
    name: str,
    serial_number: str,
    timestamp: datetime,
    tool_version: str = "0.1.0",
) -> dict[str, Any]:
    if subject is not None:
        components = [c for c in components if c.ref != subject.ref]
    everything = ([subject] if subject is not None else []) + list(components)
    ids = {c.ref: spdx_id(c.ref) for c in everything}
    advisories: dict[str, list[str]] = {}
    for finding in sorted(findings, key=lambda f: f.vulnerability_id):
        listed = advisories.setdefault(finding.component_ref, [])
        if finding.vulnerability_id not in listed:
            listed.append(finding.vulnerability_id)
    refs = _LicenseRefs()
    packages = [_package(c, refs, advisories.get(c.ref, ())) for c in everything]
    described = [ids[subject.ref]] if subject is not None else [ids[c.ref] for c in components]
    relationships: list[dict[str, str]] = [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": target,
        }
        for target in described
    ]
    scope_of = {c.ref: c.scope for c in everything}
    has_parent: set[str] = set()
    for dependency in dependencies:
        source = ids.get(dependency.ref)
        if source is None:
            continue
        for child in dict.fromkeys(dependency.depends_on):
            if child not in ids:
                continue
            has_parent.add(child)
            reverse = _REVERSE_BY_SCOPE.get(scope_of[child])
            if reverse is None:
                relationships.append(
                    {
                        "spdxElementId": source,
                        "relationshipType": "DEPENDS_ON",
                        "relatedSpdxElement": ids[child],
                    }
                )
            else:
                relationships.append(
                    {
                        "spdxElementId": ids[child],
                        "relationshipType": reverse,
                        "relatedSpdxElement": source,
                    }
                )
    if subject is not None:
        for component in components:
            reverse = _REVERSE_BY_SCOPE.get(component.scope)
            if reverse is not None and component.ref not in has_parent:
                relationships.append(
                    {
                        "spdxElementId": ids[component.ref],
                        "relationshipType": reverse,
                        "relatedSpdxElement": ids[subject.ref],
                    }
                )
    document: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": "https://spdx.org/spdxdocs/gatehouse/"
        + serial_number.removeprefix("urn:uuid:"),
        "creationInfo": {
            "created": timestamp_text(timestamp),
            "creators": [f"Tool: {TOOL_NAME}-{tool_version}"],
        },
        "documentDescribes": described,
        "packages": packages,
        "relationships": relationships,
    }
    if refs.texts:
        document["hasExtractedLicensingInfos"] = [
            {"licenseId": identifier, "extractedText": text, "name": text}
            for identifier, text in sorted(refs.texts.items())
        ]
    return document


def build_spdx_json(
    components: Sequence[Component],
    *,
    dependencies: Sequence[Dependency] = (),
    findings: Sequence[Finding] = (),
    subject: Component | None = None,
    name: str,
    serial_number: str,
    timestamp: datetime,
    tool_version: str = "0.1.0",
) -> bytes:
    return encode_json(
        spdx_document(
            components,
            dependencies=dependencies,
            findings=findings,
            subject=subject,
            name=name,
            serial_number=serial_number,
            timestamp=timestamp,
            tool_version=tool_version,
        )
    )
