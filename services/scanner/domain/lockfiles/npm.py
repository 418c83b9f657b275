"""``package-lock.json`` / ``npm-shrinkwrap.json``, lockfile versions 1, 2 and 3.

Versions 2 and 3 list every installed package under ``packages`` keyed by its install path
(``node_modules/a/node_modules/b``); version 1 nests ``dependencies``. Both are read into
the install-path form, and dependencies are resolved the way Node resolves ``require``:
the nearest ``node_modules`` up the path.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..model import Component, Dependency, IngestWarning, License, Scope
from .base import (
    LockfileReport,
    decode_json,
    integrity_hashes,
    merge_components,
    package_component,
)
from .tree import FileTree, read_optional, sibling

ECOSYSTEM = "npm"
_DEPENDENCY_KINDS = ("dependencies", "optionalDependencies", "devDependencies", "peerDependencies")


class NpmPackage(msgspec.Struct, kw_only=True):
    name: str | None = None
    version: str | None = None
    resolved: str | None = None
    integrity: str | None = None
    link: bool = False
    dev: bool = False
    optional: bool = False
    devOptional: bool = False
    license: str | dict[str, Any] | list[Any] | None = None
    dependencies: dict[str, str] | None = None
    optionalDependencies: dict[str, str] | None = None
    devDependencies: dict[str, str] | None = None
    peerDependencies: dict[str, str] | None = None


class NpmV1Dependency(msgspec.Struct, kw_only=True):
    version: str
    resolved: str | None = None
    integrity: str | None = None
    dev: bool = False
    optional: bool = False
    requires: dict[str, str] | None = None
    dependencies: dict[str, NpmV1Dependency] | None = None


class NpmLockfile(msgspec.Struct, kw_only=True):
    lockfileVersion: int = 1
    packages: dict[str, NpmPackage] | None = None
    dependencies: dict[str, NpmV1Dependency] | None = None


class PackageJson(msgspec.Struct, kw_only=True):
    dependencies: dict[str, str] | None = None
    optionalDependencies: dict[str, str] | None = None
    devDependencies: dict[str, str] | None = None
    peerDependencies: dict[str, str] | None = None


def _declared(entry: NpmPackage | PackageJson) -> set[str]:
    names: set[str] = set()
    for kind in _DEPENDENCY_KINDS:
        names.update(getattr(entry, kind) or ())
    return names


def _v1_to_packages(
    dependencies: dict[str, NpmV1Dependency], prefix: str = ""
) -> dict[str, NpmPackage]:
    """Version 1's nesting as version 2's install paths."""
    packages: dict[str, NpmPackage] = {}
    stack = [(prefix, dependencies)]
    while stack:
        base, level = stack.pop()
        for name, dep in level.items():
            key = f"{base}node_modules/{name}"
            real_name, version = name, dep.version
            if version.startswith("npm:"):  # an alias: "npm:real-name@1.2.3"
                real_name, _, version = version[4:].rpartition("@")
            packages[key] = NpmPackage(
                name=real_name if real_name != name else None,
                version=version,
                resolved=dep.resolved,
                integrity=dep.integrity,
                dev=dep.dev,
                optional=dep.optional,
                dependencies=dep.requires,
            )
            if dep.dependencies:
                stack.append((key + "/", dep.dependencies))
    return packages


def _resolve(packages: dict[str, NpmPackage], from_key: str, name: str) -> str | None:
    """The install path Node would load ``name`` from when required at ``from_key``."""
    parts = from_key.split("/") if from_key else []
    for end in range(len(parts), -1, -1):
        if end and parts[end - 1] == "node_modules":
            continue
        directory = "/".join(parts[:end])
        candidate = f"{directory}/node_modules/{name}" if directory else f"node_modules/{name}"
        if candidate in packages:
            return candidate
    return None


def _license(value: str | dict[str, Any] | list[Any] | None) -> tuple[License, ...]:
    if isinstance(value, str) and value.strip():
        text = value.strip()
        return (License(expression=text),) if " " in text else (License(id=text),)
    return ()


def _scope(entry: NpmPackage) -> Scope:
    if entry.dev or entry.devOptional:
        return "dev"
    return "optional" if entry.optional else "required"


def read_package_lock(path: str, data: bytes, tree: FileTree) -> LockfileReport:
    lock = decode_json(path, data, NpmLockfile)
    warnings: list[IngestWarning] = []
    if lock.packages is not None:
        packages = lock.packages
        root = packages.get("")
        roots = {"": _declared(root)} if root is not None else {}
    else:
        packages = _v1_to_packages(lock.dependencies or {})
        manifest = read_optional(tree, sibling(path, "package.json"))
        roots = (
            {"": _declared(decode_json(sibling(path, "package.json"), manifest, PackageJson))}
            if manifest
            else {}
        )
    # Workspace members are local directories (not under node_modules): roots too.
    for key, entry in packages.items():
        if key and "node_modules/" not in key and not entry.link:
            roots[key] = _declared(entry)

    components: dict[str, Component] = {}
    ref_by_key: dict[str, str] = {}
    for key, entry in packages.items():
        if "node_modules/" not in key or entry.link:
            continue
        name = entry.name or key.rpartition("node_modules/")[2]
        if not entry.version:
            warnings.append(
                IngestWarning(
                    code="unversioned_package",
                    detail=f"{name} has no version; skipped",
                    location=f"{path}: packages[{key!r}]",
                )
            )
            continue
        parent = key.rpartition("node_modules/")[0].rstrip("/")
        alias = key.rpartition("node_modules/")[2]
        direct: bool | None = None
        if roots:
            direct = parent in roots and alias in roots[parent]
        component = package_component(
            ECOSYSTEM,
            name,
            entry.version,
            scope=_scope(entry),
            direct=direct,
            hashes=integrity_hashes(entry.integrity),
            licenses=_license(entry.license),
        )
        ref_by_key[key] = component.ref
        previous = components.get(component.ref)
        if previous is not None:
            # The same name@version installed at several paths: one component.
            component = merge_components(previous, component)
        components[component.ref] = component

    edges: dict[str, dict[str, None]] = {}
    for key, entry in packages.items():
        source = ref_by_key.get(key)
        if source is None:
            continue
        for kind in ("dependencies", "optionalDependencies", "peerDependencies"):
            for dep_name in getattr(entry, kind) or ():
                target = _resolve(packages, key, dep_name)
                if target is not None and target in ref_by_key and ref_by_key[target] != source:
                    edges.setdefault(source, {})[ref_by_key[target]] = None
    return LockfileReport(
        path=path,
        kind=path.rpartition("/")[2],
        ecosystem=ECOSYSTEM,
        components=tuple(components.values()),
        dependencies=tuple(Dependency(ref, tuple(children)) for ref, children in edges.items()),
        warnings=tuple(warnings),
    )
