"""The bounds an input document must keep so that everything the scanner derives from it can
be stored and published: nesting, counts, field sizes, and values PostgreSQL refuses (NUL,
lone surrogates; see ``shared.storable``). Pure; documented in the scanner's README.

The bounds are checked as the readers go, before a document's size can turn into memory:
an XML element deeper than ``MAX_XML_DEPTH`` stops the stream at that element, a component
nested deeper than ``MAX_COMPONENT_NESTING`` stops the flattening, and JSON nested beyond
the decoder's recursion limit (about 1,000 levels) is a ``RecursionError`` the readers turn
into the same refusal.
"""

from __future__ import annotations

from shared.storable import text_problem

from .errors import IngestError, MalformedDocument
from .model import Component

# Components within components (CycloneDX ``components`` of a component). Real documents
# nest a handful of levels (an image, its layers' packages, a jar's shaded jars).
MAX_COMPONENT_NESTING = 32
# Elements within elements in an XML document; a CycloneDX component nested
# MAX_COMPONENT_NESTING deep with its licenses is well under this.
MAX_XML_DEPTH = 128
# Components one scan keeps; a 10,000-component SBOM is a large one.
MAX_COMPONENTS = 250_000
# UTF-8 bytes of one identifying value (bom-ref, name, version, purl, group, type, hash):
# they are indexed together (a PostgreSQL b-tree entry holds at most ~2,700 bytes).
MAX_IDENTIFIER_BYTES = 1024
# UTF-8 bytes of one license id, name or expression (stored, not indexed).
MAX_LICENSE_BYTES = 8192


class TooLarge(IngestError):
    """More than the scanner's bounds allow (components, memory or time of one document)."""

    code, status, title = "too_large", 413, "Input too large to scan"


def nested_too_deep(what: str, *, limit: str, location: str | None) -> MalformedDocument:
    """The refusal of a document nested beyond ``limit`` (e.g. ``"32 levels of components"``)."""
    return MalformedDocument(f"{what} is nested more than {limit} deep", location=location)


JSON_DEPTH_LIMIT = "the JSON decoder's limit (about 1,000 levels)"
COMPONENT_NESTING_LIMIT = f"{MAX_COMPONENT_NESTING} levels of components"
XML_DEPTH_LIMIT = f"{MAX_XML_DEPTH} elements"


def field_location(location: str, field: str) -> str:
    """``location`` (a JSON path, an XML element path, ``line N`` or ``path:line``) and
    the field within it."""
    if location.startswith("$"):
        return f"{location}.{field}"
    if location.startswith("/"):
        return f"{location}/{field}"
    return f"{location} ({field})"


def _check_value(value: str | None, *, limit: int, field: str, location: str) -> None:
    if value is None:
        return
    problem = text_problem(value)
    if problem is None and len(value) * 4 > limit and len(value.encode("utf-8")) > limit:
        problem = f"is longer than {limit} bytes"
    if problem is not None:
        raise MalformedDocument(f"{field} {problem}", location=field_location(location, field))


_IDENTIFIER_FIELDS = ("ref", "name", "version", "purl", "group", "type", "ecosystem", "package")
# Characters below which no value can exceed its bound in bytes (UTF-8: at most 4 a char).
_SHORT = MAX_IDENTIFIER_BYTES // 4
_SHORT_LICENSE = MAX_LICENSE_BYTES // 4


def check_component(component: Component, *, location: str) -> None:
    """``MalformedDocument`` naming the first value of ``component`` that cannot be stored
    or is beyond its bound."""
    # The common case in one pass over one joined string: about a microsecond a component.
    values = [getattr(component, field) or "" for field in _IDENTIFIER_FIELDS]
    values += [part for digest in component.hashes for part in (digest.alg, digest.value)]
    licenses = [
        part
        for statement in component.licenses
        for part in (statement.id, statement.expression, statement.name)
        if part
    ]
    if (
        max(map(len, values)) <= _SHORT
        and all(len(part) <= _SHORT_LICENSE for part in licenses)
        and text_problem("".join(values + licenses)) is None
    ):
        return
    for field in _IDENTIFIER_FIELDS:
        _check_value(
            getattr(component, field), limit=MAX_IDENTIFIER_BYTES, field=field, location=location
        )
    for i, digest in enumerate(component.hashes):
        _check_value(
            digest.alg, limit=MAX_IDENTIFIER_BYTES, field=f"hashes[{i}].alg", location=location
        )
        _check_value(
            digest.value,
            limit=MAX_IDENTIFIER_BYTES,
            field=f"hashes[{i}].content",
            location=location,
        )
    for i, statement in enumerate(component.licenses):
        for part in ("id", "expression", "name"):
            _check_value(
                getattr(statement, part),
                limit=MAX_LICENSE_BYTES,
                field=f"licenses[{i}].{part}",
                location=location,
            )


def check_component_count(count: int, *, limit: int = MAX_COMPONENTS) -> None:
    if count > limit:
        raise TooLarge(f"more than {limit} components; the scanner reads at most {limit}")
