"""VEX documents out: OpenVEX 0.2.0 and CycloneDX 1.5 / 1.6 VEX, from a snapshot's findings.

Deterministic: statements are grouped and sorted, the document id is a UUIDv5 of the
caller's names for it and of the content (a changed triage gives a new id, the same one
gives the same bytes), and the timestamp is passed in.

OpenVEX statements: one per (vulnerability, status, justification, statement text), listing
the products (component purls) it covers. Status map: ``new`` / ``analyzing`` ->
``under_investigation``; ``exploitable`` -> ``affected`` (the detail, or a default, as the
required ``action_statement``); ``not_affected`` -> ``not_affected`` with the justification
in the OpenVEX vocabulary; ``false_positive`` -> ``not_affected`` with an impact statement
saying it is a false positive (OpenVEX has no such status; the scanner's match was wrong, so
the product is not affected); ``suppressed`` -> ``affected`` with "risk accepted" as the
action statement (suppression is not a claim of safety); ``fixed`` -> ``fixed``.

A component without a purl is named ``urn:gatehouse:component:<ref>`` (OpenVEX needs an
IRI); it will only match this project's own findings on re-import.

CycloneDX VEX: the ``vulnerabilities`` of ``export_cyclonedx`` (``new`` as ``in_triage``),
with the affected components listed in the document so every ``affects`` ref resolves
inside it (and a re-import reads their purls).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from .export_cyclonedx import (
    TOOL_NAME,
    SpecVersion,
    cdx_metadata,
    cdx_vulnerabilities,
    encode_json,
    export_serial,
    timestamp_text,
)
from .findings import Finding
from .model import Component
from .purls import build_purl, split_package
from .vex import to_openvex

OPENVEX_CONTEXT = "https://openvex.dev/ns/v0.2.0"
_NAMESPACE = uuid.UUID("0c5cb1a4-7d5e-5a51-8f4e-6a0a4a9a1f77")


def _product_id(finding: Finding) -> str:
    if finding.purl:
        return finding.purl
    if finding.ecosystem and finding.package and finding.version:
        purl_type = {
            "PyPI": "pypi",
            "npm": "npm",
            "Go": "golang",
            "Maven": "maven",
            "crates.io": "cargo",
            "RubyGems": "gem",
            "Packagist": "composer",
            "NuGet": "nuget",
        }.get(finding.ecosystem)
        if purl_type is not None:
            namespace, name = split_package(purl_type, finding.package)
            return build_purl(purl_type, name, finding.version, namespace=namespace)
    return "urn:gatehouse:component:" + quote(finding.component_ref, safe="")


def _openvex_fields(finding: Finding) -> dict[str, str]:
    detail = finding.detail.strip()
    state = finding.state
    if state in ("new", "analyzing"):
        fields = {"status": "under_investigation"}
        if detail:
            fields["status_notes"] = detail
        return fields
    if state == "exploitable":
        return {
            "status": "affected",
            "action_statement": detail or "No remediation decided yet; upgrade to a fixed version.",
        }
    if state == "suppressed":
        return {
            "status": "affected",
            "action_statement": "Risk accepted (suppressed)" + (f": {detail}" if detail else ""),
        }
    if state == "fixed":
        fields = {"status": "fixed"}
        if detail:
            fields["status_notes"] = detail
        return fields
    if state == "false_positive":
        return {
            "status": "not_affected",
            "impact_statement": "False positive: the vulnerability does not apply to this "
            "component" + (f". {detail}" if detail else "."),
        }
    fields = {"status": "not_affected"}
    if finding.justification:
        fields["justification"] = to_openvex(finding.justification)
    if detail:
        fields["impact_statement"] = detail
    return fields


def openvex_document(
    findings: Sequence[Finding],
    *,
    author: str,
    timestamp: datetime,
    document_name: Sequence[str] = (),
    tool_version: str = "0.1.0",
) -> dict[str, Any]:
    groups: dict[tuple[str, tuple[str, ...], tuple[tuple[str, str], ...]], list[str]] = {}
    for finding in findings:
        aliases = tuple(sorted(set(finding.vulnerability_ids) - {finding.vulnerability_id}))
        fields = tuple(sorted(_openvex_fields(finding).items()))
        products = groups.setdefault((finding.vulnerability_id, aliases, fields), [])
        product = _product_id(finding)
        if product not in products:
            products.append(product)
    statements: list[dict[str, Any]] = []
    for (vulnerability_id, aliases, fields), products in sorted(groups.items()):
        vulnerability: dict[str, Any] = {"name": vulnerability_id}
        if aliases:
            vulnerability["aliases"] = list(aliases)
        statement: dict[str, Any] = {
            "vulnerability": vulnerability,
            "products": [
                {"@id": p, "identifiers": {"purl": p}} if p.startswith("pkg:") else {"@id": p}
                for p in sorted(products)
            ],
        }
        statement.update(dict(fields))
        statements.append(statement)
    content = encode_json({"statements": statements})
    digest = hashlib.sha256(content).hexdigest()
    document_id = uuid.uuid5(_NAMESPACE, chr(31).join((*document_name, digest)))
    return {
        "@context": OPENVEX_CONTEXT,
        "@id": f"urn:uuid:{document_id}",
        "author": author,
        "role": "Document Creator",
        "timestamp": timestamp_text(timestamp),
        "version": 1,
        "tooling": f"{TOOL_NAME} {tool_version}",
        "statements": statements,
    }


def build_openvex(
    findings: Sequence[Finding],
    *,
    author: str,
    timestamp: datetime,
    document_name: Sequence[str] = (),
    tool_version: str = "0.1.0",
) -> bytes:
    """An OpenVEX 0.2.0 document. OpenVEX requires at least one statement: with no findings
    the document has none and is still returned (the caller may answer 204 instead)."""
    return encode_json(
        openvex_document(
            findings,
            author=author,
            timestamp=timestamp,
            document_name=document_name,
            tool_version=tool_version,
        )
    )


def _vex_component(finding: Finding) -> dict[str, Any]:
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": finding.component_ref,
        "name": finding.component_name or finding.package or finding.component_ref,
    }
    if finding.version:
        component["version"] = finding.version
    if finding.purl:
        component["purl"] = finding.purl
    return component


def cyclonedx_vex_document(
    findings: Sequence[Finding],
    *,
    subject: Component | None = None,
    timestamp: datetime,
    document_name: Sequence[str] = (),
    spec_version: SpecVersion = "1.6",
    tool_version: str = "0.1.0",
) -> dict[str, Any]:
    components: dict[str, dict[str, Any]] = {}
    for finding in sorted(findings, key=lambda f: f.component_ref):
        components.setdefault(finding.component_ref, _vex_component(finding))
    vulnerabilities = cdx_vulnerabilities(findings, vex=True)
    digest = hashlib.sha256(encode_json({"v": vulnerabilities})).hexdigest()
    document: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": spec_version,
        "serialNumber": export_serial("vex", *document_name, digest),
        "version": 1,
        "metadata": cdx_metadata(
            timestamp=timestamp,
            subject=subject,
            spec_version=spec_version,
            tool_version=tool_version,
        ),
        "components": list(components.values()),
        "vulnerabilities": vulnerabilities,
    }
    return document


def build_cyclonedx_vex(
    findings: Sequence[Finding],
    *,
    subject: Component | None = None,
    timestamp: datetime,
    document_name: Sequence[str] = (),
    spec_version: SpecVersion = "1.6",
    tool_version: str = "0.1.0",
) -> bytes:
    return encode_json(
        cyclonedx_vex_document(
            findings,
            subject=subject,
            timestamp=timestamp,
            document_name=document_name,
            spec_version=spec_version,
            tool_version=tool_version,
        )
    )
