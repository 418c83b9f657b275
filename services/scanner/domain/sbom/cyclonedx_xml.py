"""CycloneDX 1.2-1.6 XML over pyexpat, with every DTD refused.

A CycloneDX document never needs a DOCTYPE, so one is refused before expat reads any entity
declaration: no billion laughs, no external entities, no DTD retrieval, whatever the expat
build. The parser builds a small tree of its own nodes (tag, attributes, text, line) so that
a semantic error can still say which line it is on.
"""

from __future__ import annotations

from typing import NoReturn
from xml.parsers import expat

from ..errors import ForbiddenXml, MalformedDocument
from ..model import Bom, Component, Hash, License
from .assemble import Draft, finish
from .common import cyclonedx_version
from .cyclonedx import component_scope

NAMESPACE_PREFIX = "http://cyclonedx.org/schema/bom/"


class Node:
    __slots__ = ("attrs", "children", "line", "ns", "tag", "text")

    def __init__(self, ns: str, tag: str, attrs: dict[str, str], line: int) -> None:
        self.ns = ns
        self.tag = tag
        self.attrs = attrs
        self.line = line
        self.children: list[Node] = []
        self.text: list[str] = []

    def child(self, tag: str) -> Node | None:
        for node in self.children:
            if node.tag == tag and node.ns == self.ns:
                return node
        return None

    def all(self, tag: str) -> list[Node]:
        return [n for n in self.children if n.tag == tag and n.ns == self.ns]

    def value(self, tag: str) -> str | None:
        node = self.child(tag)
        if node is None:
            return None
        return "".join(node.text).strip()


def _forbidden(what: str, parser: expat.XMLParserType) -> NoReturn:
    raise ForbiddenXml(
        f"{what} are not allowed in a CycloneDX document",
        location=f"line {parser.CurrentLineNumber}",
    )


def parse_xml_tree(data: bytes) -> Node:
    """The element tree of ``data``; DOCTYPE, entity declarations and external entity
    references are refused with ``ForbiddenXml``."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Node] = []
    roots: list[Node] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        ns, _, tag = name.rpartition(" ")
        node = Node(ns, tag, attrs, parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)

    def end(name: str) -> None:
        stack.pop()

    def text(data: str) -> None:
        if stack:
            stack[-1].text.append(data)

    def doctype(*args: object) -> None:
        _forbidden("DOCTYPE declarations", parser)

    def entity(*args: object) -> None:
        _forbidden("entity declarations", parser)

    def external(*args: object) -> int:
        _forbidden("external entities", parser)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.ExternalEntityRefHandler = external
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise MalformedDocument(
            f"CycloneDX XML is not well-formed: {expat.ErrorString(exc.code)}",
            location=f"line {exc.lineno}, column {exc.offset + 1}",
        ) from None
    return roots[0]


def _component(node: Node, draft: Draft) -> Component:
    location = f"line {node.line}"
    name = node.value("name")
    if not name:
        raise MalformedDocument("component has no <name>", location=location)
    ref = node.attrs.get("bom-ref") or f"#{location}"
    purl = draft.read_purl(node.value("purl"), ref=ref, location=location)
    hashes_node = node.child("hashes")
    hashes = (
        tuple(
            Hash(h.attrs.get("alg", ""), "".join(h.text).strip()) for h in hashes_node.all("hash")
        )
        if hashes_node is not None
        else ()
    )
    licenses: list[License] = []
    licenses_node = node.child("licenses")
    if licenses_node is not None:
        for item in licenses_node.children:
            if item.tag == "expression":
                licenses.append(License(expression="".join(item.text).strip()))
            elif item.tag == "license":
                if license_id := item.value("id"):
                    licenses.append(License(id=license_id))
                elif license_name := item.value("name"):
                    licenses.append(License(name=license_name))
    properties_node = node.child("properties")
    properties = (
        [
            (p.attrs.get("name", ""), "".join(p.text).strip())
            for p in properties_node.all("property")
        ]
        if properties_node is not None
        else []
    )
    component = Component(
        ref=ref,
        name=name,
        version=node.value("version"),
        purl=purl.purl,
        ecosystem=purl.ecosystem,
        package=purl.package,
        type=node.attrs.get("type", "library"),
        group=node.value("group") or None,
        hashes=hashes,
        licenses=tuple(licenses),
        scope=component_scope(node.value("scope"), properties, draft, ref=ref, location=location),
    )
    draft.add(component, location=location, identity=purl.identity)
    return component


def _flatten(container: Node | None, draft: Draft) -> None:
    if container is None:
        return
    stack = list(reversed(container.all("component")))
    while stack:
        node = stack.pop()
        _component(node, draft)
        nested = node.child("components")
        if nested is not None:
            stack.extend(reversed(nested.all("component")))


def _edges(node: Node, draft: Draft) -> None:
    """``<dependency ref>`` elements; CycloneDX XML nests a ref's direct dependencies."""
    stack = list(reversed(node.all("dependency")))
    while stack:
        dependency = stack.pop()
        ref = dependency.attrs.get("ref")
        if not ref:
            raise MalformedDocument("<dependency> has no ref", location=f"line {dependency.line}")
        children = dependency.all("dependency")
        draft.edges.append(
            (ref, [c.attrs.get("ref", "") for c in children], f"line {dependency.line}")
        )
        # A nested dependency with children of its own states those edges too.
        stack.extend(reversed([c for c in children if c.children]))


def parse_cyclonedx_xml(data: bytes) -> Bom:
    """Parse a CycloneDX 1.2-1.6 XML document. Raises ``MalformedDocument`` (with the line),
    ``ForbiddenXml`` or ``UnsupportedSpecVersion``."""
    root = parse_xml_tree(data)
    if root.tag != "bom" or not root.ns.startswith(NAMESPACE_PREFIX):
        raise MalformedDocument(
            f"root element is {{{root.ns}}}{root.tag}, not a CycloneDX <bom>", location="line 1"
        )
    spec_version, note = cyclonedx_version(
        root.ns[len(NAMESPACE_PREFIX) :], location=f"line {root.line} (xmlns)"
    )
    draft = Draft()
    if note:
        draft.warn("spec_version_newer", note, location=f"line {root.line}")
    metadata = root.child("metadata")
    subject = metadata.child("component") if metadata is not None else None
    if subject is not None:
        draft.metadata = _component(subject, draft)
        # The subject is not one of its own components: take it back out of the list.
        draft.components.pop()
        draft.locations.pop()
        draft.identities.pop()
        _flatten(subject.child("components"), draft)
    _flatten(root.child("components"), draft)
    dependencies = root.child("dependencies")
    if dependencies is not None:
        _edges(dependencies, draft)
    return finish(draft, format="cyclonedx", encoding="xml", spec_version=spec_version)
