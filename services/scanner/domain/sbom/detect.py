"""Which SBOM format a byte string is, from its first bytes and a marker search."""

from __future__ import annotations

import codecs
import re
from typing import Literal

import msgspec

from ..errors import UnknownFormat

Format = Literal["cyclonedx-json", "cyclonedx-xml", "spdx-json", "spdx-tag-value"]

_MAGIC = {
    b"PK\x03\x04": "a zip archive",
    b"\x1f\x8b": "gzip-compressed data",
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
}
_XML_ROOT = re.compile(rb"<([A-Za-z_][\w.:-]*)([^>]*)>")
_XMLNS = re.compile(rb"""xmlns(?::[\w.-]+)?\s*=\s*["']([^"']*)["']""")
_SPDX_TAG = re.compile(rb"^\s*(SPDXVersion|SPDXID|DataLicense|DocumentNamespace)\s*:", re.MULTILINE)


class _Probe(msgspec.Struct):
    bomFormat: str | None = None  # the documents' own key spelling
    spdxVersion: str | None = None


def to_utf8(data: bytes) -> bytes:
    """UTF-8 without a byte-order mark; UTF-16/32 documents (with a BOM) are re-encoded."""
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return data.decode(encoding).encode("utf-8")
            except UnicodeDecodeError:
                raise UnknownFormat(
                    f"text with a {encoding} byte-order mark that does not decode"
                ) from None
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :]
    return data


def _describe_text(head: bytes) -> str:
    snippet = head[:60].decode("utf-8", errors="replace").splitlines()
    return repr(snippet[0]) if snippet else "''"


def detect_format(data: bytes) -> Format:
    """The format of ``data`` (already UTF-8, see ``to_utf8``). Raises ``UnknownFormat``
    naming what was seen instead."""
    head = data[:4096].lstrip()
    if not head:
        raise UnknownFormat("the document is empty")
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise UnknownFormat(f"this is {what}, not an SBOM")
    if head[:1] == b"{":
        return _detect_json(data)
    if head[:1] == b"[":
        raise UnknownFormat("a JSON array; an SBOM is a JSON object with bomFormat or spdxVersion")
    if head[:1] == b"<":
        return _detect_xml(head)
    if _SPDX_TAG.search(data[:65536]):
        return "spdx-tag-value"
    if b"\x00" in head:
        raise UnknownFormat("binary data, not an SBOM")
    raise UnknownFormat(
        f"text starting with {_describe_text(head)}, neither JSON, XML nor SPDX tag-value"
    )


def _detect_json(data: bytes) -> Format:
    # Keys can come in any order (a generator may write bomFormat last), so search the
    # whole document; a byte search runs at memory speed.
    cyclonedx, spdx = b'"bomFormat"' in data, b'"spdxVersion"' in data
    if cyclonedx and not spdx:
        return "cyclonedx-json"
    if spdx and not cyclonedx:
        return "spdx-json"
    try:
        probe = msgspec.json.decode(data, type=_Probe)
    except (msgspec.DecodeError, RecursionError):
        raise UnknownFormat(
            "a JSON document that does not parse, with neither bomFormat nor spdxVersion"
        ) from None
    if probe.bomFormat is not None:
        return "cyclonedx-json"
    if probe.spdxVersion is not None:
        return "spdx-json"
    keys = _top_level_keys(data)
    if b'"@context"' in data and b"spdx.org/rdf/3" in data:
        raise UnknownFormat("SPDX 3 JSON-LD; SPDX 2.2 and 2.3 are supported")
    raise UnknownFormat(f"a JSON object without bomFormat or spdxVersion (keys: {keys})")


def _top_level_keys(data: bytes) -> str:
    try:
        value = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):
        return "unreadable"
    if isinstance(value, dict):
        return ", ".join(sorted(str(k) for k in value)[:10]) or "none"
    return "none"


def _detect_xml(head: bytes) -> Format:
    position = 0
    while True:
        match = _XML_ROOT.search(head, position)
        if match is None:
            raise UnknownFormat("XML without a root element in its first 4 KiB")
        if head[match.start() + 1 : match.start() + 2] in (b"?", b"!"):
            position = match.end()
            continue
        break
    tag = match.group(1).decode("utf-8", errors="replace")
    namespaces = [ns.decode("utf-8", errors="replace") for ns in _XMLNS.findall(match.group(2))]
    local = tag.rpartition(":")[2]
    if local == "bom" and any(
        ns.startswith("http://cyclonedx.org/schema/bom/") for ns in namespaces
    ):
        return "cyclonedx-xml"
    if local == "RDF" or any("spdx.org" in ns for ns in namespaces):
        raise UnknownFormat("SPDX RDF/XML; SPDX is read as JSON or tag-value")
    where = f" in namespace {namespaces[0]}" if namespaces else " without a namespace"
    raise UnknownFormat(f"XML with root element <{tag}>{where}, not a CycloneDX <bom>")
