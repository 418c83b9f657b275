"""One spelling of "which package" for advisories, components and purls.

A package identity is ``(ecosystem, key)``: the OSV base ecosystem and ``model.package_key``
of the name as OSV spells it — PyPI names PEP 503-normalised, Go module paths, Maven
``group:artifact``, npm ``@scope/name``, Packagist ``vendor/name`` (case-folded, as
Packagist and NuGet names are case-insensitive).
"""

from __future__ import annotations

from packageurl import PackageURL

from .model import ECOSYSTEM_BY_PURL_TYPE, Component, package_key
from .versions import base_ecosystem

PackageId = tuple[str, str]


def package_id(ecosystem: str, name: str) -> PackageId:
    base = base_ecosystem(ecosystem)
    return base, package_key(base, name.strip())


def purl_package(purl: str) -> tuple[PackageId, str | None] | None:
    """``(package id, version)`` from a purl, or None for a type OSV has no ecosystem for."""
    try:
        parsed = PackageURL.from_string(purl)
    except ValueError:
        return None
    ecosystem = ECOSYSTEM_BY_PURL_TYPE.get(parsed.type)
    if ecosystem is None or not parsed.name:
        return None
    namespace = parsed.namespace or ""
    if not namespace:
        name = parsed.name
    elif ecosystem == "Maven":
        name = f"{namespace}:{parsed.name}"
    elif ecosystem == "npm":
        name = f"@{namespace.lstrip('@')}/{parsed.name}"
    else:  # Go module paths, Packagist vendor/name
        name = f"{namespace}/{parsed.name}"
    return package_id(ecosystem, name), parsed.version


def component_package(component: Component) -> tuple[PackageId, str | None] | None:
    """The component's package id and version: from its purl when it has a usable one,
    else from its OSV ecosystem, group and name. None when neither says which ecosystem."""
    if component.purl:
        found = purl_package(component.purl)
        if found is not None:
            pid, version = found
            return pid, component.version or version
    if not component.ecosystem:
        return None
    ecosystem = base_ecosystem(component.ecosystem)
    name, group = component.name, component.group
    if group:
        if ecosystem == "Maven" and ":" not in name:
            name = f"{group}:{name}"
        elif ecosystem == "npm" and not name.startswith("@"):
            name = f"@{group.lstrip('@')}/{name}"
        elif ecosystem in ("Go", "Packagist") and "/" not in name:
            name = f"{group}/{name}"
    return package_id(ecosystem, name), component.version
