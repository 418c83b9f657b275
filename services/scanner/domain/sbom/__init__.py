"""SBOM readers: CycloneDX 1.2-1.6 (JSON, XML) and SPDX 2.2/2.3 (JSON, tag-value).

``parse_sbom(data)`` detects the format and returns a ``Bom``; every refusal is an
``IngestError`` with a stable ``code`` and, for a malformed document, a ``location`` (JSON
path, XML element path, or line and column). The size limit is the caller's; the parsers
are linear in the document's size (50 MB of JSON parses in about a second).

What is kept going past, as ``IngestWarning`` values on the ``Bom`` (capped per code):

* a purl that does not parse (``invalid_purl``): the component is kept, without purl and
  ecosystem, so it is listed and license-checked but never matched under a guessed name;
* duplicates (``duplicate_component``): same bom-ref, or same purl up to escaping and
  qualifier order; the first in document order is kept, edges to the others follow it;
* edges to refs the document does not define (``unknown_dependency_ref``): dropped;
* versions are never interpreted here: whatever string the document gives is kept.

``direct`` is decided from the dependency graph relative to the subject (see
``depgraph.direct_flags``); without any edge it is None (unknown). CycloneDX scope follows
the spec (absent means required), narrowed to ``dev`` by the property taxonomy
(``cdx:npm:package:development``, ``cdx:composer:package:isDevRequirement``, poetry groups,
pipenv categories); SPDX scope comes from relationship types (DEV_DEPENDENCY_OF, ...).
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
    text = to_utf8(data)
    detected = detect_format(text)
    if detected == "cyclonedx-json":
        return parse_cyclonedx_json(text)
    if detected == "cyclonedx-xml":
        # Untouched bytes: expat honours the byte-order mark and the XML declaration's
        # encoding, which re-encoded bytes would contradict.
        return parse_cyclonedx_xml(data)
    if detected == "spdx-json":
        return parse_spdx_json(text)
    return parse_spdx_tag_value(text)
