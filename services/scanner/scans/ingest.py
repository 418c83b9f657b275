"""An upload's bytes → components: an SBOM (any supported format) or a source archive (every
lockfile in it). Pure; every refusal is an ``IngestError`` with a stable code and location.

``vet_upload`` is the cheap check made before a scan is queued (is this an SBOM we read? is
this zip safe to open?); ``read_upload`` is the full read the worker does.
"""

from __future__ import annotations

import msgspec

from services.scanner.domain.archive import ArchiveLimits, SafeZip
from services.scanner.domain.errors import IngestError
from services.scanner.domain.limits import check_component_count
from services.scanner.domain.lockfiles import ZipTree, scan_tree
from services.scanner.domain.model import Component, Dependency, IngestWarning
from services.scanner.domain.sbom import detect_format, parse_sbom
from services.scanner.domain.sbom.detect import to_utf8
from services.scanner.scans.result import LockfileNote

SOURCE_FORMAT = "zip"
# What a source scan's SBOM (made by the scanner) is.
GENERATED_FORMAT, GENERATED_SPEC = "cyclonedx-json", "1.5"


class Parsed(msgspec.Struct, frozen=True, kw_only=True):
    format: str
    spec_version: str
    components: tuple[Component, ...]
    dependencies: tuple[Dependency, ...] = ()
    warnings: tuple[IngestWarning, ...] = ()
    lockfiles: tuple[LockfileNote, ...] = ()


class NoLockfiles(IngestError):
    code, status, title = "no_lockfiles", 422, "No lockfile found"


def vet_upload(kind: str, data: bytes, *, limits: ArchiveLimits | None = None) -> str:
    """The upload's format, or the IngestError that refuses it before a scan is queued."""
    if kind == "sbom":
        return detect_format(to_utf8(data))
    archive = SafeZip.open(data, limits)  # vets every entry from the central directory
    archive.close()
    return SOURCE_FORMAT


def read_upload(kind: str, data: bytes, *, limits: ArchiveLimits | None = None) -> Parsed:
    if kind == "sbom":
        return read_sbom(data)
    return read_source(data, limits=limits)


def read_sbom(data: bytes) -> Parsed:
    bom = parse_sbom(data)
    return Parsed(
        format=f"{bom.format}-{bom.encoding}",
        spec_version=bom.spec_version,
        components=bom.components,
        dependencies=bom.dependencies,
        warnings=bom.warnings,
    )


def read_source(data: bytes, *, limits: ArchiveLimits | None = None) -> Parsed:
    tree = ZipTree.open(data, limits)
    try:
        scanned = scan_tree(tree)
    finally:
        tree.close()
    notes = [LockfileNote(path=r.path, ecosystem=r.ecosystem) for r in scanned.lockfiles]
    notes += [
        LockfileNote(path=f.path, code=f.code, detail=f.detail, location=f.location)
        for f in scanned.failures
    ]
    if not scanned.lockfiles:
        if scanned.failures:
            first = scanned.failures[0]
            raise IngestError(
                f"{first.path}: {first.detail}",
                code=first.code,
                location=first.location or first.path,
            )
        raise NoLockfiles(
            "the archive contains no lockfile this scanner reads (package-lock.json, "
            "requirements*.txt, poetry.lock, uv.lock, Pipfile.lock, go.mod, Cargo.lock, "
            "composer.lock, Gemfile.lock)"
        )
    check_component_count(len(scanned.components))
    return Parsed(
        format=GENERATED_FORMAT,
        spec_version=GENERATED_SPEC,
        components=scanned.components,
        dependencies=scanned.dependencies,
        warnings=scanned.warnings,
        lockfiles=tuple(sorted(notes, key=lambda n: n.path)),
    )
