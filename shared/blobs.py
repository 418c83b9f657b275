"""Content-addressed blobs (uploaded SBOMs, source archives, advisory dumps, scan results) in
a JetStream object store beside the event stream.

Events stay small and carry a blob's digest; the bytes live here, named by their SHA-256, so
they are immutable and a replay from sequence 0 reads exactly what the first run read.
The bucket is named after the stream (``<stream>_BLOBS``): whatever holds the events holds
the evidence they point to, and an isolated stream (a test's) gets an isolated bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ObjectInfo,
    ObjectMeta,
    ObjectMetaOptions,
    ObjectStoreConfig,
    StorageType,
)
from nats.js.object_store import ObjectStore

from shared.bus import Bus
from shared.errors import GatehouseError, NotFound, UpstreamUnavailable

DIGEST_PREFIX = "sha256:"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Chunks of the object store: large enough to keep the per-chunk overhead low, well under
# the server's default max_payload (1 MiB).
CHUNK_BYTES = 512 * 1024
# Chunks asked for per pull request when reading a blob back (a 64 MiB upload is 128).
FETCH_CHUNKS = 32
# How long one pull request may wait for its chunks before the read counts as failed.
FETCH_TIMEOUT_SECONDS = 10.0


class BlobCorrupted(GatehouseError):
    code, status, title = "blob_corrupted", 500, "Stored content does not match its digest"


def digest_of(data: bytes) -> str:
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def is_digest(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None


def bucket_for(stream: str) -> str:
    return f"{stream}_BLOBS"


def _object_name(digest: str) -> str:
    if not is_digest(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest.replace(":", "-")


class BlobStore:
    """Put and get immutable blobs by digest; ``put`` of existing content stores nothing."""

    def __init__(self, store: ObjectStore, bucket: str, js: JetStreamContext) -> None:
        self._store = store
        self._js = js
        self.bucket = bucket
        self._create_lock = asyncio.Lock()

    @classmethod
    async def open(cls, bus: Bus) -> BlobStore:
        """The stream's blob bucket, created on first use (idempotent across replicas)."""
        bucket = bucket_for(bus.stream)
        try:
            try:
                store = await bus.js.object_store(bucket)
            except nats.js.errors.BucketNotFoundError:
                config = ObjectStoreConfig(
                    description="Gatehouse evidence blobs by SHA-256 (SBOMs, archives, results)",
                    storage=StorageType.FILE,
                    replicas=bus.settings.stream_replicas,
                )
                try:
                    store = await bus.js.create_object_store(bucket, config=config)
                except nats.js.errors.BadRequestError:
                    store = await bus.js.object_store(bucket)  # created concurrently
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise UpstreamUnavailable(f"blob store unavailable: {type(exc).__name__}") from exc
        return cls(store, bucket, bus.js)

    async def exists(self, digest: str) -> bool:
        try:
            await self._store.get_info(_object_name(digest))
        except nats.js.errors.ObjectNotFoundError:
            return False
        except nats.js.errors.ObjectDeletedError:
            return False
        return True

    async def digests(self) -> list[str]:
        """The digest of every blob stored (deleted ones excluded)."""
        try:
            infos = await self._store.list(ignore_deletes=True)
        except nats.js.errors.NotFoundError:  # an empty bucket has nothing to list
            return []
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise UpstreamUnavailable(f"blob store unavailable: {type(exc).__name__}") from exc
        return [
            info.name.replace("-", ":", 1)
            for info in infos
            if is_digest(info.name.replace("-", ":", 1))
        ]

    async def put(self, data: bytes) -> str:
        """Store ``data``; returns its digest. Content already stored is not sent again."""
        digest = digest_of(data)
        if await self.exists(digest):
            return digest
        try:
            name = _object_name(digest)
            meta = ObjectMeta(name=name, options=ObjectMetaOptions(max_chunk_size=CHUNK_BYTES))
            await self._store.put(name, data, meta=meta)
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise UpstreamUnavailable(f"blob store unavailable: {type(exc).__name__}") from exc
        return digest

    async def delete(self, digest: str) -> None:
        """Remove a blob; absent is fine. Only for content nothing refers to yet: an
        artifact upload that stored the SBOMs it carries and was then refused."""
        try:
            await self._store.delete(_object_name(digest))
        except (nats.js.errors.ObjectNotFoundError, nats.js.errors.ObjectDeletedError):
            return
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise UpstreamUnavailable(f"blob store unavailable: {type(exc).__name__}") from exc

    async def get(self, digest: str) -> bytes:
        """The bytes of ``digest``; NotFound when absent, BlobCorrupted when they differ."""
        try:
            info = await self._store.get_info(_object_name(digest))
            data = await self._read_chunks(info)
        except (nats.js.errors.ObjectNotFoundError, nats.js.errors.ObjectDeletedError):
            raise NotFound(f"no blob {digest}") from None
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
            raise UpstreamUnavailable(f"blob store unavailable: {type(exc).__name__}") from exc
        if digest_of(data) != digest:
            raise BlobCorrupted(f"blob {digest} does not match its content")
        return data

    async def _read_chunks(self, info: ObjectInfo) -> bytes:
        """The object's chunks, in order, through an ephemeral pull consumer.

        The client's own ``ObjectStore.get`` reads through an ordered push consumer whose
        flow control stalls ~250 ms every 2 MB (6 MB took 0.5 s); pulling the chunks in
        batches reads the same 6 MB in ~20 ms. The digest of the whole is checked by the
        caller, so a chunk missing or out of place cannot go unnoticed.
        """
        if not info.size or not info.chunks:
            return b""
        subject = f"$O.{self.bucket}.C.{info.nuid}"
        sub = await self._js.pull_subscribe(
            subject,
            stream=f"OBJ_{self.bucket}",
            config=ConsumerConfig(ack_policy=AckPolicy.NONE, inactive_threshold=30.0),
        )
        parts: list[bytes] = []
        try:
            while len(parts) < info.chunks:
                batch = min(FETCH_CHUNKS, info.chunks - len(parts))
                msgs = await sub.fetch(batch, timeout=FETCH_TIMEOUT_SECONDS)
                parts.extend(msg.data for msg in msgs)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            # Ephemeral: the server would drop it after inactive_threshold anyway.
            with contextlib.suppress(Exception):
                await self._js.delete_consumer(f"OBJ_{self.bucket}", sub._consumer)
        return b"".join(parts)
