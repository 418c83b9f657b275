"""SBOM readers: CycloneDX 1.2-1.6 (JSON, XML) and SPDX 2.2/2.3 (JSON, tag-value).

``parse_sbom(data)`` detects the format and returns a ``Bom``; every refusal is an
``IngestError`` with a stable ``code`` and, for a malformed document, a ``location`` (JSON
path, or line and column). The size limit is the caller's; the parsers hold the whole
document in memory and are linear in its size.
"""

from __future__ import annotations

from ..model import Bom
from .cyclonedx import parse_cyclonedx_json
from .cyclonedx_xml import parse_cyclonedx_xml
from .detect import Format, detect_format, to_utf8
from .spdx_json import parse_spdx_json
from .spdx_tagvalue import parse_spdx_tag_value

__all__ = [
    "Format",
    "detect_format",
    "parse_cyclonedx_json",
    "parse_cyclonedx_xml",
    "parse_sbom",
    "parse_spdx_json",
    "parse_spdx_tag_value",
]


def parse_sbom(data: bytes) -> Bom:
    """Detect the format of ``data`` and parse it."""
    data = to_utf8(data)
    detected = detect_format(data)
    if detected == "cyclonedx-json":
        return parse_cyclonedx_json(data)
    if detected == "cyclonedx-xml":
        return parse_cyclonedx_xml(data)
    if detected == "spdx-json":
        return parse_spdx_json(data)
    return parse_spdx_tag_value(data)
