"""``scan_tree``: find every lockfile in a tree, read each, merge what they say.

A lockfile that cannot be read does not stop the scan: it is listed in ``failures`` with
its code and location, and the caller decides (a scan that found nothing readable fails).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

import msgspec

from shared.storable import storable_text

from ..errors import IngestError, LockfileError, MalformedDocument
from ..limits import check_component, check_component_count
from ..model import Component, Dependency, IngestWarning
from .base import LockfileReport, Reader, merge_components
from .cargo import read_cargo_lock
from .composer import read_composer_lock
from .go import read_go_mod
from .npm import read_package_lock
from .python_locks import read_pipfile_lock, read_poetry_lock, read_uv_lock
from .requirements import is_requirements_file, read_requirements
from .ruby import read_gemfile_lock
from .tree import FileTree

SKIPPED_DIRECTORIES = frozenset({"node_modules", ".git", "vendor", ".hg", ".svn"})
DEFAULT_MAX_FILE_SIZE = 64 << 20

READERS: dict[str, Reader] = {
    "package-lock.json": read_package_lock,
    "npm-shrinkwrap.json": read_package_lock,
    "poetry.lock": read_poetry_lock,
    "uv.lock": read_uv_lock,
    "Pipfile.lock": read_pipfile_lock,
    "go.mod": read_go_mod,
    "Cargo.lock": read_cargo_lock,
    "composer.lock": read_composer_lock,
    "Gemfile.lock": read_gemfile_lock,
    "gems.locked": read_gemfile_lock,
}


class LockfileFailure(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    code: str
    detail: str
    location: str | None = None


class TreeScan(msgspec.Struct, frozen=True, kw_only=True):
    """Every lockfile found, and the union of their packages (one component per
    ecosystem/name/version, widest scope, direct when any lockfile says so)."""

    components: tuple[Component, ...]
    dependencies: tuple[Dependency, ...]
    lockfiles: tuple[LockfileReport, ...]
    failures: tuple[LockfileFailure, ...] = ()
    warnings: tuple[IngestWarning, ...] = ()


def reader_for(path: str) -> Reader | None:
    """The reader for a path, None when it is not a lockfile this scanner reads."""
    reader = READERS.get(posixpath.basename(path))
    if reader is None and is_requirements_file(path):
        return read_requirements
    return reader


def find_lockfiles(paths: Iterable[str]) -> list[str]:
    """Lockfile paths, outside dependency and VCS directories, in a stable order."""
    found = []
    for path in paths:
        directories = path.split("/")[:-1]
        if SKIPPED_DIRECTORIES.intersection(directories):
            continue
        if reader_for(path) is not None:
            found.append(path)
    return sorted(found)


def scan_tree(tree: FileTree, *, max_file_size: int = DEFAULT_MAX_FILE_SIZE) -> TreeScan:
    """Read every lockfile in ``tree`` and merge them. Archive-level refusals raised by
    the tree (``ArchiveError``) propagate: they condemn the whole upload."""
    reports: list[LockfileReport] = []
    failures: list[LockfileFailure] = []
    for path in find_lockfiles(tree.walk()):
        reader = reader_for(path)
        assert reader is not None
        size = tree.size(path)
        if size > max_file_size:
            failures.append(
                LockfileFailure(
                    path=path,
                    code="lockfile_too_large",
                    detail=f"{size} bytes; lockfiles above {max_file_size} bytes are not read",
                )
            )
            continue
        data = tree.read(path)
        try:
            report = reader(path, data, tree)
            for component in report.components:
                # A value no database can hold (a NUL in a name, a 10 KB version) fails
                # the lockfile, like a syntax error would.
                check_component(component, location=path)
            check_component_count(len(report.components))
            reports.append(report)
        except MalformedDocument as exc:
            failures.append(
                LockfileFailure(
                    path=path, code=LockfileError.code, detail=exc.detail, location=exc.location
                )
            )
        except IngestError as exc:
            if exc.code.startswith("archive_"):
                raise
            failures.append(
                LockfileFailure(path=path, code=exc.code, detail=exc.detail, location=exc.location)
            )
    return merge_reports(reports, failures)


def merge_reports(reports: list[LockfileReport], failures: list[LockfileFailure]) -> TreeScan:
    components: dict[str, Component] = {}
    edges: dict[str, dict[str, None]] = {}
    warnings: dict[tuple[str, str | None, str], IngestWarning] = {}
    for report in reports:
        for component in report.components:
            previous = components.get(component.ref)
            components[component.ref] = (
                merge_components(previous, component) if previous else component
            )
        for dependency in report.dependencies:
            children = edges.setdefault(dependency.ref, {})
            children.update(dict.fromkeys(dependency.depends_on))
        for warning in report.warnings:
            # A file included by two requirements files warns once. A warning quotes the
            # file: stored with the scan's result, so made storable.
            warning = msgspec.structs.replace(
                warning,
                detail=storable_text(warning.detail, max_chars=1000),
                ref=storable_text(warning.ref, max_chars=300) if warning.ref else warning.ref,
                location=storable_text(warning.location, max_chars=300)
                if warning.location
                else warning.location,
            )
            warnings.setdefault((warning.code, warning.location, warning.detail), warning)
    return TreeScan(
        components=tuple(components.values()),
        dependencies=tuple(Dependency(ref, tuple(children)) for ref, children in edges.items()),
        lockfiles=tuple(reports),
        failures=tuple(failures),
        warnings=tuple(warnings.values()),
    )
