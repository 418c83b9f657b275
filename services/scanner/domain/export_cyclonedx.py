"""CycloneDX 1.5 / 1.6 JSON out: an SBOM of a snapshot with its vulnerabilities, and the
pieces the VEX export and the XML writer share.

Deterministic: the same snapshot gives the same bytes. Components and dependencies keep the
snapshot's order; vulnerabilities are sorted by id; the serial number is a UUIDv5 of what
the caller names it by (``export_serial(project_id, scan_id, kind)``); the timestamp is
passed in.

What does not survive the trip (documented, not silent):

* scope ``dev`` is written as ``excluded`` (CycloneDX: "not part of the runtime", which is
  what a development dependency is); scope ``unknown`` is left out, and a reader then
  assumes ``required`` as the spec says.
* hashes whose algorithm CycloneDX does not name, or whose value is not hex of that
  algorithm's length (npm ``integrity`` is base64), are left out rather than failing the
  document.
* licenses are one SPDX ``expression`` when every part is a known SPDX license (the
  normalised form), else each statement as given by ``name`` (CycloneDX validates ``id``
  against its own copy of the SPDX list, so ids are never written as ``id``).

Findings become ``vulnerabilities``: one entry per (vulnerability, analysis) with every
affected component in ``affects``, ratings from the CVSS score and vector, EPSS as a
``gatehouse:epss`` property. Analysis states: ``analyzing`` -> ``in_triage``,
``exploitable`` -> ``exploitable``, ``not_affected`` -> ``not_affected`` (justification in
the CycloneDX vocabulary), ``false_positive`` -> ``false_positive``, ``fixed`` ->
``resolved``; ``suppressed`` is *not* a claim that the product is safe, so it is written
``exploitable`` with response ``will_not_fix`` and the reason in ``detail``; ``new`` has no
analysis in an SBOM and ``in_triage`` in a VEX document (a VEX entry must state something).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from .findings import Finding
from .licenses import normalize
from .model import Component, Dependency, Hash, License
from .vex import to_cyclonedx

SpecVersion = Literal["1.5", "1.6"]
TOOL_NAME = "Gatehouse"
_NAMESPACE = uuid.UUID("6f1c3f5e-2d0b-5c39-9a7e-0b8f8f3f6a10")

_TYPES_1_5 = frozenset(
    (
        "application",
        "framework",
        "library",
        "container",
        "platform",
        "operating-system",
        "device",
        "device-driver",
        "firmware",
        "file",
        "machine-learning-model",
        "data",
    )
)
_TYPES: dict[str, frozenset[str]] = {
    "1.5": _TYPES_1_5,
    "1.6": _TYPES_1_5 | {"cryptographic-asset"},
}
# CycloneDX hash algorithms and their hex lengths.
_HASH_LENGTHS: dict[str, tuple[int, ...]] = {
    "MD5": (32,),
    "SHA-1": (40,),
    "SHA-256": (64,),
    "SHA-384": (96,),
    "SHA-512": (128,),
    "SHA3-256": (64,),
    "SHA3-384": (96,),
    "SHA3-512": (128,),
    "BLAKE2b-256": (64,),
    "BLAKE2b-384": (96,),
    "BLAKE2b-512": (128,),
    "BLAKE3": (64,),
}
_HASH_ALIASES = {re.sub(r"[^a-z0-9]", "", alg.lower()): alg for alg in _HASH_LENGTHS}
_HEX = re.compile(r"[0-9a-fA-F]+")


def export_serial(*parts: str) -> str:
    """A stable ``urn:uuid:`` serial number for an export named by ``parts``."""
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, chr(31).join(parts))}"


def timestamp_text(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, seconds precision (what every consumer parses)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cdx_hash(item: Hash) -> dict[str, str] | None:
    alg = _HASH_ALIASES.get(re.sub(r"[^a-z0-9]", "", item.alg.lower()))
    value = item.value.strip()
    if alg is None or not _HEX.fullmatch(value) or len(value) not in _HASH_LENGTHS[alg]:
        return None
    return {"alg": alg, "content": value.lower()}


def cdx_licenses(licenses: Sequence[License]) -> list[dict[str, Any]]:
    normalized = normalize(licenses)
    if normalized.expression is None:
        return []
    if not normalized.unknown:
        return [{"expression": normalized.expression}]
    names = dict.fromkeys(
        text.strip() for item in licenses for text in (item.expression or item.id or item.name,)
        if text and text.strip()
    )  # fmt: skip
    return [{"license": {"name": name}} for name in names]


def cdx_component(component: Component, spec_version: SpecVersion) -> dict[str, Any]:
    """A component as CycloneDX JSON, keys in the XML schema's element order."""
    kind = component.type if component.type in _TYPES[spec_version] else "library"
    result: dict[str, Any] = {"type": kind, "bom-ref": component.ref}
    if component.group:
        result["group"] = component.group
    result["name"] = component.name
    if component.version:
        result["version"] = component.version
    scope = {"required": "required", "optional": "optional", "excluded": "excluded"}.get(
        component.scope, "excluded" if component.scope == "dev" else None
    )
    if scope is not None:
        result["scope"] = scope
    hashes = [h for h in (cdx_hash(item) for item in component.hashes) if h is not None]
    if hashes:
        result["hashes"] = list({h["alg"]: h for h in hashes}.values())
    licenses = cdx_licenses(component.licenses)
    if licenses:
        result["licenses"] = licenses
    if component.purl:
        result["purl"] = component.purl
    return result


def cdx_dependencies(
    dependencies: Iterable[Dependency], known_refs: set[str]
) -> list[dict[str, Any]]:
    result = []
    for dependency in dependencies:
        if dependency.ref not in known_refs:
            continue
        children = [r for r in dict.fromkeys(dependency.depends_on) if r in known_refs]
        entry: dict[str, Any] = {"ref": dependency.ref}
        if children:
            entry["dependsOn"] = children
        result.append(entry)
    return result


# --- vulnerabilities ---------------------------------------------------------------------


def vulnerability_source(vulnerability_id: str) -> dict[str, str]:
    """Where a vulnerability id is published: NVD for CVEs, GitHub for GHSAs, else OSV."""
    upper = vulnerability_id.upper()
    if upper.startswith("CVE-"):
        return {"name": "NVD", "url": f"https://nvd.nist.gov/vuln/detail/{vulnerability_id}"}
    if upper.startswith("GHSA-"):
        return {"name": "GitHub", "url": f"https://github.com/advisories/{vulnerability_id}"}
    return {"name": "OSV", "url": f"https://osv.dev/vulnerability/{vulnerability_id}"}


def _rating(finding: Finding) -> dict[str, Any] | None:
    rating: dict[str, Any] = {}
    if finding.cvss_score is not None:
        rating["score"] = finding.cvss_score
    severity = "none" if finding.severity == "NONE" else finding.severity.lower()
    rating["severity"] = severity
    vector = finding.cvss_vector
    if vector:
        if vector.startswith("CVSS:4"):
            rating["method"] = "CVSSv4"
        elif vector.startswith("CVSS:3.1"):
            rating["method"] = "CVSSv31"
        elif vector.startswith("CVSS:3"):
            rating["method"] = "CVSSv3"
        else:
            rating["method"] = "CVSSv2"
        rating["vector"] = vector
    if finding.severity == "UNKNOWN" and finding.cvss_score is None:
        return None
    return rating


def cdx_analysis(finding: Finding, *, vex: bool) -> dict[str, Any] | None:
    """The CycloneDX ``analysis`` of a finding (see the module docstring for the map)."""
    detail = finding.detail.strip()
    state = finding.state
    analysis: dict[str, Any]
    if state == "new":
        if not vex:
            return None
        analysis = {"state": "in_triage"}
    elif state == "analyzing":
        analysis = {"state": "in_triage"}
    elif state == "suppressed":
        analysis = {"state": "exploitable", "response": ["will_not_fix"]}
        detail = f"Suppressed: {detail}" if detail else "Suppressed"
    elif state == "fixed":
        analysis = {"state": "resolved"}
    elif state == "not_affected":
        analysis = {"state": "not_affected"}
        if finding.justification:
            analysis["justification"] = to_cyclonedx(finding.justification)
    else:
        analysis = {"state": state}
    if detail:
        analysis["detail"] = detail
    return analysis


def cdx_vulnerabilities(
    findings: Iterable[Finding], *, vex: bool, ref_of: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """One entry per (vulnerability id, analysis), sorted by id then analysis; ``affects``
    lists the component refs, sorted (mapped through ``ref_of`` when given)."""
    groups: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        analysis = cdx_analysis(finding, vex=vex)
        key = (finding.vulnerability_id, msgspec.json.encode(analysis).decode())
        groups.setdefault(key, []).append(finding)
    entries: list[dict[str, Any]] = []
    counters: dict[str, int] = {}
    for (vulnerability_id, _), members in sorted(groups.items()):
        counters[vulnerability_id] = counters.get(vulnerability_id, 0) + 1
        first = members[0]
        entry: dict[str, Any] = {
            "bom-ref": f"vulnerability:{vulnerability_id}:{counters[vulnerability_id]}",
            "id": vulnerability_id,
            "source": vulnerability_source(vulnerability_id),
        }
        others = sorted({i for m in members for i in m.vulnerability_ids} - {vulnerability_id})
        if others:
            entry["references"] = [{"id": i, "source": vulnerability_source(i)} for i in others]
        rated = max(members, key=lambda m: (m.cvss_score or -1.0, m.severity != "UNKNOWN"))
        rating = _rating(rated)
        if rating is not None:
            entry["ratings"] = [rating]
        analysis = cdx_analysis(first, vex=vex)
        if analysis is not None:
            entry["analysis"] = analysis
        refs = sorted({(ref_of or {}).get(m.component_ref, m.component_ref) for m in members})
        entry["affects"] = [{"ref": ref} for ref in refs]
        epss = [m.epss for m in members if m.epss is not None]
        if epss:
            entry["properties"] = [{"name": "gatehouse:epss", "value": f"{max(epss):.5f}"}]
        entries.append(entry)
    return entries


def cdx_metadata(
    *, timestamp: datetime, subject: Component | None, spec_version: SpecVersion, tool_version: str
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "timestamp": timestamp_text(timestamp),
        "tools": {
            "components": [{"type": "application", "name": TOOL_NAME, "version": tool_version}]
        },
    }
    if subject is not None:
        metadata["component"] = cdx_component(subject, spec_version)
    return metadata


def cyclonedx_document(
    components: Sequence[Component],
    *,
    dependencies: Sequence[Dependency] = (),
    findings: Sequence[Finding] = (),
    subject: Component | None = None,
    serial_number: str,
    timestamp: datetime,
    spec_version: SpecVersion = "1.6",
    tool_version: str = "0.1.0",
) -> dict[str, Any]:
    """The SBOM as a JSON-ready dict (also what the XML writer walks)."""
    known_refs = {c.ref for c in components} | ({subject.ref} if subject else set())
    document: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": spec_version,
        "serialNumber": serial_number,
        "version": 1,
        "metadata": cdx_metadata(
            timestamp=timestamp,
            subject=subject,
            spec_version=spec_version,
            tool_version=tool_version,
        ),
        "components": [cdx_component(c, spec_version) for c in components],
    }
    edges = cdx_dependencies(dependencies, known_refs)
    if edges:
        document["dependencies"] = edges
    present = [f for f in findings if f.component_ref in known_refs]
    if present:
        document["vulnerabilities"] = cdx_vulnerabilities(present, vex=False)
    return document


def encode_json(document: dict[str, Any]) -> bytes:
    """Pretty JSON (two-space indent, keys in insertion order), ending with a newline."""
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"


def build_cyclonedx_json(
    components: Sequence[Component],
    *,
    dependencies: Sequence[Dependency] = (),
    findings: Sequence[Finding] = (),
    subject: Component | None = None,
    serial_number: str,
    timestamp: datetime,
    spec_version: SpecVersion = "1.6",
    tool_version: str = "0.1.0",
) -> bytes:
    return encode_json(
        cyclonedx_document(
            components,
            dependencies=dependencies,
            findings=findings,
            subject=subject,
            serial_number=serial_number,
            timestamp=timestamp,
            spec_version=spec_version,
            tool_version=tool_version,
        )
    )
