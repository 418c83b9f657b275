"""CycloneDX 1.5 / 1.6 XML out, written from the same document the JSON export builds, so
the two formats cannot say different things. Elements follow the XSD's sequence order;
ElementTree escapes text and attribute values; characters XML cannot carry at all
(control characters) become U+FFFD."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .export_cyclonedx import SpecVersion, cyclonedx_document
from .findings import Finding
from .model import Component, Dependency

NAMESPACE = "http://cyclonedx.org/schema/bom/{version}"


# Characters XML 1.0 cannot carry at all, even escaped.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    return _ILLEGAL.sub("\ufffd", text)


def _text(parent: ET.Element, tag: str, value: object) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = _clean(value)
    return element


def _component(parent: ET.Element, data: dict[str, Any], tag: str = "component") -> None:
    element = ET.SubElement(parent, tag, {"type": data["type"], "bom-ref": _clean(data["bom-ref"])})
    for key in ("group", "name", "version", "scope"):
        if key in data:
            _text(element, key, data[key])
    if "hashes" in data:
        hashes = ET.SubElement(element, "hashes")
        for item in data["hashes"]:
            _text(hashes, "hash", item["content"]).set("alg", item["alg"])
    if "licenses" in data:
        licenses = ET.SubElement(element, "licenses")
        for choice in data["licenses"]:
            if "expression" in choice:
                _text(licenses, "expression", choice["expression"])
            else:
                license_element = ET.SubElement(licenses, "license")
                _text(license_element, "name", choice["license"]["name"])
    if "purl" in data:
        _text(element, "purl", data["purl"])


def _metadata(parent: ET.Element, data: dict[str, Any]) -> None:
    metadata = ET.SubElement(parent, "metadata")
    _text(metadata, "timestamp", data["timestamp"])
    tools = ET.SubElement(ET.SubElement(metadata, "tools"), "components")
    for tool in data["tools"]["components"]:
        element = ET.SubElement(tools, "component", {"type": tool["type"]})
        _text(element, "name", tool["name"])
        _text(element, "version", tool["version"])
    if "component" in data:
        _component(metadata, data["component"])


def _vulnerability(parent: ET.Element, data: dict[str, Any]) -> None:
    element = ET.SubElement(parent, "vulnerability", {"bom-ref": data["bom-ref"]})
    _text(element, "id", data["id"])
    source = ET.SubElement(element, "source")
    _text(source, "name", data["source"]["name"])
    _text(source, "url", data["source"]["url"])
    if "references" in data:
        references = ET.SubElement(element, "references")
        for item in data["references"]:
            reference = ET.SubElement(references, "reference")
            _text(reference, "id", item["id"])
            reference_source = ET.SubElement(reference, "source")
            _text(reference_source, "name", item["source"]["name"])
            _text(reference_source, "url", item["source"]["url"])
    if "ratings" in data:
        ratings = ET.SubElement(element, "ratings")
        for item in data["ratings"]:
            rating = ET.SubElement(ratings, "rating")
            for key in ("score", "severity", "method", "vector"):
                if key in item:
                    _text(rating, key, item[key])
    if "analysis" in data:
        analysis = ET.SubElement(element, "analysis")
        for key in ("state", "justification"):
            if key in data["analysis"]:
                _text(analysis, key, data["analysis"][key])
        if "response" in data["analysis"]:
            responses = ET.SubElement(analysis, "responses")
            for response in data["analysis"]["response"]:
                _text(responses, "response", response)
        if "detail" in data["analysis"]:
            _text(analysis, "detail", data["analysis"]["detail"])
    affects = ET.SubElement(element, "affects")
    for item in data["affects"]:
        _text(ET.SubElement(affects, "target"), "ref", item["ref"])
    if "properties" in data:
        properties = ET.SubElement(element, "properties")
        for item in data["properties"]:
            _text(properties, "property", item["value"]).set("name", item["name"])


def document_to_xml(document: dict[str, Any]) -> bytes:
    root = ET.Element(
        "bom",
        {
            "xmlns": NAMESPACE.format(version=document["specVersion"]),
            "serialNumber": document["serialNumber"],
            "version": str(document["version"]),
        },
    )
    _metadata(root, document["metadata"])
    components = ET.SubElement(root, "components")
    for component in document["components"]:
        _component(components, component)
    if "dependencies" in document:
        dependencies = ET.SubElement(root, "dependencies")
        for entry in document["dependencies"]:
            dependency = ET.SubElement(dependencies, "dependency", {"ref": _clean(entry["ref"])})
            for child in entry.get("dependsOn", ()):
                ET.SubElement(dependency, "dependency", {"ref": _clean(child)})
    if "vulnerabilities" in document:
        vulnerabilities = ET.SubElement(root, "vulnerabilities")
        for vulnerability in document["vulnerabilities"]:
            _vulnerability(vulnerabilities, vulnerability)
    ET.indent(root, space="  ")
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def build_cyclonedx_xml(
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
    return document_to_xml(
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
