"""The artifact blob store: package files by SHA-256, streamed, never whole in memory.

PLACEHOLDER of the ``pypi`` branch: a minimal filesystem implementation of the API the
blob-store branch provides (``fs`` and ``S3`` backends), so that the package protocols can
be built and tested before it lands. The lead replaces this module at merge; keep the
names and the behaviour below identical.

An upload is *staged* into a temporary file while its digests are computed (and
``max_bytes`` / ``expected_sha256`` are enforced), then *committed* under its digest
(``True``: newly stored, ``False``: the content was there already) or *discarded*.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import pathlib
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from shared.errors import GatehouseError, NotFound
from shared.settings import Settings

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
READ_CHUNK = 256 * 1024


class BlobTooLarge(GatehouseError):
    code, status, title = "artifact_too_large", 413, "The artifact exceeds the size limit"


class DigestMismatch(GatehouseError):
    code, status, title = "digest_mismatch", 400, "The content does not match its declared digest"


class BlobMissing(NotFound):
    code, title = "blob_missing", "The artifact's content is not stored"


@dataclass(frozen=True)
class Staged:
    path: pathlib.Path
    digest: str  # sha256:<hex>
    size: int
    md5: str = ""
    blake2_256: str = ""


class ArtifactBlobStore(Protocol):
    async def stage(
        self,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        expected_sha256: str | None = None,
    ) -> Staged: ...

    async def commit(self, staged: Staged) -> bool: ...

    async def discard(self, staged: Staged) -> None: ...

    async def size(self, digest: str) -> int | None: ...

    def read(
        self, digest: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]: ...

    async def delete(self, digest: str) -> None: ...

    async def close(self) -> None: ...


def _hex_of(digest: str) -> str:
    match = _DIGEST.match(digest)
    if match is None:
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return match.group(1)


class FilesystemBlobs:
    """Blobs under ``<root>/sha256/<2 hex>/<hex>``; staging files under ``<root>/staging``."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root
        self._staging = root / "staging"

    def _path(self, digest: str) -> pathlib.Path:
        hex_ = _hex_of(digest)
        return self.root / "sha256" / hex_[:2] / hex_

    async def stage(
        self,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        expected_sha256: str | None = None,
    ) -> Staged:
        await asyncio.to_thread(self._staging.mkdir, parents=True, exist_ok=True)
        path = self._staging / uuid.uuid4().hex
        sha256, md5, blake = hashlib.sha256(), hashlib.md5(), hashlib.blake2b(digest_size=32)
        size = 0
        handle = await asyncio.to_thread(path.open, "wb")
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise BlobTooLarge(f"the artifact exceeds the limit of {max_bytes} bytes")
                sha256.update(chunk)
                md5.update(chunk)
                blake.update(chunk)
                await asyncio.to_thread(handle.write, chunk)
            await asyncio.to_thread(handle.close)
        except BaseException:
            handle.close()
            path.unlink(missing_ok=True)
            raise
        digest = "sha256:" + sha256.hexdigest()
        if expected_sha256 is not None and expected_sha256.removeprefix("sha256:") != digest[7:]:
            path.unlink(missing_ok=True)
            raise DigestMismatch(
                f"the content's sha256 is {digest[7:]}, not the declared "
                f"{expected_sha256.removeprefix('sha256:')}"
            )
        return Staged(
            path=path, digest=digest, size=size, md5=md5.hexdigest(), blake2_256=blake.hexdigest()
        )

    async def commit(self, staged: Staged) -> bool:
        final = self._path(staged.digest)

        def move() -> bool:
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(staged.path, final)
            except FileExistsError:
                return False
            finally:
                staged.path.unlink(missing_ok=True)
            return True

        return await asyncio.to_thread(move)

    async def discard(self, staged: Staged) -> None:
        await asyncio.to_thread(staged.path.unlink, missing_ok=True)

    async def size(self, digest: str) -> int | None:
        try:
            return (await asyncio.to_thread(self._path(digest).stat)).st_size
        except FileNotFoundError:
            return None

    async def read(
        self, digest: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive; None: the end) of the blob."""
        try:
            handle = await asyncio.to_thread(self._path(digest).open, "rb")
        except FileNotFoundError:
            raise BlobMissing(f"no blob {digest}") from None
        try:
            await asyncio.to_thread(handle.seek, start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                want = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def delete(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._path(digest).unlink)

    async def close(self) -> None:
        return None


def open_artifact_blobs(settings: Settings) -> ArtifactBlobStore:
    return FilesystemBlobs(pathlib.Path(settings.data_dir) / "artifacts")
