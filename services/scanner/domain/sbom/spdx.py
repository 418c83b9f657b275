"""SPDX 2.2/2.3: packages become components, relationships become the dependency graph.

Both encodings (JSON, tag-value) read into ``SpdxPackage`` / ``SpdxRelationship`` values
and share ``build_bom``. Only packages are components; files and snippets are elements the
graph may mention but that are not matched against advisories.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import msgspec

from ..depgraph import widest_scope
from ..limits import check_component
from ..model import Bom, Component, Hash, License, Scope
from .assemble import Draft, finish

DOCUMENT_ID = "SPDXRef-DOCUMENT"
NO_VALUE = {"NOASSERTION", "NONE", ""}

# SPDX checksum algorithm names in CycloneDX spelling (the model's one spelling).
HASH_ALGORITHMS = {
    "SHA1": "SHA-1",
    "SHA224": "SHA-224",
    "SHA256": "SHA-256",
    "SHA384": "SHA-384",
    "SHA512": "SHA-512",
    "MD5": "MD5",
}

# Relationship types that are dependency edges, the direction they point in, and the scope
# they give the dependency. "A DEPENDS_ON B" is A -> B; "A DEPENDENCY_OF B" is B -> A.
FORWARD: dict[str, Scope] = {
    "DEPENDS_ON": "required",
    "CONTAINS": "required",
    "DYNAMIC_LINK": "required",
    "STATIC_LINK": "required",
    "HAS_PREREQUISITE": "required",
}
REVERSE: dict[str, Scope] = {
    "DEPENDENCY_OF": "required",
    "RUNTIME_DEPENDENCY_OF": "required",
    "CONTAINED_BY": "required",
    "PREREQUISITE_FOR": "required",
    "PROVIDED_DEPENDENCY_OF": "required",
    "OPTIONAL_DEPENDENCY_OF": "optional",
    "OPTIONAL_COMPONENT_OF": "optional",
    "DEV_DEPENDENCY_OF": "dev",
    "TEST_DEPENDENCY_OF": "dev",
    "BUILD_DEPENDENCY_OF": "dev",
    "DEV_TOOL_OF": "dev",
    "TEST_TOOL_OF": "dev",
    "BUILD_TOOL_OF": "dev",
}


@dataclass(slots=True)
class SpdxPackage:
    spdx_id: str
    name: str
    location: str
    version: str | None = None
    checksums: list[tuple[str, str]] = field(default_factory=list)
    license_concluded: str | None = None
    license_declared: str | None = None
    purls: list[str] = field(default_factory=list)
    purpose: str | None = None


@dataclass(slots=True, frozen=True)
class SpdxRelationship:
    element: str
    type: str
    related: str
    location: str


def _licenses(package: SpdxPackage, extracted_names: dict[str, str]) -> tuple[License, ...]:
    """The concluded license when asserted, else the declared one: one expression or id."""
    for value in (package.license_concluded, package.license_declared):
        if value is None or value.strip().upper() in NO_VALUE:
            continue
        text = value.strip()
        if " " in text or "(" in text:
            return (License(expression=text),)
        return (License(id=text, name=extracted_names.get(text)),)
    return ()


def _component(
    package: SpdxPackage, draft: Draft, extracted: dict[str, str]
) -> tuple[Component, str | None]:
    ref = package.spdx_id
    purl_text = package.purls[0] if package.purls else None
    if len(package.purls) > 1:
        draft.warn(
            "multiple_purls",
            f"{len(package.purls)} purls; the first is used",
            ref=ref,
            location=package.location,
        )
    purl = draft.read_purl(purl_text, ref=ref, location=package.location)
    version = package.version.strip() if package.version else None
    component = Component(
        ref=ref,
        name=package.name,
        version=version or None,
        purl=purl.purl,
        ecosystem=purl.ecosystem,
        package=purl.package,
        type=(package.purpose or "library").lower().replace("_", "-"),
        hashes=tuple(
            Hash(HASH_ALGORITHMS.get(alg.upper().replace("-", ""), alg), value)
            for alg, value in package.checksums
        ),
        licenses=_licenses(package, extracted),
    )
    return component, purl.identity


def build_bom(
    *,
    encoding: Literal["json", "tag-value"],
    spec_version: str,
    version_note: str | None,
    packages: Sequence[SpdxPackage],
    relationships: Sequence[SpdxRelationship],
    describes: Sequence[str],
    other_elements: set[str],
    extracted_names: dict[str, str],
) -> Bom:
    """``describes`` (documentDescribes plus DESCRIBES relationships) picks the subject: one
    described package becomes the metadata component; several stay components, all direct."""
    draft = Draft()
    if version_note:
        draft.warn("spec_version_untested", version_note)
    package_ids = {p.spdx_id for p in packages}
    described = list(dict.fromkeys(describes))
    for rel in relationships:
        if rel.type == "DESCRIBES" and rel.element == DOCUMENT_ID:
            described.append(rel.related)
        elif rel.type == "DESCRIBED_BY" and rel.related == DOCUMENT_ID:
            described.append(rel.element)
    described = [d for d in dict.fromkeys(described) if d in package_ids]
    subject = described[0] if len(described) == 1 else None

    scopes: dict[str, list[Scope]] = {}
    for rel in relationships:
        if rel.type in FORWARD:
            parent, child, scope = rel.element, rel.related, FORWARD[rel.type]
        elif rel.type in REVERSE:
            parent, child, scope = rel.related, rel.element, REVERSE[rel.type]
        else:
            continue
        if child.upper() in NO_VALUE or parent.upper() in NO_VALUE or ":" in child + parent:
            continue  # NONE / NOASSERTION, or an element of another document
        if (parent not in package_ids and parent != DOCUMENT_ID) or child not in package_ids:
            if parent not in other_elements and child not in other_elements:
                draft.warn(
                    "unknown_dependency_ref",
                    f"relationship {rel.element} {rel.type} {rel.related} names an unknown element",
                    location=rel.location,
                )
            continue
        draft.edges.append((parent, [child], rel.location))
        scopes.setdefault(child, []).append(scope)
        if parent == DOCUMENT_ID and DOCUMENT_ID not in draft.roots:
            draft.roots.append(DOCUMENT_ID)

    for package in packages:
        component, identity = _component(package, draft, extracted_names)
        if package.spdx_id == subject:
            check_component(component, location=package.location)
            draft.metadata = component
            continue
        # Scope is what relationships say; a package no relationship scopes is unknown.
        if package.spdx_id in scopes:
            component = _with_scope(component, widest_scope(scopes[package.spdx_id]))
        draft.add(component, location=package.location, identity=identity)
    if subject is None and described:
        # Several subjects: each is a top-level component, direct by definition.
        draft.edges.append((DOCUMENT_ID, described, "DESCRIBES"))
        if DOCUMENT_ID not in draft.roots:
            draft.roots.append(DOCUMENT_ID)
    return finish(draft, format="spdx", encoding=encoding, spec_version=spec_version)


def _with_scope(component: Component, scope: Scope) -> Component:
    return msgspec.structs.replace(component, scope=scope)
