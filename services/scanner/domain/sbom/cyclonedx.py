"""CycloneDX 1.2-1.6 JSON, decoded straight into Structs that name only the fields we keep
(msgspec skips the rest without building them), then flattened into ``Component`` values."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from ..errors import MalformedDocument
from ..limits import (
    COMPONENT_NESTING_LIMIT,
    MAX_COMPONENT_NESTING,
    check_component,
    nested_too_deep,
)
from ..model import Bom, Component, Hash, License, Scope
from .assemble import Draft, finish
from .common import cyclonedx_version, json_error

_SCOPES: dict[str, Scope] = {"required": "required", "optional": "optional", "excluded": "excluded"}


class CdxLicense(msgspec.Struct, gc=False):
    id: str | None = None
    name: str | None = None


class CdxLicenseChoice(msgspec.Struct, gc=False):
    license: CdxLicense | None = None
    expression: str | None = None


class CdxHash(msgspec.Struct, gc=False):
    alg: str
    content: str


class CdxProperty(msgspec.Struct, gc=False):
    name: str
    value: str | None = None


class CdxComponent(msgspec.Struct, rename={"bom_ref": "bom-ref"}, gc=False):
    name: str
    type: str = "library"
    bom_ref: str | None = None
    group: str | None = None
    version: str | None = None
    purl: str | None = None
    scope: str | None = None
    hashes: list[CdxHash] | None = None
    licenses: list[CdxLicenseChoice] | None = None
    properties: list[CdxProperty] | None = None
    components: list[CdxComponent] | None = None


class CdxDependency(msgspec.Struct, rename={"depends_on": "dependsOn"}, gc=False):
    ref: str
    depends_on: list[str] | None = None


class CdxMetadata(msgspec.Struct, gc=False):
    component: CdxComponent | None = None


class CdxBom(
    msgspec.Struct, rename={"bom_format": "bomFormat", "spec_version": "specVersion"}, gc=False
):
    bom_format: str
    spec_version: str
    metadata: CdxMetadata | None = None
    components: list[CdxComponent] | None = None
    dependencies: list[CdxDependency] | None = None


_DECODER = msgspec.json.Decoder(CdxBom)

# Properties of the CycloneDX property taxonomy that mark development-only packages.
_DEV_FLAGS = ("cdx:npm:package:development", "cdx:composer:package:isDevRequirement")
_GROUP_PROPERTIES = {"cdx:poetry:group": "main", "cdx:pipenv:category": "default"}


def component_scope(
    scope: str | None,
    properties: Iterable[tuple[str, str | None]],
    draft: Draft,
    *,
    ref: str,
    location: str,
) -> Scope:
    """CycloneDX ``scope`` (absent means required, per the spec), narrowed to ``dev`` when the
    property taxonomy says the package is a development dependency."""
    if scope is None:
        result: Scope = "required"
    else:
        known = _SCOPES.get(scope.strip().lower())
        if known is None:
            draft.warn(
                "unknown_scope",
                f"scope {scope[:50]!r} is not a CycloneDX scope",
                ref=ref,
                location=location,
            )
            result = "unknown"
        else:
            result = known
    if result == "excluded":
        return result
    groups: dict[str, list[str]] = {}
    for name, value in properties:
        if name in _DEV_FLAGS and value == "true":
            return "dev"
        if name in _GROUP_PROPERTIES and value:
            groups.setdefault(name, []).append(value)
    for name, values in groups.items():
        if _GROUP_PROPERTIES[name] not in values:
            return "dev"
    return result


def check_bom_format(value: str) -> None:
    if value != "CycloneDX":
        raise MalformedDocument(
            f"bomFormat is {value[:50]!r}, not 'CycloneDX'", location="$.bomFormat"
        )


def _licenses(choices: list[CdxLicenseChoice] | None) -> tuple[License, ...]:
    if not choices:
        return ()
    result = []
    for choice in choices:
        if choice.expression:
            result.append(License(expression=choice.expression))
        elif choice.license is not None:
            if choice.license.id:
                result.append(License(id=choice.license.id))
            elif choice.license.name:
                result.append(License(name=choice.license.name))
    return tuple(result)


def _component(raw: CdxComponent, path: str, draft: Draft) -> tuple[Component, str | None]:
    ref = raw.bom_ref or f"#{path}"
    purl = draft.read_purl(raw.purl, ref=ref, location=path)
    properties = [(p.name, p.value) for p in raw.properties] if raw.properties else ()
    component = Component(
        ref=ref,
        name=raw.name,
        version=raw.version,
        purl=purl.purl,
        ecosystem=purl.ecosystem,
        package=purl.package,
        type=raw.type,
        group=raw.group or None,
        hashes=tuple(Hash(h.alg, h.content) for h in raw.hashes) if raw.hashes else (),
        licenses=_licenses(raw.licenses),
        scope=component_scope(raw.scope, properties, draft, ref=ref, location=path),
    )
    return component, purl.identity


def _flatten(roots: list[CdxComponent], path: str, draft: Draft, *, level: int = 1) -> None:
    """Depth-first, parent before its nested components: document order, so the first of a
    duplicate pair is the one a reader sees first. ``level`` is the roots' nesting level;
    beyond ``MAX_COMPONENT_NESTING`` the document is refused (every level lengthens the
    location of everything below it, so depth costs memory quadratically)."""
    stack = [(f"{path}[{i}]", c, level) for i, c in reversed(list(enumerate(roots)))]
    while stack:
        location, raw, depth = stack.pop()
        if depth > MAX_COMPONENT_NESTING:
            raise nested_too_deep(
                "CycloneDX JSON", limit=COMPONENT_NESTING_LIMIT, location=location
            )
        component, identity = _component(raw, location, draft)
        draft.add(component, location=location, identity=identity)
        if raw.components:
            stack.extend(
                (f"{location}.components[{i}]", c, depth + 1)
                for i, c in reversed(list(enumerate(raw.components)))
            )


def parse_cyclonedx_json(data: bytes) -> Bom:
    """Parse a CycloneDX 1.2-1.6 JSON document. Raises ``MalformedDocument`` (with the JSON
    path or line) or ``UnsupportedSpecVersion``."""
    try:
        document = _DECODER.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise json_error(exc, data, "CycloneDX JSON") from None
    check_bom_format(document.bom_format)
    spec_version, note = cyclonedx_version(document.spec_version, location="$.specVersion")
    draft = Draft()
    if note:
        draft.warn("spec_version_newer", note, location="$.specVersion")
    metadata = document.metadata.component if document.metadata else None
    if metadata is not None:
        draft.metadata, _ = _component(metadata, "$.metadata.component", draft)
        check_component(draft.metadata, location="$.metadata.component")
        if metadata.components:
            _flatten(metadata.components, "$.metadata.component.components", draft, level=2)
    if document.components:
        _flatten(document.components, "$.components", draft)
    for i, dependency in enumerate(document.dependencies or ()):
        draft.edges.append((dependency.ref, dependency.depends_on or [], f"$.dependencies[{i}]"))
    return finish(draft, format="cyclonedx", encoding="json", spec_version=spec_version)
