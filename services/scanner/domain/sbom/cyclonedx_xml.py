"""CycloneDX 1.2-1.6 XML, streamed, with every DTD refused.

A CycloneDX document never needs a DOCTYPE. Before parsing, pyexpat reads the prolog up to
the root element with a handler that refuses any DOCTYPE: without a DTD no entity can be
declared, so nothing can expand (billion laughs) and nothing external can be fetched (XXE),
whatever the expat build. The document is then parsed by the C ``XMLPullParser``; each
top-level component and dependency is converted when its end tag arrives and cleared, so
memory stays proportional to one component, not to the document.

Locations are element paths (``/bom/components/component[3]``, 1-based like XPath);
syntax errors give line and column. The cyclic garbage collector is paused while the tree
is built: the parser makes no reference cycles, and collections triggered by a million
short-lived elements would otherwise double the parse time.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import NoReturn, cast
from xml.parsers import expat

from ..errors import ForbiddenXml, MalformedDocument
from ..limits import (
    COMPONENT_NESTING_LIMIT,
    MAX_COMPONENT_NESTING,
    MAX_XML_DEPTH,
    XML_DEPTH_LIMIT,
    check_component,
    nested_too_deep,
)
from ..model import Bom, Component, Hash, License
from .assemble import Draft, finish
from .common import cyclonedx_version, gc_paused
from .cyclonedx import component_scope

NAMESPACE_PREFIX = "http://cyclonedx.org/schema/bom/"
_CHUNK = 1 << 20


class _RootReached(Exception):
    pass


def refuse_dtd(data: bytes) -> None:
    """Read the prolog; ``ForbiddenXml`` for a DOCTYPE, ``MalformedDocument`` for bad XML."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def doctype(*args: object) -> NoReturn:
        raise ForbiddenXml(
            "DOCTYPE declarations are not allowed in a CycloneDX document",
            location=f"line {parser.CurrentLineNumber}",
        )

    def root(*args: object) -> NoReturn:
        raise _RootReached

    parser.StartDoctypeDeclHandler = doctype
    parser.StartElementHandler = root
    try:
        parser.Parse(data, True)
    except _RootReached:
        return
    except expat.ExpatError as exc:
        raise MalformedDocument(
            f"CycloneDX XML is not well-formed: {expat.ErrorString(exc.code)}",
            location=f"line {exc.lineno}, column {exc.offset + 1}",
        ) from None


def _text(element: ET.Element | None) -> str | None:
    if element is None:
        return None
    return (element.text or "").strip()


class _Reader:
    def __init__(self, ns: str, draft: Draft) -> None:
        self.ns = ns
        self.q = f"{{{ns}}}"
        self.draft = draft

    def value(self, element: ET.Element, tag: str) -> str | None:
        return _text(element.find(self.q + tag))

    def component(self, element: ET.Element, path: str) -> tuple[Component, str | None]:
        """The component of one ``<component>`` element, and its purl identity."""
        q = self.q
        name = self.value(element, "name")
        if not name:
            raise MalformedDocument("component has no <name>", location=path)
        ref = element.get("bom-ref") or f"#{path}"
        purl = self.draft.read_purl(self.value(element, "purl"), ref=ref, location=path)
        hashes = tuple(
            Hash(h.get("alg", ""), (h.text or "").strip())
            for h in element.iterfind(f"{q}hashes/{q}hash")
        )
        licenses: list[License] = []
        licenses_element = element.find(q + "licenses")
        if licenses_element is not None:
            for item in licenses_element:
                if item.tag == q + "expression":
                    licenses.append(License(expression=(item.text or "").strip()))
                elif item.tag == q + "license":
                    if license_id := self.value(item, "id"):
                        licenses.append(License(id=license_id))
                    elif license_name := self.value(item, "name"):
                        licenses.append(License(name=license_name))
        properties = [
            (p.get("name", ""), (p.text or "").strip())
            for p in element.iterfind(f"{q}properties/{q}property")
        ]
        component = Component(
            ref=ref,
            name=name,
            version=self.value(element, "version"),
            purl=purl.purl,
            ecosystem=purl.ecosystem,
            package=purl.package,
            type=element.get("type", "library"),
            group=self.value(element, "group") or None,
            hashes=hashes,
            licenses=tuple(licenses),
            scope=component_scope(
                self.value(element, "scope"), properties, self.draft, ref=ref, location=path
            ),
        )
        return component, purl.identity

    def flatten(self, element: ET.Element, path: str, *, level: int = 1) -> None:
        """A component and its nested components, parent first (document order); refused
        beyond ``MAX_COMPONENT_NESTING`` levels."""
        stack = [(path, element, level)]
        while stack:
            location, node, depth = stack.pop()
            if depth > MAX_COMPONENT_NESTING:
                raise nested_too_deep(
                    "CycloneDX XML", limit=COMPONENT_NESTING_LIMIT, location=location
                )
            component, identity = self.component(node, location)
            self.draft.add(component, location=location, identity=identity)
            nested = node.findall(f"{self.q}components/{self.q}component")
            stack.extend(
                (f"{location}/components/component[{i}]", child, depth + 1)
                for i, child in reversed(list(enumerate(nested, start=1)))
            )

    def dependency(self, element: ET.Element, path: str) -> None:
        """``<dependency ref>``: its nested ``<dependency>`` elements are what it depends on."""
        stack = [(path, element)]
        while stack:
            location, node = stack.pop()
            ref = node.get("ref")
            if not ref:
                raise MalformedDocument("<dependency> has no ref", location=location)
            children = node.findall(self.q + "dependency")
            self.draft.edges.append((ref, [c.get("ref", "") for c in children], location))
            stack.extend(
                (f"{location}/dependency[{i}]", child)
                for i, child in enumerate(children, start=1)
                if len(child)
            )


def parse_cyclonedx_xml(data: bytes) -> Bom:
    """Parse a CycloneDX 1.2-1.6 XML document. Raises ``MalformedDocument`` (element path, or
    line and column), ``ForbiddenXml`` or ``UnsupportedSpecVersion``."""
    refuse_dtd(data)
    draft = Draft()
    with gc_paused():
        spec_version = _stream(data, draft)
    return finish(draft, format="cyclonedx", encoding="xml", spec_version=spec_version)


def _stream(data: bytes, draft: Draft) -> str:
    """Feed the document through the pull parser; convert each child of a child of <bom>
    (a component, a dependency, the subject) when it ends, then free it."""
    pull: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    reader: _Reader | None = None
    spec_version = ""
    depth = 0
    container = ""  # the open child of <bom>, e.g. "components"
    seen: dict[str, int] = {}  # children of the open container, by tag
    try:
        for offset in range(0, max(len(data), 1), _CHUNK):
            pull.feed(data[offset : offset + _CHUNK])
            for event, element in cast("Iterator[tuple[str, ET.Element]]", pull.read_events()):
                if event == "start":
                    depth += 1
                    if depth > MAX_XML_DEPTH:
                        # Refused at the first element too deep: a few thousand levels
                        # already cost a component's location per level (quadratic).
                        raise nested_too_deep(
                            "CycloneDX XML", limit=XML_DEPTH_LIMIT, location=f"/bom/{container}"
                        )
                    if depth == 1:
                        reader, spec_version = _root(element, draft)
                    elif depth == 2:
                        container, seen = element.tag.rpartition("}")[2], {}
                    continue
                depth -= 1
                if depth == 2 and reader is not None:
                    tag = element.tag.rpartition("}")[2]
                    index = seen[tag] = seen.get(tag, 0) + 1
                    _top_level(reader, element, f"/bom/{container}/{tag}[{index}]", container)
        pull.close()
    except ET.ParseError as exc:
        line, column = exc.position
        raise MalformedDocument(
            f"CycloneDX XML is not well-formed: {str(exc).split(':')[0]}",
            location=f"line {line}, column {column + 1}",
        ) from None
    return spec_version


def _root(element: ET.Element, draft: Draft) -> tuple[_Reader, str]:
    if element.tag.startswith("{"):
        ns, _, tag = element.tag[1:].partition("}")
    else:
        ns, tag = "", element.tag
    if tag != "bom" or not ns.startswith(NAMESPACE_PREFIX):
        raise MalformedDocument(
            f"root element is {element.tag}, not a CycloneDX <bom>", location="/" + tag
        )
    spec_version, note = cyclonedx_version(ns[len(NAMESPACE_PREFIX) :], location="/bom/@xmlns")
    if note:
        draft.warn("spec_version_newer", note, location="/bom/@xmlns")
    return _Reader(ns, draft), spec_version


def _top_level(reader: _Reader, element: ET.Element, path: str, container: str) -> None:
    """A child of a child of <bom> has ended: convert it if it is one, then free it."""
    q = reader.q
    if element.tag == q + "component" and container == "components":
        reader.flatten(element, path)
    elif element.tag == q + "dependency" and container == "dependencies":
        reader.dependency(element, path)
    elif element.tag == q + "component" and container == "metadata":
        subject, _ = reader.component(element, path)
        check_component(subject, location=path)
        reader.draft.metadata = subject
        nested = element.findall(f"{q}components/{q}component")
        for i, child in enumerate(nested, start=1):
            reader.flatten(child, f"{path}/components/component[{i}]", level=2)
    else:
        return
    element.clear()
