"""Content-addressed blobs in the stream's object store, over a real NATS server."""

from __future__ import annotations

import os

import pytest

from shared.blobs import BlobCorrupted, BlobStore, bucket_for, digest_of, is_digest
from shared.bus import Bus
from shared.errors import NotFound
from shared.settings import Settings


async def test_put_get_roundtrip_large_and_idempotent(settings: Settings) -> None:
    bus = await Bus.connect(settings, name="test-blobs")
    try:
        await bus.ensure_stream()
        store = await BlobStore.open(bus)
        again = await BlobStore.open(bus)  # opening an existing bucket is fine
        assert store.bucket == again.bucket == bucket_for(settings.stream_name)
        data = os.urandom(3 * 1024 * 1024 + 17)  # several chunks, not a multiple of one
        digest = await store.put(data)
        assert digest == digest_of(data) and is_digest(digest)
        assert await store.put(data) == digest
        assert await again.get(digest) == data
        assert await store.exists(digest)
        assert await store.put(b"") == digest_of(b"")
        assert await store.get(digest_of(b"")) == b""
    finally:
        await bus.close()


async def test_unknown_and_malformed_digests(settings: Settings) -> None:
    bus = await Bus.connect(settings, name="test-blobs")
    try:
        await bus.ensure_stream()
        store = await BlobStore.open(bus)
        missing = digest_of(b"never stored")
        assert not await store.exists(missing)
        with pytest.raises(NotFound):
            await store.get(missing)
        with pytest.raises(ValueError):
            await store.get("md5:abc")
    finally:
        await bus.close()


async def test_content_that_does_not_match_its_name_is_refused(settings: Settings) -> None:
    bus = await Bus.connect(settings, name="test-blobs")
    try:
        await bus.ensure_stream()
        store = await BlobStore.open(bus)
        claimed = digest_of(b"what the name promises")
        raw = await bus.js.object_store(store.bucket)
        await raw.put(claimed.replace(":", "-"), b"something else")
        with pytest.raises(BlobCorrupted):
            await store.get(claimed)
    finally:
        await bus.close()


async def test_reads_leave_no_consumer_behind(settings: Settings) -> None:
    bus = await Bus.connect(settings, name="test-blobs")
    try:
        await bus.ensure_stream()
        store = await BlobStore.open(bus)
        data = os.urandom(40 * 512 * 1024 + 1)  # more chunks than one pull request asks for
        digest = await store.put(data)
        for _ in range(3):
            assert await store.get(digest) == data
        info = await bus.js.stream_info(f"OBJ_{store.bucket}")
        assert info.state.consumer_count == 0
    finally:
        await bus.close()
