"""Artifact blobs as files: ``<root>/sha256/ab/cd/<hex>``, the embedded default (under the
data dir).

An upload is staged in ``<root>/staging`` (the same filesystem), fsynced, then published with
``os.link``: atomic, and it never replaces an existing blob, so concurrent commits of the same
content store it once and exactly one of them reports it new. Every file operation runs in a
worker thread; the event loop never waits on the disk. A reader that has opened a blob keeps
reading it even if it is deleted meanwhile (POSIX unlink semantics).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from shared.artifact_blobs.base import (
    BYTES,
    READ_CHUNK_BYTES,
    BlobMissing,
    BlobStoreError,
    Staged,
    StorageFull,
    check_range,
    sha256_hex,
)
from shared.artifact_blobs.staging import (
    DISK_FULL,
    StagingArea,
    check_staged,
    remove_quietly,
)

BACKEND = "filesystem"
# Published blobs are never written again: read-only for the owner and its group.
BLOB_MODE = 0o440
# Filesystems that cannot hard-link (some network and FUSE mounts) get a rename instead.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV}


class FilesystemBlobStore(StagingArea):
    backend = BACKEND

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging_dir = root / "staging"
        self._blobs = root / "sha256"

    def __repr__(self) -> str:
        return f"FilesystemBlobStore({str(self.root)!r})"

    def path_of(self, digest: str) -> Path:
        hex_ = sha256_hex(digest)
        return self._blobs / hex_[:2] / hex_[2:4] / hex_

    async def commit(self, staged: Staged) -> bool:
        """Store by digest; True if it was not stored before. The temp file is gone
        afterwards, also when this fails (discard after a failed commit is harmless)."""
        check_staged(staged, self.staging_dir)
        try:
            created = await asyncio.to_thread(self._publish, staged)
        except OSError as exc:
            if exc.errno in DISK_FULL:
                raise StorageFull("no space left to store the artifact") from None
            raise
        finally:
            remove_quietly(staged.path)
        if created:
            BYTES.labels(BACKEND, "committed").inc(staged.size)
        return created

    def _publish(self, staged: Staged) -> bool:
        final = self.path_of(staged.digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(staged.path, BLOB_MODE)
        except FileNotFoundError:
            raise BlobStoreError(
                "the staged upload is gone (already committed or discarded)"
            ) from None
        try:
            os.link(staged.path, final)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            if final.exists():
                return False
            # Same content under the same name: a concurrent replace is harmless.
            os.replace(staged.path, final)
        _fsync_directory(final.parent)
        return True

    async def discard(self, staged: Staged) -> None:
        check_staged(staged, self.staging_dir)
        remove_quietly(staged.path)

    async def size(self, digest: str) -> int | None:
        path = self.path_of(digest)
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            return None

    async def read(
        self, digest: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        check_range(start, end)
        path = self.path_of(digest)
        try:
            handle = await asyncio.to_thread(_open_at, path, start)
        except FileNotFoundError:
            raise BlobMissing(f"no blob {sha256_hex(digest)}") from None
        try:
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                want = READ_CHUNK_BYTES if remaining is None else min(READ_CHUNK_BYTES, remaining)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                BYTES.labels(BACKEND, "read").inc(len(chunk))
                yield chunk
        finally:
            handle.close()

    async def open_blob(self, digest: str, *, preload_max: int = 0) -> OpenBlob:
        """The blob as an open file and its size, and its bytes too when it is at most
        ``preload_max`` long: one trip to a worker thread, for a caller that sends the file
        itself (``sendfile``). Once open it stays readable even if deleted meanwhile; the
        caller closes it."""
        path = self.path_of(digest)
        try:
            blob = await asyncio.to_thread(_open_blob, path, preload_max)
        except FileNotFoundError:
            raise BlobMissing(f"no blob {sha256_hex(digest)}") from None
        if blob.data is not None:
            BYTES.labels(BACKEND, "read").inc(blob.size)
        return blob

    async def delete(self, digest: str) -> None:
        path = self.path_of(digest)
        await asyncio.to_thread(_unlink_missing_ok, path)

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class OpenBlob:
    file: IO[bytes]
    size: int
    # The whole content, when it was small enough to read along with the open.
    data: bytes | None

    def close(self) -> None:
        self.file.close()


def _open_blob(path: Path, preload_max: int) -> OpenBlob:
    handle = path.open("rb")
    try:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read() if size <= preload_max else None
    except BaseException:
        handle.close()
        raise
    if data is not None and len(data) != size:  # never: blobs are not written again
        handle.close()
        raise BlobStoreError(f"{path.name} changed size while read")
    return OpenBlob(file=handle, size=size, data=data)


def _open_at(path: Path, start: int) -> IO[bytes]:
    handle = path.open("rb")
    try:
        handle.seek(start)
    except BaseException:
        handle.close()
        raise
    return handle


def _unlink_missing_ok(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _fsync_directory(directory: Path) -> None:
    """Make the new name durable, not only the bytes behind it."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
