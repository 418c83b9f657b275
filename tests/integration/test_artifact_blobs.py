"""The artifact blob store's contract, run against both backends: files in a temp dir, and S3
as moto's server speaks it (signatures checked). Then what only one backend has: the
filesystem's layout and leftovers, S3's multipart uploads, errors and a second client
(boto3) reading what we wrote and writing what we read.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from aiohttp import web

from shared.artifact_blobs import (
    READ_CHUNK_BYTES,
    ArtifactBlobStore,
    BlobMissing,
    BlobStoreError,
    BlobStoreUnavailable,
    BlobTooLarge,
    DigestMismatch,
    FilesystemBlobStore,
    InvalidDigest,
    S3BlobStore,
    Staged,
    StorageFull,
    artifact_dir_of,
    open_artifact_blobs,
)
from shared.artifact_blobs import s3 as s3_module
from shared.artifact_blobs import staging as staging_module
from shared.artifact_blobs.sigv4 import Credentials
from shared.artifact_blobs.staging import STALE_AFTER_SECONDS
from shared.embedded import free_port
from shared.settings import load_settings
from tests.integration.artifact_blobs_support import MotoS3, moto_s3_server

BUCKET = "gatehouse-artifacts"
MIB = 1024 * 1024
# S3's smallest part; objects above the threshold go multipart in the tests that ask for it.
TINY_PART = 5 * MIB
DEV_FULL = Path("/dev/full")


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    with moto_s3_server() as server:
        server.client().create_bucket(Bucket=BUCKET)
        yield server


@dataclass
class Harness:
    backend: str
    store: ArtifactBlobStore
    staging_dir: Path

    def staging_files(self) -> list[str]:
        if not self.staging_dir.exists():
            return []
        return sorted(os.listdir(self.staging_dir))


def _s3_store(moto: MotoS3, staging_dir: Path, **options: Any) -> S3BlobStore:
    return S3BlobStore(
        endpoint_url=moto.endpoint_url,
        bucket=options.pop("bucket", BUCKET),
        credentials=Credentials(
            moto.access_key_id, options.pop("secret", moto.secret_access_key), moto.region
        ),
        staging_dir=staging_dir,
        # A prefix per test: tests share the bucket, never a key.
        prefix=options.pop("prefix", f"t-{uuid.uuid4().hex[:10]}/"),
        **options,
    )


@pytest.fixture(params=["filesystem", "s3"])
async def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    staging_dir = tmp_path / "artifacts" / "staging"
    store: ArtifactBlobStore
    if request.param == "filesystem":
        store = FilesystemBlobStore(tmp_path / "artifacts")
    else:
        store = _s3_store(request.getfixturevalue("moto"), staging_dir)
    yield Harness(backend=request.param, store=store, staging_dir=staging_dir)
    await store.close()


async def stream(data: bytes, chunk: int = 65_536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), chunk):
        yield data[i : i + chunk]


async def read_all(store: ArtifactBlobStore, digest: str, **byte_range: Any) -> bytes:
    return b"".join([chunk async for chunk in store.read(digest, **byte_range)])


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def stored(store: ArtifactBlobStore, data: bytes) -> Staged:
    staged = await store.stage(stream(data), max_bytes=len(data) + 1)
    await store.commit(staged)
    return staged


# -- the contract, both backends ----------------------------------------------------------------


async def test_stage_commit_read_size(blobs: Harness) -> None:
    data = os.urandom(700_001)
    staged = await blobs.store.stage(stream(data, chunk=9_999), max_bytes=len(data))
    assert staged.digest == digest_of(data)
    assert staged.size == len(data)
    assert staged.md5 == hashlib.md5(data).hexdigest()
    assert staged.blake2b_256 == hashlib.blake2b(data, digest_size=32).hexdigest()
    assert staged.path.parent == blobs.staging_dir and staged.path.read_bytes() == data
    assert await blobs.store.size(staged.digest) is None, "staged is not stored"

    assert await blobs.store.commit(staged) is True
    assert not staged.path.exists() and blobs.staging_files() == []
    assert await blobs.store.size(staged.digest) == len(data)
    chunks = [chunk async for chunk in blobs.store.read(staged.digest)]
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= READ_CHUNK_BYTES and len(chunks) >= 3


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 10), (5, None), (699_999, 700_000), (262_100, 262_200), (0, 800_000), (10, 10)],
)
async def test_range_reads(blobs: Harness, start: int, end: int | None) -> None:
    data = os.urandom(700_000)
    staged = await stored(blobs.store, data)
    assert await read_all(blobs.store, staged.digest, start=start, end=end) == data[start:end]


async def test_a_range_past_the_end_is_empty(blobs: Harness) -> None:
    staged = await stored(blobs.store, b"0123456789")
    assert await read_all(blobs.store, staged.digest, start=10) == b""
    assert await read_all(blobs.store, staged.digest, start=50, end=60) == b""


async def test_an_empty_blob(blobs: Harness) -> None:
    staged = await blobs.store.stage(stream(b""), max_bytes=10)
    assert staged.digest == digest_of(b"") and staged.size == 0
    assert await blobs.store.commit(staged) is True
    assert await blobs.store.size(staged.digest) == 0
    assert await read_all(blobs.store, staged.digest) == b""


async def test_committing_the_same_content_again_stores_nothing_new(blobs: Harness) -> None:
    data = os.urandom(50_000)
    first = await blobs.store.stage(stream(data), max_bytes=len(data))
    second = await blobs.store.stage(stream(data), max_bytes=len(data))
    assert first.path != second.path and first.digest == second.digest
    assert await blobs.store.commit(first) is True
    assert await blobs.store.commit(second) is False
    assert blobs.staging_files() == []
    assert await read_all(blobs.store, first.digest) == data


async def test_concurrent_commits_of_the_same_content(blobs: Harness) -> None:
    data = os.urandom(300_000)
    staged = await asyncio.gather(
        *(blobs.store.stage(stream(data), max_bytes=len(data)) for _ in range(8))
    )
    created = await asyncio.gather(*(blobs.store.commit(s) for s in staged))
    if blobs.backend == "filesystem":
        assert created.count(True) == 1, created
    else:
        # S3 has no create-only PUT that moto enforces atomically: at least one creates.
        assert created.count(True) >= 1, created
    assert blobs.staging_files() == []
    assert await blobs.store.size(staged[0].digest) == len(data)
    assert await read_all(blobs.store, staged[0].digest) == data


async def test_too_large_stops_reading_and_leaves_nothing(blobs: Harness) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        while True:
            pulled += 1
            yield b"x" * 1000

    with pytest.raises(BlobTooLarge) as raised:
        await blobs.store.stage(endless(), max_bytes=10_500)
    assert raised.value.status == 413 and raised.value.code == "artifact_too_large"
    assert pulled == 11, "stops at the first chunk over the limit"
    assert blobs.staging_files() == []
    # Exactly the limit is allowed.
    exact = await blobs.store.stage(stream(b"y" * 10_500), max_bytes=10_500)
    assert exact.size == 10_500
    await blobs.store.discard(exact)
    assert blobs.staging_files() == []


async def test_a_digest_mismatch_leaves_nothing(blobs: Harness) -> None:
    data = os.urandom(200_000)
    declared = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DigestMismatch) as raised:
        await blobs.store.stage(stream(data), max_bytes=len(data), expected_sha256=declared)
    assert raised.value.status == 400 and raised.value.code == "digest_mismatch"
    assert raised.value.extra == {"expected": "sha256:" + declared, "actual": digest_of(data)}
    assert blobs.staging_files() == []
    assert await blobs.store.size(digest_of(data)) is None
    assert await blobs.store.size(declared) is None


async def test_a_declared_digest_in_either_spelling_matches(blobs: Harness) -> None:
    data = os.urandom(1000)
    for declared in (digest_of(data), digest_of(data)[7:].upper(), "SHA256:" + digest_of(data)[7:]):
        staged = await blobs.store.stage(stream(data), max_bytes=1000, expected_sha256=declared)
        await blobs.store.discard(staged)
    with pytest.raises(DigestMismatch):
        await blobs.store.stage(stream(data), max_bytes=1000, expected_sha256="sha256:abc")
    assert blobs.staging_files() == []


async def test_a_broken_or_cancelled_upload_leaves_nothing(blobs: Harness) -> None:
    class ClientGone(Exception):
        pass

    async def breaks() -> AsyncIterator[bytes]:
        yield b"a" * 3 * MIB
        raise ClientGone

    with pytest.raises(ClientGone):
        await blobs.store.stage(breaks(), max_bytes=10 * MIB)
    assert blobs.staging_files() == []

    reached = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b"b" * 2 * MIB
        reached.set()
        await asyncio.Event().wait()  # a client that stopped sending
        yield b""

    task = asyncio.create_task(blobs.store.stage(stalls(), max_bytes=10 * MIB))
    await reached.wait()
    assert len(blobs.staging_files()) == 1, "the temp file exists while the upload runs"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert blobs.staging_files() == []


async def test_discard_stores_nothing(blobs: Harness) -> None:
    data = os.urandom(1000)
    staged = await blobs.store.stage(stream(data), max_bytes=1000)
    await blobs.store.discard(staged)
    await blobs.store.discard(staged)  # twice is harmless
    assert blobs.staging_files() == []
    assert await blobs.store.size(staged.digest) is None


async def test_a_missing_blob(blobs: Harness) -> None:
    digest = digest_of(os.urandom(16))
    assert await blobs.store.size(digest) is None
    with pytest.raises(BlobMissing) as raised:
        await read_all(blobs.store, digest)
    assert raised.value.status == 404 and raised.value.code == "blob_not_found"
    await blobs.store.delete(digest)  # deleting nothing is fine


async def test_delete_then_store_again(blobs: Harness) -> None:
    data = os.urandom(5000)
    staged = await stored(blobs.store, data)
    await blobs.store.delete(staged.digest)
    await blobs.store.delete(staged.digest)
    assert await blobs.store.size(staged.digest) is None
    with pytest.raises(BlobMissing):
        await read_all(blobs.store, staged.digest)
    again = await blobs.store.stage(stream(data), max_bytes=len(data))
    assert await blobs.store.commit(again) is True
    assert await read_all(blobs.store, staged.digest) == data


@pytest.mark.parametrize("digest", ["../../etc/passwd", "sha256:" + "g" * 64, "sha256:abc", ""])
async def test_only_sha256_digests_name_blobs(blobs: Harness, digest: str) -> None:
    with pytest.raises(InvalidDigest):
        await blobs.store.size(digest)
    with pytest.raises(InvalidDigest):
        await read_all(blobs.store, digest)
    with pytest.raises(InvalidDigest):
        await blobs.store.delete(digest)


async def test_a_staged_upload_of_another_store_is_refused(blobs: Harness, tmp_path: Path) -> None:
    foreign = tmp_path / "elsewhere"
    foreign.write_bytes(b"x")
    fake = Staged(path=foreign, digest=digest_of(b"x"), size=1, md5="", blake2b_256="")
    with pytest.raises(BlobStoreError):
        await blobs.store.commit(fake)
    assert foreign.exists()


async def test_committing_a_staged_upload_twice_is_refused(blobs: Harness) -> None:
    staged = await stored(blobs.store, b"once")
    await blobs.store.delete(staged.digest)
    with pytest.raises(BlobStoreError):
        await blobs.store.commit(staged)
    assert await blobs.store.size(staged.digest) is None


async def test_a_large_upload_streams_in_bounded_memory(blobs: Harness) -> None:
    total, block = 256 * MIB, os.urandom(MIB)
    expected = hashlib.sha256()

    async def generated() -> AsyncIterator[bytes]:
        # A new object per chunk, as a network read gives: a store that kept them would show.
        for i in range(total // MIB):
            chunk = i.to_bytes(8, "big") + block[8:]
            expected.update(chunk)
            yield chunk

    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        staged = await blobs.store.stage(generated(), max_bytes=total)
        assert await blobs.store.commit(staged) is True
        read_back, size = hashlib.sha256(), 0
        async for chunk in blobs.store.read(staged.digest):
            read_back.update(chunk)
            size += len(chunk)
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert staged.digest == "sha256:" + expected.hexdigest()
    assert (size, read_back.hexdigest()) == (total, expected.hexdigest())
    assert peak < 32 * MIB, f"peak {peak / MIB:.1f} MiB for a 256 MiB round trip"
    await blobs.store.delete(staged.digest)  # 256 MiB less in the temp dir and in moto


# -- the filesystem backend ---------------------------------------------------------------------


async def test_files_are_laid_out_by_digest_and_read_only(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "artifacts")
    staged = await stored(store, b"hello wheel")
    hex_ = staged.sha256
    path = tmp_path / "artifacts" / "sha256" / hex_[:2] / hex_[2:4] / hex_
    assert path.read_bytes() == b"hello wheel"
    assert stat.S_IMODE(path.stat().st_mode) == 0o440


async def test_a_reader_keeps_reading_a_blob_deleted_under_it(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "artifacts")
    data = os.urandom(3 * READ_CHUNK_BYTES)
    staged = await stored(store, data)
    reader = store.read(staged.digest)
    first = await anext(reader)
    await store.delete(staged.digest)
    rest = b"".join([chunk async for chunk in reader])
    assert first + rest == data
    assert await store.size(staged.digest) is None


async def test_leftovers_of_a_crash_are_swept_on_the_first_upload(tmp_path: Path) -> None:
    staging = tmp_path / "artifacts" / "staging"
    staging.mkdir(parents=True)
    old, fresh, other = staging / "upload-old", staging / "upload-fresh", staging / "notes"
    for path in (old, fresh, other):
        path.write_bytes(b"partial")
    long_ago = time.time() - STALE_AFTER_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    store = FilesystemBlobStore(tmp_path / "artifacts")
    staged = await store.stage(stream(b"x"), max_bytes=1)
    await store.discard(staged)
    assert sorted(os.listdir(staging)) == ["notes", "upload-fresh"]


def test_the_settings_pick_the_backend(tmp_path: Path) -> None:
    default = load_settings({}, data_dir=str(tmp_path))
    assert artifact_dir_of(default) == tmp_path / "artifacts"
    store = open_artifact_blobs(default)
    assert isinstance(store, FilesystemBlobStore) and store.root == tmp_path / "artifacts"
    s3 = load_settings(
        {
            "GATEHOUSE_ARTIFACT_STORE": "s3",
            "GATEHOUSE_ARTIFACT_DIR": str(tmp_path / "spool"),
            "GATEHOUSE_S3_ENDPOINT_URL": "http://minio.internal:9000",
            "GATEHOUSE_S3_BUCKET": "artifacts",
            "GATEHOUSE_S3_ACCESS_KEY_ID": "gatehouse",
            "GATEHOUSE_S3_SECRET_ACCESS_KEY": "very-secret-key",
            "GATEHOUSE_S3_PREFIX": "prod/",
        }
    )
    store = open_artifact_blobs(s3)
    assert isinstance(store, S3BlobStore)
    assert store.staging_dir == tmp_path / "spool" / "staging"
    assert store.key_of("sha256:" + "a" * 64) == "prod/sha256/" + "a" * 64
    assert "very-secret-key" not in repr(store) and "very-secret-key" not in repr(s3)


# -- the S3 backend -----------------------------------------------------------------------------


async def test_multipart_uploads_above_the_threshold(moto: MotoS3, tmp_path: Path) -> None:
    store = _s3_store(
        moto, tmp_path / "staging", part_bytes=TINY_PART, multipart_threshold=TINY_PART
    )
    try:
        data = os.urandom(2 * TINY_PART + 12_345)
        staged = await stored(store, data)
        head = moto.client().head_object(Bucket=BUCKET, Key=store.key_of(staged.digest))
        assert head["ETag"].endswith('-3"'), "three parts"
        assert await store.size(staged.digest) == len(data)
        assert await read_all(store, staged.digest) == data
        across = (TINY_PART - 100, TINY_PART + 100)
        assert (
            await read_all(store, staged.digest, start=across[0], end=across[1])
            == data[across[0] : across[1]]
        )
        uploads = moto.client().list_multipart_uploads(Bucket=BUCKET, Prefix=store.prefix)
        assert not uploads.get("Uploads"), "no unfinished upload left"
    finally:
        await store.close()


def test_part_size_grows_to_stay_within_ten_thousand_parts(tmp_path: Path) -> None:
    store = S3BlobStore(
        endpoint_url="http://s3.invalid",
        bucket="b",
        credentials=Credentials("a", "b"),
        staging_dir=tmp_path,
        part_bytes=64 * MIB,
    )
    assert store.part_size_for(6 * 1024**3) == 64 * MIB
    assert store.part_size_for(1024**4) == -(-(1024**4) // 10_000)


async def test_another_s3_client_reads_what_we_wrote_and_we_read_what_it_wrote(
    moto: MotoS3, tmp_path: Path
) -> None:
    store = _s3_store(moto, tmp_path / "staging")
    client = moto.client()
    try:
        ours = os.urandom(100_000)
        staged = await stored(store, ours)
        got = client.get_object(Bucket=BUCKET, Key=f"{store.prefix}sha256/{staged.sha256}")
        assert got["Body"].read() == ours

        theirs = os.urandom(77_777)
        digest = digest_of(theirs)
        client.put_object(Bucket=BUCKET, Key=store.key_of(digest), Body=theirs)
        assert await store.size(digest) == len(theirs)
        assert await read_all(store, digest, start=7, end=70_000) == theirs[7:70_000]
        await store.delete(digest)
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix=store.prefix)
        assert [o["Key"] for o in listed["Contents"]] == [store.key_of(staged.digest)]
    finally:
        await store.close()


async def test_a_wrong_secret_is_refused_and_never_shown(moto: MotoS3, tmp_path: Path) -> None:
    store = _s3_store(moto, tmp_path / "staging", secret="not-the-secret-key")
    try:
        data = os.urandom(1000)
        staged = await store.stage(stream(data), max_bytes=1000)
        with pytest.raises(BlobStoreError) as raised:
            await store.commit(staged)
        assert raised.value.extra["store_status"] == 403
        assert not staged.path.exists()
        with pytest.raises(BlobStoreError) as raised:
            await read_all(store, staged.digest)
        assert raised.value.extra["store_code"] == "SignatureDoesNotMatch"
        shown = f"{raised.value} {raised.value.extra} {store!r}"
        assert "not-the-secret-key" not in shown
    finally:
        await store.close()


async def test_a_missing_bucket_is_an_operator_error(moto: MotoS3, tmp_path: Path) -> None:
    store = _s3_store(moto, tmp_path / "staging", bucket="no-such-bucket-here")
    try:
        with pytest.raises(BlobStoreError) as raised:
            await read_all(store, digest_of(b"x"))
        assert raised.value.status == 500 and "no-such-bucket-here" in str(raised.value)
    finally:
        await store.close()


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3_module, "RETRY_DELAYS", (0.01, 0.01))


@pytest.mark.usefixtures("quick_retries")
async def test_an_unreachable_store_is_unavailable(tmp_path: Path) -> None:
    store = S3BlobStore(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        bucket=BUCKET,
        credentials=Credentials("key", "secret"),
        staging_dir=tmp_path / "staging",
    )
    try:
        with pytest.raises(BlobStoreUnavailable) as raised:
            await store.size(digest_of(b"x"))
        assert raised.value.status == 503 and raised.value.transient
        staged = await store.stage(stream(b"x"), max_bytes=1)
        with pytest.raises(BlobStoreUnavailable):
            await store.commit(staged)
        assert not staged.path.exists()
    finally:
        await store.close()


@asynccontextmanager
async def fake_s3(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], staging_dir: Path
) -> AsyncIterator[S3BlobStore]:
    """An HTTP server that misbehaves as some S3 stores do, and a store pointed at it."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    store = S3BlobStore(
        endpoint_url=f"http://127.0.0.1:{port}",
        bucket=BUCKET,
        credentials=Credentials("key", "secret"),
        staging_dir=staging_dir,
    )
    try:
        yield store
    finally:
        await store.close()
        await runner.cleanup()


@pytest.mark.usefixtures("quick_retries")
async def test_5xx_answers_are_retried_then_unavailable(tmp_path: Path) -> None:
    seen: list[str] = []
    slow_down = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
    )

    async def busy(request: web.Request) -> web.Response:
        seen.append(request.method)
        assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=key/")
        return web.Response(status=503, body=slow_down, content_type="application/xml")

    async with fake_s3(busy, tmp_path / "staging") as store:
        with pytest.raises(BlobStoreUnavailable) as raised:
            await read_all(store, digest_of(b"x"))
    assert "503 SlowDown" in str(raised.value)
    assert seen == ["GET"] * s3_module.ATTEMPTS


async def test_a_store_that_ignores_range_still_gives_the_range(tmp_path: Path) -> None:
    data = os.urandom(3 * READ_CHUNK_BYTES + 17)

    async def whole(request: web.Request) -> web.Response:
        assert request.headers["Range"]
        return web.Response(status=200, body=data)

    async with fake_s3(whole, tmp_path / "staging") as store:
        for start, end in [(0, 10), (READ_CHUNK_BYTES + 5, None), (100, 2 * READ_CHUNK_BYTES + 9)]:
            got = await read_all(store, digest_of(data), start=start, end=end)
            assert got == data[start:end], (start, end)


@pytest.mark.skipif(not DEV_FULL.exists(), reason="no /dev/full on this system")
async def test_a_full_disk_is_507_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FilesystemBlobStore(tmp_path / "artifacts")
    temp = tmp_path / "artifacts" / "staging" / "upload-full"

    def open_full(directory: Path) -> tuple[Path, IO[bytes]]:
        # The kernel's own ENOSPC: every write to /dev/full fails with it.
        directory.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(b"")
        return temp, DEV_FULL.open("wb")

    monkeypatch.setattr(staging_module, "_open_temp", open_full)
    with pytest.raises(StorageFull) as raised:
        await store.stage(stream(os.urandom(3 * MIB)), max_bytes=10 * MIB)
    assert raised.value.status == 507 and raised.value.code == "artifact_storage_full"
    assert not temp.exists()


async def test_a_store_without_conditional_writes_gets_plain_puts(tmp_path: Path) -> None:
    data = os.urandom(100_000)
    puts: list[dict[str, str]] = []
    received: list[bytes] = []

    async def no_conditionals(request: web.Request) -> web.Response:
        if request.method == "HEAD":
            return web.Response(status=404)
        assert request.method == "PUT"
        puts.append(dict(request.headers))
        if "If-None-Match" in request.headers:
            return web.Response(status=501, body=b"<Error><Code>NotImplemented</Code></Error>")
        received.append(await request.read())
        return web.Response(status=200)

    async with fake_s3(no_conditionals, tmp_path / "staging") as store:
        for _ in range(2):
            staged = await store.stage(stream(data), max_bytes=len(data))
            assert await store.commit(staged) is True
    assert [("If-None-Match" in p) for p in puts] == [True, False, False], "asks once"
    plain = puts[-1]
    assert plain["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()
    assert plain["Content-Length"] == str(len(data)) and "Transfer-Encoding" not in plain
    assert received == [data, data]
