"""The artifact blob store: the bytes of registry artifacts (wheels, sdists, generic files),
content-addressed by sha256 and streamed, never held whole in memory.

Two backends behind one protocol (:class:`ArtifactBlobStore`): files under the data dir (the
embedded default) and an S3-compatible object store. Either stages an upload on local disk
while hashing it, so a declared digest or size limit is checked before anything is stored::

    store = open_artifact_blobs(settings)
    staged = await store.stage(request.content.iter_chunked(65536),
                               max_bytes=settings.artifact_max_upload_bytes,
                               expected_sha256=declared)      # DigestMismatch, BlobTooLarge
    created = await store.commit(staged)                      # or: await store.discard(staged)
    async for chunk in store.read(staged.digest, start=0, end=None): ...

Not to be confused with :mod:`shared.blobs`, the JetStream object store of SBOMs and other
evidence that events point to.
"""

from __future__ import annotations

from pathlib import Path

from shared.artifact_blobs.base import (
    DIGEST_PREFIX,
    READ_CHUNK_BYTES,
    ArtifactBlobStore,
    BlobMissing,
    BlobStoreError,
    BlobStoreUnavailable,
    BlobTooLarge,
    DigestMismatch,
    InvalidDigest,
    Staged,
    StorageFull,
    sha256_hex,
)
from shared.artifact_blobs.filesystem import FilesystemBlobStore, OpenBlob
from shared.artifact_blobs.s3 import S3BlobStore
from shared.artifact_blobs.sigv4 import Credentials
from shared.settings import Settings

__all__ = [
    "DIGEST_PREFIX",
    "READ_CHUNK_BYTES",
    "ArtifactBlobStore",
    "BlobMissing",
    "BlobStoreError",
    "BlobStoreUnavailable",
    "BlobTooLarge",
    "DigestMismatch",
    "FilesystemBlobStore",
    "InvalidDigest",
    "OpenBlob",
    "S3BlobStore",
    "Staged",
    "StorageFull",
    "artifact_dir_of",
    "open_artifact_blobs",
    "sha256_hex",
]


def artifact_dir_of(settings: Settings) -> Path:
    return Path(settings.artifact_dir or Path(settings.data_dir) / "artifacts")


def open_artifact_blobs(settings: Settings) -> ArtifactBlobStore:
    """The store ``settings`` name. Opens nothing yet (no I/O): directories are made by the
    first upload and the S3 connection pool by the first request; ``close()`` it on shutdown."""
    root = artifact_dir_of(settings)
    if settings.artifact_store == "s3":
        return S3BlobStore(
            endpoint_url=settings.s3_endpoint_url,
            bucket=settings.s3_bucket,
            credentials=Credentials(
                access_key_id=settings.s3_access_key_id,
                secret_access_key=settings.s3_secret_access_key,
                region=settings.s3_region,
            ),
            prefix=settings.s3_prefix,
            staging_dir=root / "staging",
            part_bytes=settings.s3_multipart_part_bytes,
        )
    return FilesystemBlobStore(root)
