"""VEX documents in: CycloneDX VEX (JSON) and OpenVEX, auto-detected, read into statements.

A ``VexStatement`` says: these vulnerability ids (the first is the document's id, then its
aliases) have this state in these products. States map to ours:

==========================  ===================  ==========================================
document                    value                our state
==========================  ===================  ==========================================
CycloneDX analysis.state    resolved             fixed
                            resolved_with_pedigree  fixed
                            exploitable          exploitable
                            in_triage            analyzing
                            false_positive       false_positive
                            not_affected         not_affected
OpenVEX status              not_affected         not_affected
                            affected             exploitable
                            fixed                fixed
                            under_investigation  analyzing
==========================  ===================  ==========================================

A justification is kept with ``not_affected`` only (elsewhere it explains nothing).
Nothing maps to ``suppressed``: accepting a risk is our own policy decision, not a fact a
supplier's VEX can state. Justifications are kept in the document's vocabulary (see
``vex.to_cyclonedx`` / ``vex.to_openvex``). Detail: CycloneDX ``analysis.detail`` (with its
``response`` list appended as ``Response: update, will_not_fix``); OpenVEX
``impact_statement`` or ``action_statement``, then ``status_notes``; cut to the
4,000 characters triage keeps.

Products. CycloneDX ``affects[].ref`` is resolved against the document's own components:
the ``metadata.component`` (the product the VEX is about: the statement then covers every
finding of the vulnerability in the project) or a listed component (its purl, else its name
and version). A BOM-link (``urn:cdx:<serial>/<version>#<bom-ref>``) names a component of
another BOM: its bom-ref is matched against the findings' component refs, or read as a purl
when it is one (bom-refs often are). ``affects[].versions`` (exact versions and ``vers:``
ranges) narrow the product to those versions. OpenVEX products are purls (``@id`` or
``identifiers.purl``); a product with ``subcomponents`` is the product and the statement is
about the subcomponents, which are what our findings' components are.

A statement that names no product is not applied (a warning says so): closing every
finding of a CVE on a document that does not say where would fail open. Later statements
about the same (vulnerability, product) win, as OpenVEX specifies (document order; OpenVEX
statements are ordered by their timestamps first).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote

import msgspec

from shared.storable import find_unstorable

from .errors import IngestError
from .findings import VexState
from .purls import InvalidPurl, parse_purl
from .sbom.common import json_error
from .sbom.detect import to_utf8
from .vex import MAX_DETAIL_LENGTH

VexFormat = Literal["cyclonedx", "openvex"]


class VexUnknownFormat(IngestError):
    code, status, title = "vex_unknown_format", 415, "Unknown VEX format"


class VexMalformed(IngestError):
    code, status, title = "vex_malformed", 422, "Malformed VEX document"


class VexProduct(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where a statement applies. ``whole_product``: the document's subject (every finding
    of the vulnerability); else a purl, a component ref, or a name (with a version)."""

    whole_product: bool = False
    purl: str | None = None
    ref: str | None = None
    name: str | None = None
    version: str | None = None
    versions: tuple[str, ...] = ()  # exact versions the statement is limited to
    ranges: tuple[str, ...] = ()  # vers: ranges it is limited to


class VexStatement(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    vulnerability_ids: tuple[str, ...]
    products: tuple[VexProduct, ...]
    state: VexState
    source_state: str  # the document's own word
    justification: str | None = None
    detail: str = ""
    responses: tuple[str, ...] = ()
    location: str = ""  # JSON path of the statement


class VexWarning(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    detail: str
    location: str


class VexDocument(msgspec.Struct, frozen=True, kw_only=True):
    format: VexFormat
    spec_version: str
    statements: tuple[VexStatement, ...]
    warnings: tuple[VexWarning, ...] = ()


# --- CycloneDX ---------------------------------------------------------------------------

CdxState = Literal[
    "resolved", "resolved_with_pedigree", "exploitable", "in_triage", "false_positive",
    "not_affected",
]  # fmt: skip
CdxJustification = Literal[
    "code_not_present", "code_not_reachable", "requires_configuration", "requires_dependency",
    "requires_environment", "protected_by_compiler", "protected_at_runtime",
    "protected_at_perimeter", "protected_by_mitigating_control",
]  # fmt: skip
_CDX_STATE: dict[str, VexState] = {
    "resolved": "fixed",
    "resolved_with_pedigree": "fixed",
    "exploitable": "exploitable",
    "in_triage": "analyzing",
    "false_positive": "false_positive",
    "not_affected": "not_affected",
}


class _CdxComponent(msgspec.Struct):
    name: str = ""
    version: str | None = None
    purl: str | None = None
    bom_ref: str | None = msgspec.field(default=None, name="bom-ref")
    components: list[_CdxComponent] = []


class _CdxMetadata(msgspec.Struct):
    component: _CdxComponent | None = None


class _CdxAnalysis(msgspec.Struct):
    state: CdxState | None = None
    justification: CdxJustification | None = None
    response: list[str] = []
    detail: str | None = None


class _CdxVersion(msgspec.Struct):
    version: str | None = None
    range: str | None = None
    status: str = "affected"


class _CdxAffects(msgspec.Struct):
    ref: str
    versions: list[_CdxVersion] = []


class _CdxReference(msgspec.Struct):
    id: str


class _CdxVulnerability(msgspec.Struct):
    id: str | None = None
    references: list[_CdxReference] = []
    analysis: _CdxAnalysis | None = None
    affects: list[_CdxAffects] = []


class _CdxVex(msgspec.Struct):
    bomFormat: str  # the documents' own key spellings
    specVersion: str = ""
    metadata: _CdxMetadata | None = None
    components: list[_CdxComponent] = []
    vulnerabilities: list[_CdxVulnerability] = []


def _walk(components: Sequence[_CdxComponent]) -> list[_CdxComponent]:
    found: list[_CdxComponent] = []
    stack = list(reversed(components))
    while stack:
        component = stack.pop()
        found.append(component)
        stack.extend(reversed(component.components))
    return found


def _purl_or_none(text: str) -> str | None:
    try:
        parse_purl(text)
    except InvalidPurl:
        return None
    return text.strip()


def _bom_link_ref(ref: str) -> str | None:
    """The bom-ref a BOM-link points at (``urn:cdx:serial/version#ref``), else None."""
    if not ref.startswith("urn:cdx:"):
        return None
    _, hash_, fragment = ref.partition("#")
    return unquote(fragment) if hash_ and fragment else None


def _cdx_product(
    affects: _CdxAffects,
    subject_ref: str | None,
    by_ref: dict[str, _CdxComponent],
) -> VexProduct:
    versions = tuple(v.version for v in affects.versions if v.version)
    ranges = tuple(v.range for v in affects.versions if v.range)
    ref = affects.ref.strip()
    linked = _bom_link_ref(ref)
    local = ref if linked is None else linked
    if subject_ref is not None and local == subject_ref:
        return VexProduct(whole_product=True, versions=versions, ranges=ranges)
    component = by_ref.get(local)
    if component is not None:
        purl = _purl_or_none(component.purl) if component.purl else None
        if purl is not None:
            return VexProduct(purl=purl, ref=local, versions=versions, ranges=ranges)
        return VexProduct(
            ref=local,
            name=component.name or None,
            version=component.version,
            versions=versions,
            ranges=ranges,
        )
    return VexProduct(purl=_purl_or_none(local), ref=local, versions=versions, ranges=ranges)


def _only_not_affected(state: VexState, justification: str | None) -> str | None:
    # A justification explains "not affected"; on any other state it says nothing we keep.
    return justification if state == "not_affected" else None


def _clip(text: str) -> str:
    # Triage keeps at most MAX_DETAIL_LENGTH characters; a supplier's essay is cut, not refused.
    return text if len(text) <= MAX_DETAIL_LENGTH else text[: MAX_DETAIL_LENGTH - 1] + "…"


def _cdx_detail(analysis: _CdxAnalysis) -> str:
    parts = [analysis.detail.strip()] if analysis.detail and analysis.detail.strip() else []
    if analysis.response:
        parts.append("Response: " + ", ".join(analysis.response))
    return _clip("\n".join(parts))


def parse_cyclonedx_vex(data: bytes) -> VexDocument:
    try:
        document = msgspec.json.decode(data, type=_CdxVex)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        error = json_error(exc, data, "CycloneDX VEX")
        raise VexMalformed(error.detail, location=error.location) from None
    if document.bomFormat != "CycloneDX":
        raise VexMalformed(
            f"bomFormat is {document.bomFormat[:50]!r}, not 'CycloneDX'", location="$.bomFormat"
        )
    subject = document.metadata.component if document.metadata else None
    subject_ref = subject.bom_ref if subject is not None else None
    by_ref = {
        c.bom_ref: c
        for c in _walk(document.components + (subject.components if subject else []))
        if c.bom_ref
    }
    statements: list[VexStatement] = []
    warnings: list[VexWarning] = []
    for index, vulnerability in enumerate(document.vulnerabilities):
        location = f"$.vulnerabilities[{index}]"
        analysis = vulnerability.analysis
        if analysis is None or analysis.state is None:
            warnings.append(
                VexWarning(
                    code="vex_no_analysis",
                    detail="a vulnerability without analysis.state states nothing; skipped",
                    location=location,
                )
            )
            continue
        ids = tuple(
            dict.fromkeys(
                i.strip()
                for i in (vulnerability.id or "", *(r.id for r in vulnerability.references))
                if i and i.strip()
            )
        )
        if not ids:
            raise VexMalformed("a vulnerability without an id", location=f"{location}.id")
        products = tuple(_cdx_product(a, subject_ref, by_ref) for a in vulnerability.affects)
        if not products:
            warnings.append(
                VexWarning(
                    code="vex_no_product",
                    detail=f"{ids[0]}: the statement names no product (affects); not applied",
                    location=location,
                )
            )
        statements.append(
            VexStatement(
                vulnerability_ids=ids,
                products=products,
                state=_CDX_STATE[analysis.state],
                source_state=analysis.state,
                justification=_only_not_affected(
                    _CDX_STATE[analysis.state], analysis.justification
                ),
                detail=_cdx_detail(analysis),
                responses=tuple(analysis.response),
                location=location,
            )
        )
    return VexDocument(
        format="cyclonedx",
        spec_version=document.specVersion,
        statements=tuple(statements),
        warnings=tuple(warnings),
    )


# --- OpenVEX -----------------------------------------------------------------------------

OpenVexStatus = Literal["not_affected", "affected", "fixed", "under_investigation"]
OpenVexJustification = Literal[
    "component_not_present", "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path", "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
]  # fmt: skip
_OPENVEX_STATE: dict[str, VexState] = {
    "not_affected": "not_affected",
    "affected": "exploitable",
    "fixed": "fixed",
    "under_investigation": "analyzing",
}


class _OvVulnerability(msgspec.Struct):
    name: str
    aliases: list[str] = []


class _OvIdentifiers(msgspec.Struct):
    purl: str | None = None


class _OvComponent(msgspec.Struct):
    id: str | None = msgspec.field(default=None, name="@id")
    identifiers: _OvIdentifiers | None = None
    subcomponents: list[_OvComponent] = []


class _OvStatement(msgspec.Struct):
    # OpenVEX before 0.2.0 wrote the vulnerability as a bare string.
    vulnerability: _OvVulnerability | str
    status: OpenVexStatus
    products: list[_OvComponent] = []
    justification: OpenVexJustification | None = None
    impact_statement: str | None = None
    action_statement: str | None = None
    status_notes: str | None = None
    timestamp: str | None = None


class _OpenVex(msgspec.Struct):
    context: str = msgspec.field(name="@context")
    timestamp: str | None = None
    statements: list[_OvStatement] = []


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _instant(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (naive ones read as UTC), None if absent
    or unreadable (the schema, not the importer, polices the format)."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _ov_purl(component: _OvComponent) -> str | None:
    for text in (component.identifiers.purl if component.identifiers else None, component.id):
        if text and (purl := _purl_or_none(text)) is not None:
            return purl
    return None


def _ov_products(statement: _OvStatement, location: str) -> tuple[list[VexProduct], list[str]]:
    products: list[VexProduct] = []
    unusable: list[str] = []
    for index, product in enumerate(statement.products):
        targets = product.subcomponents or [product]
        for sub_index, target in enumerate(targets):
            purl = _ov_purl(target)
            if purl is not None:
                products.append(VexProduct(purl=purl))
            else:
                where = f"{location}.products[{index}]"
                if product.subcomponents:
                    where += f".subcomponents[{sub_index}]"
                unusable.append(where)
    return products, unusable


def _ov_detail(statement: _OvStatement) -> str:
    parts = [
        text.strip()
        for text in (
            statement.impact_statement,
            statement.action_statement,
            statement.status_notes,
        )
        if text and text.strip()
    ]
    return _clip("\n".join(parts))


def parse_openvex(data: bytes) -> VexDocument:
    try:
        document = msgspec.json.decode(data, type=_OpenVex)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        error = json_error(exc, data, "OpenVEX")
        raise VexMalformed(error.detail, location=error.location) from None
    if "openvex" not in document.context:
        raise VexMalformed(
            f"@context {document.context[:80]!r} is not an OpenVEX context", location="$.@context"
        )
    version = document.context.rstrip("/").rpartition("/v")[2] or document.context
    issued = _instant(document.timestamp)
    order = sorted(
        range(len(document.statements)),
        key=lambda i: _instant(document.statements[i].timestamp) or issued or _EPOCH,
    )
    statements: list[VexStatement] = []
    warnings: list[VexWarning] = []
    for index in order:
        raw = document.statements[index]
        location = f"$.statements[{index}]"
        if isinstance(raw.vulnerability, str):
            ids: tuple[str, ...] = (raw.vulnerability.strip(),)
        else:
            ids = tuple(
                dict.fromkeys(
                    i.strip() for i in (raw.vulnerability.name, *raw.vulnerability.aliases)
                )
            )
        ids = tuple(i for i in ids if i)
        if not ids:
            raise VexMalformed(
                "a statement without a vulnerability name", location=f"{location}.vulnerability"
            )
        products, unusable = _ov_products(raw, location)
        for where in unusable:
            warnings.append(
                VexWarning(
                    code="vex_product_unusable",
                    detail="a product without a purl cannot be matched to a component; skipped",
                    location=where,
                )
            )
        if not products:
            warnings.append(
                VexWarning(
                    code="vex_no_product",
                    detail=f"{ids[0]}: the statement names no usable product; not applied",
                    location=location,
                )
            )
        statements.append(
            VexStatement(
                vulnerability_ids=ids,
                products=tuple(products),
                state=_OPENVEX_STATE[raw.status],
                source_state=raw.status,
                justification=_only_not_affected(_OPENVEX_STATE[raw.status], raw.justification),
                detail=_ov_detail(raw),
                location=location,
            )
        )
    return VexDocument(
        format="openvex",
        spec_version=version,
        statements=tuple(statements),
        warnings=tuple(warnings),
    )


# --- detection ---------------------------------------------------------------------------


class _Probe(msgspec.Struct):
    bomFormat: Any = None
    context: Any = msgspec.field(default=None, name="@context")


def detect_vex_format(data: bytes) -> VexFormat:
    head = data.lstrip()[:1]
    if head == b"<":
        raise VexUnknownFormat("XML; VEX is imported as CycloneDX JSON or OpenVEX JSON")
    if head != b"{":
        raise VexUnknownFormat("not a JSON object; expected CycloneDX VEX or OpenVEX JSON")
    try:
        probe = msgspec.json.decode(data, type=_Probe)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        error = json_error(exc, data, "VEX document")
        raise VexMalformed(error.detail, location=error.location) from None
    if probe.bomFormat == "CycloneDX":
        return "cyclonedx"
    if isinstance(probe.context, str) and "openvex" in probe.context:
        return "openvex"
    raise VexUnknownFormat(
        "a JSON object with neither bomFormat 'CycloneDX' nor an OpenVEX @context"
    )


def parse_vex(data: bytes) -> VexDocument:
    """Detect the format of ``data`` and read its statements. Raises ``VexUnknownFormat``
    (415) or ``VexMalformed`` (422, with the JSON path)."""
    text = to_utf8(data)
    if detect_vex_format(text) == "cyclonedx":
        return storable_vex(parse_cyclonedx_vex(text))
    return storable_vex(parse_openvex(text))


def storable_vex(document: VexDocument) -> VexDocument:
    """``document``, or ``VexMalformed`` naming the statement (its JSON path in the
    document) with a value that ``finding.triaged`` would carry into a database that
    cannot hold it: a NUL in a detail, a timestamp outside years 1-9999 in UTC."""
    for statement in document.statements:
        problem = find_unstorable(statement, path="statement")
        if problem is not None:
            field = problem.path.removeprefix("statement.")
            raise VexMalformed(
                f"{field} {problem.reason}", location=f"{statement.location} ({field})"
            )
    problem = find_unstorable(document.warnings, path="warnings")
    if problem is not None:
        raise VexMalformed(f"a value quoted in {problem.path} {problem.reason}", location="$")
    return document
