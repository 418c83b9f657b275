"""Python lockfiles: ``poetry.lock``, ``uv.lock`` and ``Pipfile.lock``.

Direct dependencies come from the project file beside the lock when the lock does not say
(``pyproject.toml``, ``Pipfile``); dev scope from the lock's categories or groups, else
propagated from the project's dev groups through the lock's graph.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from packaging.requirements import InvalidRequirement, Requirement

from ..depgraph import propagate_scopes, widest_scope
from ..model import Component, Dependency, Hash, IngestWarning, Scope, normalize_pypi_name
from .base import (
    LockfileReport,
    convert,
    decode_json,
    decode_toml,
    merge_components,
    package_component,
    prefixed_hash,
)
from .tree import FileTree, read_optional, sibling

ECOSYSTEM = "PyPI"


def _requirement_name(text: str) -> str | None:
    try:
        return normalize_pypi_name(Requirement(text).name)
    except InvalidRequirement:
        return None


def _names(values: Iterable[str]) -> list[str]:
    return [normalize_pypi_name(v) for v in values if v.lower() != "python"]


def _edges_report(
    path: str,
    kind: str,
    components: Mapping[str, Component],
    edges: Mapping[str, Iterable[str]],
    warnings: list[IngestWarning],
) -> LockfileReport:
    return LockfileReport(
        path=path,
        kind=kind,
        ecosystem=ECOSYSTEM,
        components=tuple(components.values()),
        dependencies=tuple(
            Dependency(ref, tuple(dict.fromkeys(children)))
            for ref, children in edges.items()
            if children
        ),
        warnings=tuple(warnings),
    )


def _finish_scopes(
    components: dict[str, Component], entry_points: dict[str, Scope], edges: Mapping[str, list[str]]
) -> None:
    """Scope and ``direct`` for components the lock left unscoped, from the project's
    direct dependencies."""
    inherited = propagate_scopes(entry_points, edges) if entry_points else {}
    for ref, component in components.items():
        changes: dict[str, Any] = {}
        if component.scope == "unknown" and ref in inherited:
            changes["scope"] = inherited[ref]
        if entry_points and component.direct is None:
            changes["direct"] = ref in entry_points
        if changes:
            components[ref] = msgspec.structs.replace(component, **changes)


# --- poetry.lock -------------------------------------------------------------------------


class PoetryFile(msgspec.Struct):
    hash: str | None = None


class PoetryPackage(msgspec.Struct, kw_only=True):
    name: str
    version: str
    category: str | None = None  # lock format 1.x: "main" / "dev"
    groups: list[str] | None = None  # lock format 2.1 (Poetry 2)
    optional: bool = False
    files: list[PoetryFile] | None = None
    dependencies: dict[str, Any] | None = None


class PoetryLock(msgspec.Struct):
    package: list[PoetryPackage] = []


def _poetry_project(tree: FileTree, path: str) -> dict[str, Scope]:
    """Direct dependencies declared in pyproject.toml, by normalised name, with their scope."""
    data = read_optional(tree, sibling(path, "pyproject.toml"))
    if data is None:
        return {}
    project = decode_toml(sibling(path, "pyproject.toml"), data)
    declared: dict[str, Scope] = {}
    tool = project.get("tool")
    poetry = tool.get("poetry", {}) if isinstance(tool, dict) else {}
    pep621 = project.get("project", {})
    if isinstance(poetry, dict):
        groups = poetry.get("group", {})
        for group_name, group in groups.items() if isinstance(groups, dict) else ():
            if isinstance(group, dict):
                for name in _names(group.get("dependencies", {})):
                    declared.setdefault(name, "required" if group_name == "main" else "dev")
        for name in _names(poetry.get("dev-dependencies", {})):
            declared.setdefault(name, "dev")
        for name in _names(poetry.get("dependencies", {})):
            declared[name] = "required"
    if isinstance(pep621, dict):
        for extra in (pep621.get("optional-dependencies") or {}).values():
            for text in extra:
                if (optional := _requirement_name(text)) is not None:
                    declared.setdefault(optional, "optional")
        for text in pep621.get("dependencies") or ():
            if (required := _requirement_name(text)) is not None:
                declared[required] = "required"
    return declared


def _poetry_scope(package: PoetryPackage) -> Scope:
    if package.category is not None:
        scope: Scope = "required" if package.category == "main" else "dev"
    elif package.groups is not None:
        scope = "required" if "main" in package.groups else "dev"
    else:
        return "unknown"
    return "optional" if scope == "required" and package.optional else scope


def read_poetry_lock(path: str, data: bytes, tree: FileTree) -> LockfileReport:
    lock = convert(path, decode_toml(path, data), PoetryLock)
    components: dict[str, Component] = {}
    refs_by_name: dict[str, list[str]] = {}
    for package in lock.package:
        hashes = [h for h in (prefixed_hash(f.hash) for f in package.files or () if f.hash) if h]
        component = package_component(
            ECOSYSTEM,
            package.name,
            package.version,
            scope=_poetry_scope(package),
            direct=None,
            hashes=hashes,
        )
        previous = components.get(component.ref)
        components[component.ref] = merge_components(previous, component) if previous else component
        refs_by_name.setdefault(normalize_pypi_name(package.name), []).append(component.ref)
    edges: dict[str, list[str]] = {}
    for package in lock.package:
        source = refs_by_name[normalize_pypi_name(package.name)][0]
        for dep_name in package.dependencies or {}:
            for target in refs_by_name.get(normalize_pypi_name(dep_name), ()):
                if target != source:
                    edges.setdefault(source, []).append(target)
    declared = _poetry_project(tree, path)
    entry_points = {
        ref: scope for name, scope in declared.items() for ref in refs_by_name.get(name, ())
    }
    _finish_scopes(components, entry_points, edges)
    return _edges_report(path, "poetry.lock", components, edges, [])


# --- uv.lock -----------------------------------------------------------------------------


class UvArtifact(msgspec.Struct):
    hash: str | None = None


class UvDependency(msgspec.Struct):
    name: str
    version: str | None = None


class UvPackage(
    msgspec.Struct,
    kw_only=True,
    rename={
        "optional_dependencies": "optional-dependencies",
        "dev_dependencies": "dev-dependencies",
    },
):
    name: str
    version: str | None = None
    source: dict[str, Any] = {}
    dependencies: list[UvDependency] = []
    optional_dependencies: dict[str, list[UvDependency]] = {}
    dev_dependencies: dict[str, list[UvDependency]] = {}
    sdist: UvArtifact | None = None
    wheels: list[UvArtifact] = []


class UvLock(msgspec.Struct):
    version: int = 1
    package: list[UvPackage] = []


def read_uv_lock(path: str, data: bytes, tree: FileTree) -> LockfileReport:
    lock = convert(path, decode_toml(path, data), UvLock)
    warnings: list[IngestWarning] = []
    components: dict[str, Component] = {}
    # (name, version) -> ref; the project's own members (editable / virtual) are roots.
    refs: dict[tuple[str, str | None], str] = {}
    roots: list[UvPackage] = []
    for package in lock.package:
        if "editable" in package.source or "virtual" in package.source:
            roots.append(package)
            continue
        if not package.version:
            warnings.append(
                IngestWarning(
                    code="unversioned_package",
                    detail=f"{package.name} has no version; skipped",
                    location=f"{path}: package {package.name!r}",
                )
            )
            continue
        artifacts = ([package.sdist] if package.sdist else []) + package.wheels
        hashes = [h for h in (prefixed_hash(a.hash) for a in artifacts if a.hash) if h]
        component = package_component(
            ECOSYSTEM, package.name, package.version, scope="unknown", direct=None, hashes=hashes
        )
        components[component.ref] = component
        refs[(normalize_pypi_name(package.name), package.version)] = component.ref
        refs.setdefault((normalize_pypi_name(package.name), None), component.ref)

    def target(dep: UvDependency) -> str | None:
        return refs.get((normalize_pypi_name(dep.name), dep.version))

    edges: dict[str, list[str]] = {}
    for package in lock.package:
        source = refs.get((normalize_pypi_name(package.name), package.version))
        if source is None:
            continue
        deps = package.dependencies + [
            d for ds in package.optional_dependencies.values() for d in ds
        ]
        edges[source] = [t for t in (target(d) for d in deps) if t is not None and t != source]
    entry_points: dict[str, Scope] = {}
    for root in roots:
        declared: list[tuple[Scope, list[UvDependency]]] = [
            ("dev", [d for ds in root.dev_dependencies.values() for d in ds]),
            ("optional", [d for ds in root.optional_dependencies.values() for d in ds]),
            ("required", root.dependencies),
        ]
        for dep_scope, deps in declared:
            for dep in deps:
                if (ref := target(dep)) is not None:
                    entry_points[ref] = widest_scope((dep_scope, entry_points.get(ref, "unknown")))
    _finish_scopes(components, entry_points, edges)
    return _edges_report(path, "uv.lock", components, edges, warnings)


# --- Pipfile.lock ------------------------------------------------------------------------


class PipenvPackage(msgspec.Struct):
    version: str | None = None
    hashes: list[str] = []


class PipfileLock(msgspec.Struct):
    default: dict[str, PipenvPackage] = {}
    develop: dict[str, PipenvPackage] = {}


def _pipfile_direct(tree: FileTree, path: str) -> set[str] | None:
    data = read_optional(tree, sibling(path, "Pipfile"))
    if data is None:
        return None
    pipfile = decode_toml(sibling(path, "Pipfile"), data)
    names: set[str] = set()
    for section in ("packages", "dev-packages"):
        value = pipfile.get(section)
        if isinstance(value, dict):
            names.update(_names(value))
    return names


def read_pipfile_lock(path: str, data: bytes, tree: FileTree) -> LockfileReport:
    lock = decode_json(path, data, PipfileLock)
    direct_names = _pipfile_direct(tree, path)
    warnings: list[IngestWarning] = []
    components: dict[str, Component] = {}
    sections: tuple[tuple[str, Scope], ...] = (("default", "required"), ("develop", "dev"))
    for section, scope in sections:
        for name, package in getattr(lock, section).items():
            location = f"{path}: $.{section}[{name!r}]"
            version = (package.version or "").strip()
            if not version.startswith("=="):
                warnings.append(
                    IngestWarning(
                        code="unpinned_requirement",
                        detail=f"{name} has no pinned version (git, path or editable); skipped",
                        location=location,
                    )
                )
                continue
            hashes: list[Hash] = [h for h in (prefixed_hash(v) for v in package.hashes) if h]
            direct = None if direct_names is None else normalize_pypi_name(name) in direct_names
            component = package_component(
                ECOSYSTEM,
                name,
                version.lstrip("="),
                scope=scope,
                direct=direct,
                hashes=hashes,
            )
            previous = components.get(component.ref)
            components[component.ref] = (
                merge_components(previous, component) if previous else component
            )
    return _edges_report(path, "Pipfile.lock", components, {}, warnings)
