"""``Gemfile.lock`` (and ``gems.locked``): the specs of every ``GEM``, ``GIT`` and ``PATH``
source, ``DEPENDENCIES`` for what is direct, ``CHECKSUMS`` (Bundler 2.5+) for hashes.
A platform-specific gem (``nokogiri (1.16.0-x86_64-linux)``) keeps its platform as a purl
qualifier. Gemfile.lock does not record groups, so scope is unknown."""

from __future__ import annotations

import re

from ..errors import LockfileError
from ..model import Component, Dependency, Hash
from .base import LockfileReport, merge_components, package_component
from .tree import FileTree

ECOSYSTEM = "RubyGems"
_SPEC = re.compile(r"^([^\s(]+) \(([^)\s]+)\)$")
_DEPENDENCY = re.compile(r"^([^\s(!]+)!?(?: \(([^)]*)\))?$")
_CHECKSUM = re.compile(r"^([^\s(]+) \(([^)\s]+)\)(?: (.*))?$")
_SOURCES = ("GEM", "GIT", "PATH", "PLUGIN SOURCE")


def _split_platform(version: str) -> tuple[str, str | None]:
    """RubyGems versions contain no "-": whatever follows the first one is the platform."""
    base, sep, platform = version.partition("-")
    return (base, platform) if sep and platform else (version, None)


def read_gemfile_lock(path: str, data: bytes, tree: FileTree) -> LockfileReport:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LockfileError(f"{path} is not valid UTF-8", location=path) from None
    section = ""
    in_specs = False
    specs: list[tuple[int, str, str, list[str]]] = []  # (line, name, version, dependency names)
    direct_names: set[str] = set()
    checksums: dict[tuple[str, str], list[Hash]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        location = f"{path}:{number}"
        if not raw.startswith(" "):
            section, in_specs = raw.strip(), False
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        line = raw.strip()
        if section in _SOURCES:
            if indent == 2:
                in_specs = line == "specs:"
            elif in_specs and indent == 4:
                match = _SPEC.match(line)
                if match is None:
                    raise LockfileError(
                        f"expected 'name (version)', found {line[:80]!r}", location=location
                    )
                specs.append((number, match.group(1), match.group(2), []))
            elif in_specs and indent == 6 and specs:
                match = _DEPENDENCY.match(line)
                if match is None:
                    raise LockfileError(
                        f"expected 'name (requirement)', found {line[:80]!r}", location=location
                    )
                specs[-1][3].append(match.group(1))
            elif in_specs:
                raise LockfileError(
                    f"unexpected indentation in specs: {line[:80]!r}", location=location
                )
        elif section == "DEPENDENCIES" and indent == 2:
            match = _DEPENDENCY.match(line)
            if match is None:
                raise LockfileError(
                    f"expected a dependency name, found {line[:80]!r}", location=location
                )
            direct_names.add(match.group(1))
        elif section == "CHECKSUMS" and indent == 2:
            match = _CHECKSUM.match(line)
            if match is not None and match.group(3):
                for item in match.group(3).split(","):
                    algorithm, _, value = item.strip().partition("=")
                    if algorithm.lower() == "sha256" and value:
                        checksums.setdefault((match.group(1), match.group(2)), []).append(
                            Hash("SHA-256", value)
                        )
    components: dict[str, Component] = {}
    ref_by_name: dict[str, str] = {}
    for _, name, full_version, _ in specs:
        version, platform = _split_platform(full_version)
        component = package_component(
            ECOSYSTEM,
            name,
            version,
            scope="unknown",
            direct=name in direct_names if direct_names else None,
            hashes=checksums.get((name, full_version), []),
            qualifiers={"platform": platform} if platform else None,
        )
        previous = components.get(component.ref)
        components[component.ref] = merge_components(previous, component) if previous else component
        ref_by_name.setdefault(name, component.ref)
    edges: dict[str, dict[str, None]] = {}
    for _, name, _, dependencies in specs:
        source = ref_by_name[name]
        for dependency in dependencies:
            target = ref_by_name.get(dependency)
            if target is not None and target != source:
                edges.setdefault(source, {})[target] = None
    return LockfileReport(
        path=path,
        kind="Gemfile.lock",
        ecosystem=ECOSYSTEM,
        components=tuple(components.values()),
        dependencies=tuple(Dependency(ref, tuple(children)) for ref, children in edges.items()),
    )
