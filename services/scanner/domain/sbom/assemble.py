"""What every SBOM parser does after reading: purls checked, duplicates folded, the graph
cleaned, ``direct`` decided. Parsers fill a ``Draft``; ``finish`` turns it into a ``Bom``."""

from __future__ import annotations

from collections import Counter
from typing import Literal

import msgspec

from shared.storable import storable_text

from ..depgraph import direct_flags
from ..limits import MAX_COMPONENTS, check_component, check_component_count
from ..model import Bom, Component, Dependency, IngestWarning
from ..purls import InvalidPurl, parse_purl

# A broken 50 MB document could otherwise carry a million warnings into a scan record.
MAX_WARNINGS_PER_CODE = 100


class PurlFields(msgspec.Struct, frozen=True):
    purl: str | None
    ecosystem: str | None
    package: str | None
    identity: str | None


_NO_PURL = PurlFields(None, None, None, None)


class Draft:
    """Mutable collector a parser fills in document order."""

    __slots__ = ("components", "edges", "identities", "locations", "metadata", "roots", "warnings")

    def __init__(self) -> None:
        self.components: list[Component] = []
        self.locations: list[str] = []  # parallel to components: where each came from
        self.identities: list[str | None] = []  # parallel: canonical purl, for duplicates
        self.edges: list[tuple[str, list[str], str]] = []  # (ref, depends_on, location)
        self.metadata: Component | None = None
        self.roots: list[str] = []  # refs whose children are direct (besides metadata)
        self.warnings: list[IngestWarning] = []

    def warn(
        self, code: str, detail: str, *, ref: str | None = None, location: str | None = None
    ) -> None:
        # A warning quotes the document (a ref that names nothing, say): stored with the
        # scan's result, so made storable and bounded here.
        self.warnings.append(
            IngestWarning(
                code=code,
                detail=storable_text(detail, max_chars=1000),
                ref=storable_text(ref, max_chars=300) if ref is not None else None,
                location=location,
            )
        )

    def read_purl(self, raw: str | None, *, ref: str, location: str) -> PurlFields:
        """Check a component's purl. A bad one is dropped with an ``invalid_purl`` warning:
        the component stays (its name, version, hashes and licenses are still evidence) but
        has no ecosystem, so it is never matched under a guessed package name."""
        if raw is None or not raw.strip():
            return _NO_PURL
        try:
            purl = parse_purl(raw)
        except InvalidPurl as exc:
            self.warn(
                "invalid_purl", f"purl {raw[:200]!r} ignored: {exc}", ref=ref, location=location
            )
            return _NO_PURL
        return PurlFields(raw.strip(), purl.ecosystem, purl.package, purl.identity)

    def add(self, component: Component, *, location: str, identity: str | None) -> None:
        """Keep a component, refused (``MalformedDocument`` at its location) when a value
        of it cannot be stored, and the document refused (``TooLarge``) past the bound."""
        check_component(component, location=location)
        if len(self.components) >= MAX_COMPONENTS:
            check_component_count(len(self.components) + 1, limit=MAX_COMPONENTS)
        self.components.append(component)
        self.locations.append(location)
        self.identities.append(identity)


def _capped(warnings: list[IngestWarning]) -> tuple[IngestWarning, ...]:
    counts: Counter[str] = Counter()
    kept: list[IngestWarning] = []
    for warning in warnings:
        counts[warning.code] += 1
        if counts[warning.code] <= MAX_WARNINGS_PER_CODE:
            kept.append(warning)
    for code, count in counts.items():
        if count > MAX_WARNINGS_PER_CODE:
            kept.append(
                IngestWarning(
                    code=code,
                    detail=f"{count - MAX_WARNINGS_PER_CODE} more {code} warnings not listed",
                )
            )
    return tuple(kept)


def finish(
    draft: Draft,
    *,
    format: Literal["cyclonedx", "spdx"],
    encoding: Literal["json", "xml", "tag-value"],
    spec_version: str,
) -> Bom:
    """Fold duplicates (first occurrence wins, deterministic in document order), drop edges
    to unknown refs, and decide ``direct`` from the graph."""
    root = draft.metadata
    kept_index: dict[str, int] = {}
    by_identity: dict[str, str] = {}
    alias: dict[str, str] = {}
    if root is not None:
        kept_index[root.ref] = -1
        root_identity = parse_purl(root.purl).identity if root.purl else None
        if root_identity:
            by_identity[root_identity] = root.ref
    kept: list[Component] = []
    for component, location, identity in zip(
        draft.components, draft.locations, draft.identities, strict=True
    ):
        ref = component.ref
        if ref in kept_index:
            draft.warn(
                "duplicate_component",
                f"bom-ref {ref!r} appears again; the first occurrence is kept",
                ref=ref,
                location=location,
            )
            continue
        if identity is not None and identity in by_identity:
            first = by_identity[identity]
            alias[ref] = first
            draft.warn(
                "duplicate_component",
                f"same purl as {first!r}; folded into it",
                ref=ref,
                location=location,
            )
            continue
        kept_index[ref] = len(kept)
        kept.append(component)
        if identity is not None:
            by_identity[identity] = ref

    edges: dict[str, dict[str, None]] = {}
    for ref, depends_on, location in draft.edges:
        source = alias.get(ref, ref)
        if source not in kept_index and source not in draft.roots:
            draft.warn(
                "unknown_dependency_ref",
                f"dependency entry for unknown ref {ref!r} ignored",
                ref=ref,
                location=location,
            )
            continue
        children = edges.setdefault(source, {})
        for child_ref in depends_on:
            child = alias.get(child_ref, child_ref)
            if child not in kept_index:
                draft.warn(
                    "unknown_dependency_ref",
                    f"{ref!r} depends on unknown ref {child_ref!r}; edge ignored",
                    ref=ref,
                    location=location,
                )
            elif child != source:
                children[child] = None

    roots = ([root.ref] if root is not None else []) + draft.roots
    graph = {ref: list(children) for ref, children in edges.items()}
    flags = direct_flags([c.ref for c in kept], graph, roots)
    if flags is not None:
        kept = [msgspec.structs.replace(c, direct=flags[c.ref]) for c in kept]
    dependencies = tuple(
        Dependency(ref, tuple(children)) for ref, children in graph.items() if ref in kept_index
    )
    return Bom(
        format=format,
        encoding=encoding,
        spec_version=spec_version,
        components=tuple(kept),
        dependencies=dependencies,
        metadata_component=root,
        warnings=_capped(draft.warnings),
    )
