"""What every artifact blob store shares: its errors, the staged upload, the protocol, digests
and metrics. The backends (``filesystem``, ``s3``) import from here; callers import from the
package."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prometheus_client import Counter

from shared.errors import (
    BadRequest,
    GatehouseError,
    NotFound,
    PayloadTooLarge,
    UpstreamUnavailable,
)

DIGEST_PREFIX = "sha256:"
_HEX = re.compile(r"[0-9a-f]{64}")
# Chunks read() yields: large enough that a 2 GiB download is ~8,000 of them, small enough
# that a slow client holds little.
READ_CHUNK_BYTES = 256 * 1024


class BlobTooLarge(PayloadTooLarge):
    code, status, title = "artifact_too_large", 413, "Artifact too large"


class DigestMismatch(BadRequest):
    code, status, title = "digest_mismatch", 400, "Content does not match its declared digest"


class InvalidDigest(BadRequest):
    code, status, title = "invalid_digest", 400, "Not a sha256 digest"


class BlobMissing(NotFound):
    code, status, title = "blob_not_found", 404, "No stored content with that digest"


class BlobStoreUnavailable(UpstreamUnavailable):
    code, title = "artifact_store_unavailable", "The artifact store is unavailable"


class StorageFull(GatehouseError):
    """The disk that stages (or, for the filesystem store, keeps) uploads is full."""

    code, status, title = "artifact_storage_full", 507, "No space left for the artifact"


class BlobStoreError(GatehouseError):
    """The store refused in a way no retry fixes (credentials, a missing bucket, a staged
    upload that is gone): an operator's problem, a 500 that names it."""

    code, status, title = "artifact_store_error", 500, "The artifact store refused the request"


@dataclass(frozen=True)
class Staged:
    """An upload spooled to a temp file under the store's staging directory, hashed, not yet
    stored. ``commit`` stores it by digest, ``discard`` drops it; either removes the file."""

    path: Path
    digest: str  # "sha256:<hex>"
    size: int
    # What twine sends beside the file (md5_digest, blake2_256_digest) and PyPI checks;
    # None when staged without ``form_digests``.
    md5: str | None
    blake2b_256: str | None

    @property
    def sha256(self) -> str:
        return self.digest.removeprefix(DIGEST_PREFIX)


class ArtifactBlobStore(Protocol):
    """Content-addressed, streamed storage of artifact bytes. Nothing is held whole in
    memory; a failed upload leaves nothing behind."""

    async def stage(
        self,
        chunks: AsyncIterable[bytes],
        *,
        max_bytes: int,
        expected_sha256: str | None = None,
        form_digests: bool = True,
    ) -> Staged: ...

    async def commit(self, staged: Staged) -> bool: ...

    async def discard(self, staged: Staged) -> None: ...

    async def size(self, digest: str) -> int | None: ...

    def read(
        self, digest: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]: ...

    async def delete(self, digest: str) -> None: ...

    async def close(self) -> None: ...


def sha256_hex(digest: str) -> str:
    """The lower-case hex of ``sha256:<hex>`` or of bare hex; :class:`InvalidDigest`
    otherwise (which also keeps anything but 64 hex characters out of paths and keys)."""
    text = digest.strip()
    if text[: len(DIGEST_PREFIX)].lower() == DIGEST_PREFIX:
        text = text[len(DIGEST_PREFIX) :]
    text = text.lower()
    if not _HEX.fullmatch(text):
        raise InvalidDigest(f"not a sha256 digest: {digest[:80]!r}")
    return text


def check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"bad byte range [{start}, {end})")


BYTES = Counter(
    "gatehouse_artifact_blob_bytes_total",
    "Artifact bytes staged (uploads), committed (newly stored) and read (downloads)",
    ["backend", "operation"],
)
FAILURES = Counter(
    "gatehouse_artifact_blob_failures_total",
    "Artifact store operations that failed, by error code",
    ["backend", "operation", "code"],
)
