"""Reading an uploaded distribution: its core metadata and the SBOMs a wheel carries.

Called in a worker thread on the staged file (synchronous, no network, no clock). Every
archive is vetted before a byte is decompressed — entry count, declared expanded size, the
compression ratio of each entry, overlapping entries (one compressed stream reused by many,
the "better zip bomb"), unsafe entry names — and then every entry is decompressed once,
metered against its declared size, to check its CRC: a corrupt wheel is refused here, not
by pip at install time, and a size field that lies buys nothing.

* wheel: ``<name>-<version>.dist-info/METADATA`` (kept as the file PEP 658 serves) and PEP
  770 SBOMs under ``.dist-info/sboms/``;
* sdist: ``<name>-<version>/PKG-INFO`` (``.tar.gz`` or ``.zip``).

The metadata's ``Name`` and ``Version`` must agree with the file name (PEP 503 / PEP 440
equality), else 400 ``metadata_mismatch``.
"""

from __future__ import annotations

import itertools
import tarfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.metadata import parse_email
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from services.gateway.packages.domain.errors import (
    ArchiveTooExpanded,
    CorruptArchive,
    InvalidDistribution,
    MetadataMismatch,
)
from services.gateway.packages.domain.filenames import DistFilename
from services.gateway.packages.domain.names import normalize_name, same_version

MiB = 1 << 20
_CHUNK = 1 << 16
_LOCAL_HEADER_SIZE = 30  # fixed part of a zip local file header


@dataclass(frozen=True, kw_only=True)
class ArchiveLimits:
    """Bounds of one archive. The ratio limit applies to entries above ``ratio_floor``
    bytes (a small file of zeros legitimately compresses 1000:1)."""

    max_entries: int = 50_000
    max_expanded_bytes: int = 4096 * MiB
    max_ratio: float = 200.0
    ratio_floor: int = 1 * MiB
    max_metadata_bytes: int = 1 * MiB
    max_sboms: int = 16
    max_sbom_bytes: int = 32 * MiB


@dataclass(frozen=True, kw_only=True)
class CoreMetadata:
    name: str
    version: str
    requires_python: str | None


@dataclass(frozen=True, kw_only=True)
class SbomFile:
    path: str  # inside the archive
    data: bytes


@dataclass(frozen=True, kw_only=True)
class Inspection:
    metadata: CoreMetadata
    # The wheel's METADATA file as it is (PEP 658 serves it beside the wheel); None: sdist.
    metadata_file: bytes | None
    sboms: tuple[SbomFile, ...] = ()


def inspect_distribution(path: Path, dist: DistFilename, limits: ArchiveLimits) -> Inspection:
    """What the distribution at ``path`` says about itself, checked against its file name."""
    if dist.kind == "wheel":
        inspection = _inspect_wheel(path, dist, limits)
    elif dist.suffix == ".zip":
        inspection = _inspect_zip_sdist(path, dist, limits)
    else:
        inspection = _inspect_tar_sdist(path, dist, limits)
    check_agreement(inspection.metadata, dist)
    return inspection


def parse_core_metadata(data: bytes, *, where: str) -> CoreMetadata:
    """Name, Version and Requires-Python of a METADATA / PKG-INFO file (RFC 822 style)."""
    raw, _ = parse_email(data)
    name, version = raw.get("name"), raw.get("version")
    if not name or not version:
        raise InvalidDistribution(f"{where} names no Name or no Version")
    requires_python = raw.get("requires_python")
    if requires_python is not None:
        try:
            SpecifierSet(requires_python)
        except InvalidSpecifier:
            raise InvalidDistribution(
                f"{where}: Requires-Python {requires_python!r} is not a version specifier"
            ) from None
        if len(requires_python) > 200:
            raise InvalidDistribution(f"{where}: Requires-Python is longer than 200 characters")
    return CoreMetadata(name=name, version=version, requires_python=requires_python or None)


def check_agreement(metadata: CoreMetadata, dist: DistFilename) -> None:
    if normalize_name(metadata.name) != dist.normalized_name:
        raise MetadataMismatch(
            f"the file name says {dist.name!r}, its metadata says Name: {metadata.name!r}",
            extra={"filename_name": dist.name, "metadata_name": metadata.name},
        )
    if not same_version(metadata.version, dist.version):
        raise MetadataMismatch(
            f"the file name says version {dist.version!r}, "
            f"its metadata says Version: {metadata.version!r}",
            extra={"filename_version": dist.version, "metadata_version": metadata.version},
        )


# ---- zip (wheels, legacy .zip sdists) ---------------------------------------------------------
def _inspect_wheel(path: Path, dist: DistFilename, limits: ArchiveLimits) -> Inspection:
    with _open_zip(path) as archive:
        infos = _vetted_zip_entries(archive, path, limits)
        dist_info = _the_dist_info(infos, dist)
        metadata_info = infos.get(f"{dist_info}/METADATA")
        if metadata_info is None:
            raise InvalidDistribution(f"the wheel has no {dist_info}/METADATA")
        _check_size(metadata_info.file_size, limits.max_metadata_bytes, "METADATA")
        sbom_infos = [
            info for name, info in infos.items() if name.startswith(f"{dist_info}/sboms/")
        ]
        if len(sbom_infos) > limits.max_sboms:
            raise ArchiveTooExpanded(
                f"the wheel carries {len(sbom_infos)} SBOMs; at most {limits.max_sboms}"
            )
        for info in sbom_infos:
            _check_size(info.file_size, limits.max_sbom_bytes, info.filename)
        wanted = {metadata_info.filename, *(info.filename for info in sbom_infos)}
        contents = _verify_zip_entries(archive, infos.values(), wanted)
    metadata_file = contents[metadata_info.filename]
    return Inspection(
        metadata=parse_core_metadata(metadata_file, where=f"{dist_info}/METADATA"),
        metadata_file=metadata_file,
        sboms=tuple(
            SbomFile(path=info.filename, data=contents[info.filename])
            for info in sorted(sbom_infos, key=lambda i: i.filename)
        ),
    )


def _inspect_zip_sdist(path: Path, dist: DistFilename, limits: ArchiveLimits) -> Inspection:
    with _open_zip(path) as archive:
        infos = _vetted_zip_entries(archive, path, limits)
        found = [info for name, info in infos.items() if _is_top_pkg_info(name)]
        pkg_info = _the_pkg_info([info.filename for info in found], dist)
        info = infos[pkg_info]
        _check_size(info.file_size, limits.max_metadata_bytes, "PKG-INFO")
        contents = _verify_zip_entries(archive, infos.values(), {pkg_info})
    return Inspection(
        metadata=parse_core_metadata(contents[pkg_info], where=pkg_info), metadata_file=None
    )


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise CorruptArchive(f"not a readable zip archive: {exc}") from None


def _vetted_zip_entries(
    archive: zipfile.ZipFile, path: Path, limits: ArchiveLimits
) -> dict[str, zipfile.ZipInfo]:
    """The entries by name, once count, sizes, ratios, names and overlaps passed."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise ArchiveTooExpanded(f"{len(infos)} entries; at most {limits.max_entries}")
    total = 0
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        _check_entry_name(info.filename)
        total += info.file_size
        if total > limits.max_expanded_bytes:
            raise ArchiveTooExpanded(
                f"the entries expand to more than {limits.max_expanded_bytes} bytes"
            )
        if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise ArchiveTooExpanded(
                f"{info.filename!r} expands more than {limits.max_ratio:g} times"
            )
        if info.flag_bits & 0x1:
            raise CorruptArchive(f"{info.filename!r} is encrypted")
        if info.filename in entries:
            raise CorruptArchive(f"two entries are named {info.filename!r}")
        entries[info.filename] = info
    archive_size = path.stat().st_size
    if total > limits.ratio_floor and total > limits.max_ratio * max(archive_size, 1):
        raise ArchiveTooExpanded(f"the archive expands more than {limits.max_ratio:g} times")
    _refuse_overlaps(infos)
    return entries


def _refuse_overlaps(infos: list[zipfile.ZipInfo]) -> None:
    """An entry's span is at least its fixed local header plus its compressed data: another
    header inside it means the entries share data (a zip bomb)."""
    spans = sorted(
        (info.header_offset, info.header_offset + _LOCAL_HEADER_SIZE + info.compress_size)
        for info in infos
    )
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        if next_start < end:
            raise ArchiveTooExpanded("entries overlap (their data is shared)")


def _verify_zip_entries(
    archive: zipfile.ZipFile,
    infos: Iterable[zipfile.ZipInfo],
    keep: set[str],
) -> dict[str, bytes]:
    """Decompress every entry once (zipfile checks each CRC at its end), metered against
    its declared size; returns the contents of the ``keep`` entries."""
    kept: dict[str, bytes] = {}
    for info in infos:
        parts: list[bytes] = []
        size = 0
        try:
            with archive.open(info) as handle:
                while chunk := handle.read(_CHUNK):
                    size += len(chunk)
                    if size > info.file_size:
                        raise ArchiveTooExpanded(
                            f"{info.filename!r} expands beyond its declared size"
                        )
                    if info.filename in keep:
                        parts.append(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
            raise CorruptArchive(f"{info.filename!r} cannot be read: {exc}") from None
        except NotImplementedError as exc:
            raise CorruptArchive(f"{info.filename!r}: {exc}") from None
        if info.filename in keep:
            kept[info.filename] = b"".join(parts)
    return kept


def _the_dist_info(infos: dict[str, zipfile.ZipInfo], dist: DistFilename) -> str:
    """The wheel's ``.dist-info`` directory: the top-level one of its name and version."""
    found = sorted(
        {name.split("/", 1)[0] for name in infos if name.split("/", 1)[0].endswith(".dist-info")}
    )
    matching = [d for d in found if _names_dist(d.removesuffix(".dist-info"), dist)]
    if len(matching) == 1:
        return matching[0]
    if len(found) == 1:
        return found[0]  # its METADATA then says whose it is (metadata_mismatch)
    raise InvalidDistribution(
        f"the wheel has {len(found)} .dist-info directories, {len(matching)} of them its own"
    )


def _names_dist(stem: str, dist: DistFilename) -> bool:
    name, sep, version = stem.rpartition("-")
    return (
        bool(sep)
        and normalize_name(name) == dist.normalized_name
        and (same_version(version, dist.version))
    )


def _is_top_pkg_info(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and parts[1] == "PKG-INFO"


def _the_pkg_info(names: list[str], dist: DistFilename) -> str:
    matching = [n for n in names if _names_dist(n.split("/", 1)[0], dist)]
    if len(matching) == 1:
        return matching[0]
    if len(names) == 1:
        return names[0]
    raise InvalidDistribution(
        f"the sdist has {len(names)} top-level PKG-INFO files, {len(matching)} of them its own"
    )


def _check_size(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise ArchiveTooExpanded(f"{what} is {size} bytes; at most {limit}")


def _check_entry_name(name: str) -> None:
    unified = name.replace("\\", "/")
    if "\x00" in name or unified.startswith("/") or ".." in unified.split("/"):
        raise CorruptArchive(f"unsafe entry name {name!r}")


# ---- tar.gz sdists ----------------------------------------------------------------------------
def _inspect_tar_sdist(path: Path, dist: DistFilename, limits: ArchiveLimits) -> Inspection:
    """One pass over the compressed stream: sizes are checked from each header before its
    data is read (or skipped, which decompresses it too), so a member that claims a
    terabyte is refused before a byte of it is expanded."""
    found: dict[str, bytes] = {}
    total = 0
    count = 0
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            for member in archive:
                count += 1
                if count > limits.max_entries:
                    raise ArchiveTooExpanded(f"more than {limits.max_entries} entries")
                _check_entry_name(member.name)
                total += member.size
                if total > limits.max_expanded_bytes:
                    raise ArchiveTooExpanded(
                        f"the members expand to more than {limits.max_expanded_bytes} bytes"
                    )
                if member.isfile() and _is_top_pkg_info(member.name):
                    _check_size(member.size, limits.max_metadata_bytes, member.name)
                    handle = archive.extractfile(member)
                    found[member.name] = handle.read(member.size) if handle else b""
            _drain(archive)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise CorruptArchive(f"not a readable .tar.gz archive: {exc}") from None
    if total > limits.ratio_floor and total > limits.max_ratio * max(path.stat().st_size, 1):
        raise ArchiveTooExpanded(f"the archive expands more than {limits.max_ratio:g} times")
    if not found:
        raise InvalidDistribution("the sdist has no <name>-<version>/PKG-INFO")
    pkg_info = _the_pkg_info(sorted(found), dist)
    return Inspection(
        metadata=parse_core_metadata(found[pkg_info], where=pkg_info), metadata_file=None
    )


def _drain(archive: tarfile.TarFile) -> None:
    """Read the compressed stream to its end: a truncated or corrupt tail (CRC, length)
    shows only there."""
    fileobj = archive.fileobj
    if fileobj is None:
        return
    while fileobj.read(_CHUNK):
        pass
