"""Values shared by the scanner's readers (SBOMs, lockfiles) and its matcher (OSV)."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

# OSV ecosystem names (https://ossf.github.io/osv-schema/#defined-ecosystems) by purl type.
ECOSYSTEM_BY_PURL_TYPE: dict[str, str] = {
    "pypi": "PyPI",
    "npm": "npm",
    "golang": "Go",
    "maven": "Maven",
    "cargo": "crates.io",
    "gem": "RubyGems",
    "composer": "Packagist",
    "nuget": "NuGet",
}
PURL_TYPE_BY_ECOSYSTEM: dict[str, str] = {eco: t for t, eco in ECOSYSTEM_BY_PURL_TYPE.items()}

Scope = Literal["required", "optional", "excluded", "dev", "unknown"]

_PEP503 = re.compile(r"[-_.]+")


def normalize_pypi_name(name: str) -> str:
    """PEP 503: case-folded, runs of ``-``, ``_`` and ``.`` become one ``-``."""
    return _PEP503.sub("-", name).lower()


def package_key(ecosystem: str, name: str) -> str:
    """How one package is spelled everywhere the scanner compares names (index keys)."""
    if ecosystem == "PyPI":
        return normalize_pypi_name(name)
    if ecosystem in ("NuGet", "Packagist"):
        return name.lower()  # both registries treat names case-insensitively
    return name


class Hash(msgspec.Struct, frozen=True, gc=False):
    alg: str  # e.g. "SHA-256" as CycloneDX spells it
    value: str


class License(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """One license statement as the document gave it: an SPDX id, an expression, or a name."""

    id: str | None = None
    expression: str | None = None
    name: str | None = None


class Component(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One package found in an SBOM or a lockfile.

    ``ref`` is the document-local identity (CycloneDX bom-ref, SPDX SPDXID, or
    ``ecosystem:name@version`` for lockfiles) used by the dependency graph.
    """

    ref: str
    name: str
    version: str | None = None
    purl: str | None = None
    ecosystem: str | None = None  # OSV ecosystem, when known (from the purl or the lockfile)
    # The name as the ecosystem's registry and OSV spell it ("@scope/name", "group:artifact",
    # a Go module path), from the purl or the lockfile; ``name`` stays as the document gave it.
    package: str | None = None
    type: str = "library"
    group: str | None = None
    hashes: tuple[Hash, ...] = ()
    licenses: tuple[License, ...] = ()
    scope: Scope = "unknown"
    direct: bool | None = None  # None: the document has no dependency graph to tell


class Dependency(msgspec.Struct, frozen=True, gc=False):
    """``ref`` depends directly on each of ``depends_on`` (refs of components)."""

    ref: str
    depends_on: tuple[str, ...]


class IngestWarning(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Something a reader kept going past; ``code`` is stable (``duplicate_component``,
    ``invalid_purl``, ``unknown_dependency_ref``, ``unpinned_requirement``, ...)."""

    code: str
    detail: str
    ref: str | None = None  # the component concerned, when there is one
    location: str | None = None  # JSON path, ``line N`` or ``path:line``


class Bom(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One parsed SBOM: what the document describes, flattened and de-duplicated.

    ``metadata_component`` is the subject (CycloneDX ``metadata.component``, or the one
    package an SPDX document DESCRIBES); it is the root of ``direct`` and is not repeated in
    ``components``.
    """

    format: Literal["cyclonedx", "spdx"]
    encoding: Literal["json", "xml", "tag-value"]
    spec_version: str
    components: tuple[Component, ...]
    dependencies: tuple[Dependency, ...] = ()
    metadata_component: Component | None = None
    warnings: tuple[IngestWarning, ...] = ()
