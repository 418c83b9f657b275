"""The file trees lockfile readers work over.

A reader sees only relative ``/``-separated paths and bytes, so the same readers scan a dict
(tests), an uploaded zip (``ZipTree``) and, later, a git commit read with pygit2 without a
checkout: anything with ``walk``, ``read`` and ``size``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping
from typing import BinaryIO, Protocol

from ..archive import ArchiveLimits, SafeZip


class FileTree(Protocol):
    def walk(self) -> Iterator[str]:
        """Relative paths of every regular file, ``/``-separated, in a stable order."""
        ...

    def read(self, path: str) -> bytes:
        """The content of ``path``; ``KeyError`` when there is no such file."""
        ...

    def size(self, path: str) -> int:
        """The size of ``path`` in bytes without reading it; ``KeyError`` when absent."""
        ...


def sibling(path: str, name: str) -> str:
    """The path of ``name`` in the directory of ``path``."""
    directory = posixpath.dirname(path)
    return f"{directory}/{name}" if directory else name


def read_optional(tree: FileTree, path: str) -> bytes | None:
    try:
        return tree.read(path)
    except KeyError:
        return None


class DictTree:
    """A tree held in memory: ``{"dir/package-lock.json": b"..."}``."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        self._files = dict(files)

    def walk(self) -> Iterator[str]:
        return iter(sorted(self._files))

    def read(self, path: str) -> bytes:
        return self._files[path]

    def size(self, path: str) -> int:
        return len(self._files[path])


class ZipTree:
    """A tree over an uploaded zip archive, vetted by ``SafeZip`` when opened: traversal,
    symlinks, encryption and bombs are refused before anything is read."""

    def __init__(self, archive: SafeZip) -> None:
        self._archive = archive
        self._sizes = {entry.path: entry.size for entry in archive.entries}

    @classmethod
    def open(cls, data: bytes | BinaryIO, limits: ArchiveLimits | None = None) -> ZipTree:
        return cls(SafeZip.open(data, limits))

    def walk(self) -> Iterator[str]:
        return iter(sorted(self._sizes))

    def read(self, path: str) -> bytes:
        return self._archive.read(path)

    def size(self, path: str) -> int:
        return self._sizes[path]

    def close(self) -> None:
        self._archive.close()
