"""``composer.lock``: ``packages`` (required) and ``packages-dev`` (dev). Direct dependencies
come from ``composer.json`` beside the lock. Several licenses on one package are a choice
(Composer's "disjunctive" licenses), so they become one ``OR`` expression."""

from __future__ import annotations

import msgspec

from ..model import Component, Dependency, Hash, License, Scope
from .base import LockfileReport, decode_json, merge_components, package_component
from .tree import FileTree, read_optional, sibling

ECOSYSTEM = "Packagist"


class ComposerDist(msgspec.Struct):
    shasum: str | None = None


class ComposerPackage(msgspec.Struct, kw_only=True):
    name: str
    version: str
    dist: ComposerDist | None = None
    require: dict[str, str] | None = None
    license: list[str] | None = None


class ComposerLock(msgspec.Struct, rename={"packages_dev": "packages-dev"}):
    packages: list[ComposerPackage] = []
    packages_dev: list[ComposerPackage] | None = None


class ComposerJson(msgspec.Struct, rename={"require_dev": "require-dev"}):
    require: dict[str, str] | None = None
    require_dev: dict[str, str] | None = None


def is_platform_package(name: str) -> bool:
    """php, extensions and Composer's own APIs: provided by the platform, not installed."""
    lowered = name.lower()
    return "/" not in lowered


def _licenses(values: list[str] | None) -> tuple[License, ...]:
    ids = [v.strip() for v in values or () if v and v.strip()]
    if len(ids) == 1:
        return (License(id=ids[0]),)
    if ids:
        return (License(expression=" OR ".join(f"({i})" if " " in i else i for i in ids)),)
    return ()


def read_composer_lock(path: str, data: bytes, tree: FileTree) -> LockfileReport:
    lock = decode_json(path, data, ComposerLock)
    manifest_path = sibling(path, "composer.json")
    manifest_data = read_optional(tree, manifest_path)
    declared: set[str] | None = None
    if manifest_data is not None:
        manifest = decode_json(manifest_path, manifest_data, ComposerJson)
        declared = {n.lower() for n in (manifest.require or {}) | (manifest.require_dev or {})}
    components: dict[str, Component] = {}
    ref_by_name: dict[str, str] = {}
    sections: tuple[tuple[list[ComposerPackage], Scope], ...] = (
        (lock.packages, "required"),
        (lock.packages_dev or [], "dev"),
    )
    for packages, scope in sections:
        for package in packages:
            shasum = package.dist.shasum if package.dist else None
            component = package_component(
                ECOSYSTEM,
                package.name,
                package.version,
                scope=scope,
                direct=None if declared is None else package.name.lower() in declared,
                hashes=[Hash("SHA-1", shasum)] if shasum else [],
                licenses=_licenses(package.license),
            )
            previous = components.get(component.ref)
            components[component.ref] = (
                merge_components(previous, component) if previous else component
            )
            ref_by_name[package.name.lower()] = component.ref
    edges: dict[str, dict[str, None]] = {}
    for packages, _ in sections:
        for package in packages:
            source = ref_by_name[package.name.lower()]
            for name in package.require or {}:
                target = ref_by_name.get(name.lower())
                if target is not None and target != source and not is_platform_package(name):
                    edges.setdefault(source, {})[target] = None
    return LockfileReport(
        path=path,
        kind="composer.lock",
        ecosystem=ECOSYSTEM,
        components=tuple(components.values()),
        dependencies=tuple(Dependency(ref, tuple(children)) for ref, children in edges.items()),
    )
