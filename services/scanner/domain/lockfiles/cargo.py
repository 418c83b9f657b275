"""``Cargo.lock`` (versions 1-4). Packages without a ``source`` are the workspace's own
crates (or local path crates): they are the roots, not components, and what they depend on
is direct. Cargo.lock does not tell dev- and build-dependencies apart, so scope is unknown."""

from __future__ import annotations

import msgspec

from ..model import Component, Dependency, Hash
from .base import LockfileReport, convert, decode_toml, merge_components, package_component
from .tree import FileTree

ECOSYSTEM = "crates.io"


class CargoPackage(msgspec.Struct, kw_only=True):
    name: str
    version: str
    source: str | None = None
    checksum: str | None = None
    dependencies: list[str] = []


class CargoLock(msgspec.Struct):
    package: list[CargoPackage] = []
    metadata: dict[str, str] = {}  # version 1 kept checksums here


def read_cargo_lock(path: str, data: bytes, tree: FileTree) -> LockfileReport:
    lock = convert(path, decode_toml(path, data), CargoLock)
    keys: dict[tuple[str, str, str | None], str] = {}  # (name, version, source) -> ref
    by_name: dict[str, list[tuple[str, str | None]]] = {}
    components: dict[str, Component] = {}
    for package in lock.package:
        by_name.setdefault(package.name, []).append((package.version, package.source))
        if package.source is None:
            continue
        checksum = package.checksum or lock.metadata.get(
            f"checksum {package.name} {package.version} ({package.source})"
        )
        component = package_component(
            ECOSYSTEM,
            package.name,
            package.version,
            scope="unknown",
            direct=False,
            hashes=[Hash("SHA-256", checksum)] if checksum and checksum != "<none>" else [],
        )
        previous = components.get(component.ref)
        components[component.ref] = merge_components(previous, component) if previous else component
        keys[(package.name, package.version, package.source)] = component.ref

    def resolve(spec: str) -> tuple[str, str, str | None] | None:
        """A dependency spec ("name", "name version", "name version (source)") as a key."""
        name, _, rest = spec.partition(" ")
        version, _, source_text = rest.partition(" ")
        source = source_text.strip("()") or None
        candidates = [
            (v, s)
            for v, s in by_name.get(name, ())
            if (not version or v == version) and (source is None or s == source)
        ]
        return (name, *candidates[0]) if len(candidates) >= 1 else None

    direct: set[str] = set()
    edges: dict[str, dict[str, None]] = {}
    for package in lock.package:
        source_ref = keys.get((package.name, package.version, package.source))
        for spec in package.dependencies:
            target = resolve(spec)
            target_ref = keys.get(target) if target else None
            if target_ref is None:
                continue
            if source_ref is None:
                direct.add(target_ref)
            elif target_ref != source_ref:
                edges.setdefault(source_ref, {})[target_ref] = None
    if direct:
        components = {
            ref: msgspec.structs.replace(c, direct=True) if ref in direct else c
            for ref, c in components.items()
        }
    elif not any(p.source is None for p in lock.package):
        components = {ref: msgspec.structs.replace(c, direct=None) for ref, c in components.items()}
    return LockfileReport(
        path=path,
        kind="Cargo.lock",
        ecosystem=ECOSYSTEM,
        components=tuple(components.values()),
        dependencies=tuple(Dependency(ref, tuple(children)) for ref, children in edges.items()),
    )
