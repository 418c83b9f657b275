"""Spool an upload to a temp file while hashing it: the one way bytes enter either backend.

The event loop only gathers chunks; hashing and writing run in a worker thread, a batch of
about a megabyte at a time (hashlib releases the GIL on large buffers), so memory stays at
one batch whatever the upload's size. Any failure, cancellation included, removes the temp
file before the error goes on: nothing half-stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import tempfile
import time
from collections.abc import AsyncIterable
from pathlib import Path
from typing import IO

from shared.artifact_blobs.base import (
    BYTES,
    DIGEST_PREFIX,
    BlobStoreError,
    BlobTooLarge,
    DigestMismatch,
    InvalidDigest,
    Staged,
    StorageFull,
    sha256_hex,
)
from shared.logging import get_logger

log = get_logger(__name__)

BATCH_BYTES = 1024 * 1024
TEMP_PREFIX = "upload-"
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# Temp files older than this are left over from a process that died mid-upload.
STALE_AFTER_SECONDS = 24 * 3600


class _Hashes:
    def __init__(self, *, form_digests: bool) -> None:
        self.sha256 = hashlib.sha256()
        # Only an upload form (twine's md5_digest, blake2_256_digest) needs these two; they
        # cost twice what sha256 does.
        self.md5 = hashlib.md5(usedforsecurity=False) if form_digests else None
        self.blake2b = hashlib.blake2b(digest_size=32) if form_digests else None

    def absorb(self, out: IO[bytes], data: bytes) -> None:
        self.sha256.update(data)
        if self.md5 is not None and self.blake2b is not None:
            self.md5.update(data)
            self.blake2b.update(data)
        out.write(data)


def _open_temp(directory: Path) -> tuple[Path, IO[bytes]]:
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    return Path(name), os.fdopen(fd, "wb")


def _finish(out: IO[bytes]) -> None:
    out.flush()
    # Durable before anyone is told it is staged: commit only links or uploads it.
    os.fsync(out.fileno())
    out.close()


def remove_quietly(path: Path) -> None:
    """Unlink synchronously: it must happen even while the task is being cancelled, and a
    single unlink does not stall the loop."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def spool(
    chunks: AsyncIterable[bytes],
    *,
    directory: Path,
    max_bytes: int,
    expected_sha256: str | None,
    backend: str,
    form_digests: bool = True,
) -> Staged:
    expected = None if expected_sha256 is None else _expected_hex(expected_sha256)
    try:
        path, out = await asyncio.to_thread(_open_temp, directory)
    except OSError as exc:
        if exc.errno in DISK_FULL:
            raise StorageFull("no space left to stage the upload") from None
        raise
    hashes = _Hashes(form_digests=form_digests)
    size = 0
    try:
        batch: list[bytes] = []
        batched = 0
        async for chunk in chunks:
            if not chunk:
                continue
            size += len(chunk)
            if size > max_bytes:
                raise BlobTooLarge(
                    f"the upload exceeds {max_bytes} bytes", extra={"max_bytes": max_bytes}
                )
            batch.append(bytes(chunk))
            batched += len(chunk)
            if batched >= BATCH_BYTES:
                await asyncio.to_thread(hashes.absorb, out, b"".join(batch))
                batch, batched = [], 0
        if batch:
            await asyncio.to_thread(hashes.absorb, out, b"".join(batch))
        await asyncio.to_thread(_finish, out)
    except BaseException as exc:
        with contextlib.suppress(OSError):  # a full disk fails the close's flush too
            out.close()
        remove_quietly(path)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise StorageFull("no space left to stage the upload") from None
        raise
    actual = hashes.sha256.hexdigest()
    if expected is not None and actual != expected:
        remove_quietly(path)
        raise DigestMismatch(
            f"the content's sha256 is {actual}, not the declared {expected}",
            extra={"expected": DIGEST_PREFIX + expected, "actual": DIGEST_PREFIX + actual},
        )
    BYTES.labels(backend, "staged").inc(size)
    return Staged(
        path=path,
        digest=DIGEST_PREFIX + actual,
        size=size,
        md5=None if hashes.md5 is None else hashes.md5.hexdigest(),
        blake2b_256=None if hashes.blake2b is None else hashes.blake2b.hexdigest(),
    )


def _expected_hex(declared: str) -> str:
    try:
        return sha256_hex(declared)
    except InvalidDigest:
        raise DigestMismatch(
            f"the declared sha256 {declared[:80]!r} is not 64 hex digits"
        ) from None


def check_staged(staged: Staged, directory: Path) -> None:
    """A staged upload handed back must be one of ours: a file in the staging directory."""
    if staged.path.parent != directory or not staged.path.name.startswith(TEMP_PREFIX):
        raise BlobStoreError(f"not a staged upload of this store: {staged.path}")


def sweep_stale(directory: Path, *, now: float | None = None) -> int:
    """Remove temp files a crashed process left behind (run in a thread); returns how many."""
    cutoff = (time.time() if now is None else now) - STALE_AFTER_SECONDS
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        with contextlib.suppress(FileNotFoundError):
            if entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed += 1
    if removed:
        log.info("artifact_staging_swept", directory=str(directory), removed=removed)
    return removed


class StagingArea:
    """The staging half of both backends: uploads spool into ``staging_dir`` (leftovers of a
    crash are swept on the first upload)."""

    backend: str
    staging_dir: Path
    _swept: bool = False

    async def stage(
        self,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        expected_sha256: str | None = None,
        form_digests: bool = True,
    ) -> Staged:
        if not self._swept:
            self._swept = True
            await asyncio.to_thread(sweep_stale, self.staging_dir)
        return await spool(
            chunks,
            directory=self.staging_dir,
            max_bytes=max_bytes,
            expected_sha256=expected_sha256,
            backend=self.backend,
            form_digests=form_digests,
        )
