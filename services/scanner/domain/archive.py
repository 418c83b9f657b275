"""Safe reading of uploaded zip archives.

Every entry is vetted from the central directory before a byte is decompressed: path
traversal, symlinks and special files, encryption, entry count, declared sizes, compression
ratio and overlapping entries (the "better zip bomb") are refused with an ``ArchiveError``
whose ``code`` is stable. Reads are then metered against the *actual* decompressed bytes, so
a lying size field cannot buy more than the limits. Nested archives are never expanded:
an inner ``.zip`` is just a file.
"""

from __future__ import annotations

import io
import itertools
import re
import stat
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from .errors import ArchiveError, archive_error

_DRIVE = re.compile(r"^[A-Za-z]:")
_SUPPORTED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_LOCAL_HEADER_SIZE = 30  # fixed part of a local file header, before name and extra field
_CHUNK = 1 << 16
MiB = 1 << 20


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Limits on one archive. The ratio limit applies to entries above ``ratio_floor`` bytes
    (a small file of zeros legitimately compresses 1000:1)."""

    max_entries: int = 20_000
    max_total_size: int = 1024 * MiB
    max_entry_size: int = 256 * MiB
    max_ratio: float = 200.0
    ratio_floor: int = 1 * MiB
    max_path_length: int = 1024
    max_depth: int = 64


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    path: str  # normalised: "/"-separated, relative, no "." segments
    size: int  # declared uncompressed size
    compressed_size: int


def normalise_entry_path(name: str, limits: ArchiveLimits) -> str | None:
    """The safe relative path of an entry, None for a directory entry; raises
    ``archive_path_traversal`` / ``archive_invalid`` for names that could escape."""
    if "\x00" in name:
        raise archive_error(
            "archive_invalid", "entry name contains a NUL byte", location=repr(name)
        )
    if len(name) > limits.max_path_length:
        raise archive_error(
            "archive_invalid",
            f"entry name longer than {limits.max_path_length} characters",
            location=name[:100],
        )
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        raise archive_error("archive_path_traversal", "absolute entry path", location=name)
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise archive_error("archive_path_traversal", "entry path contains '..'", location=name)
    if len(parts) > limits.max_depth:
        raise archive_error(
            "archive_invalid", f"entry nested deeper than {limits.max_depth} levels", location=name
        )
    if unified.endswith("/") or not parts:
        return None
    return "/".join(parts)


class SafeZip:
    """A vetted zip archive. ``open`` refuses the archive as a whole or not at all."""

    def __init__(
        self, archive: zipfile.ZipFile, entries: dict[str, zipfile.ZipInfo], limits: ArchiveLimits
    ):
        self._zip = archive
        self._infos = entries
        self.limits = limits
        self._read_total = 0
        self.entries = tuple(
            ArchiveEntry(path, info.file_size, info.compress_size) for path, info in entries.items()
        )

    @classmethod
    def open(cls, data: bytes | BinaryIO, limits: ArchiveLimits | None = None) -> SafeZip:
        limits = limits or ArchiveLimits()
        stream = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
        try:
            archive = zipfile.ZipFile(stream)
            infos = archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise archive_error("archive_invalid", f"not a readable zip archive: {exc}") from None
        if len(infos) > limits.max_entries:
            raise archive_error(
                "archive_too_many_entries",
                f"{len(infos)} entries; at most {limits.max_entries} are accepted",
            )
        entries: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            path = normalise_entry_path(info.filename, limits)
            _vet_entry(info, limits)
            if path is None:
                continue
            if path in entries:
                raise archive_error(
                    "archive_invalid", "two entries have the same path", location=path
                )
            entries[path] = info
            total += info.file_size
            if total > limits.max_total_size:
                raise archive_error(
                    "archive_too_large",
                    f"uncompressed content exceeds {limits.max_total_size} bytes",
                    location=path,
                )
        _refuse_overlaps(infos)
        return cls(archive, entries, limits)

    def __contains__(self, path: str) -> bool:
        return path in self._infos

    def read(self, path: str) -> bytes:
        """The content of one entry, metered against the entry and archive limits."""
        info = self._infos.get(path)
        if info is None:
            raise KeyError(path)
        budget = min(info.file_size, self.limits.max_entry_size)
        remaining_total = self.limits.max_total_size - self._read_total
        chunks: list[bytes] = []
        size = 0
        try:
            with self._zip.open(info) as handle:
                while chunk := handle.read(_CHUNK):
                    size += len(chunk)
                    if size > budget:
                        raise archive_error(
                            "archive_bomb",
                            "entry decompresses to more than its declared size",
                            location=path,
                        )
                    if size > remaining_total:
                        raise archive_error(
                            "archive_too_large",
                            f"uncompressed content exceeds {self.limits.max_total_size} bytes",
                            location=path,
                        )
                    chunks.append(chunk)
        except ArchiveError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
            raise archive_error(
                "archive_invalid", f"entry cannot be read: {exc}", location=path
            ) from None
        self._read_total += size
        return b"".join(chunks)

    def close(self) -> None:
        self._zip.close()


def _vet_entry(info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    name = info.filename
    mode = info.external_attr >> 16
    file_type = stat.S_IFMT(mode) if info.create_system == 3 else 0  # Unix attributes only
    if file_type == stat.S_IFLNK:
        raise archive_error("archive_symlink", "symbolic links are not accepted", location=name)
    if file_type not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no type recorded (plain file)
        raise archive_error(
            "archive_invalid", "special files (devices, FIFOs) are not accepted", location=name
        )
    if info.flag_bits & 0x1:
        raise archive_error(
            "archive_encrypted", "encrypted entries are not accepted", location=name
        )
    if info.compress_type not in _SUPPORTED_METHODS:
        raise archive_error(
            "archive_invalid", f"unsupported compression method {info.compress_type}", location=name
        )
    if info.file_size > limits.max_entry_size:
        raise archive_error(
            "archive_too_large",
            f"entry of {info.file_size} bytes; at most {limits.max_entry_size} per entry",
            location=name,
        )
    if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(
        info.compress_size, 1
    ):
        raise archive_error(
            "archive_bomb",
            f"compression ratio above {limits.max_ratio:g}:1",
            location=name,
        )


def _refuse_overlaps(infos: list[zipfile.ZipInfo]) -> None:
    """Entries whose data overlap reuse one compressed stream many times: a zip bomb.

    An entry's span is at least its fixed local header plus its compressed data (the name
    and extra field only make it longer), so a header inside that span is an overlap."""
    spans = sorted(
        (
            info.header_offset,
            info.header_offset + _LOCAL_HEADER_SIZE + info.compress_size,
            info.filename,
        )
        for info in infos
    )
    for (_, end, name), (next_start, _, next_name) in itertools.pairwise(spans):
        if next_start < end:
            raise archive_error(
                "archive_bomb", f"entries {name!r} and {next_name!r} overlap", location=next_name
            )
