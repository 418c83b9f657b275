"""Answering a download: the gate's verdict (451 with the why-blocked envelope), then the
blob, streamed from the artifact blob store with ``ETag``, digests, conditional requests
and single byte ranges.

Events: a refused download of a blocked artifact publishes ``block.hit``; every download
that is answered with content publishes ``download.recorded`` (who pulled: the key or
``anonymous`` and the client address). The publish starts before the first byte leaves
and its JetStream ack is awaited while the file goes out, but the **last byte** of the
body waits for the ack: an incident's who-pulled never misses a client that got the whole
file. When the record fails (JetStream refused it or did not answer) the download fails:
a 503 when nothing was sent yet, otherwise the connection is cut one byte short (the
client sees a truncated body and retries), logged and counted
(``gatehouse_gateway_artifact_download_records_failed_total``). HEAD, 304 and 451 are no
downloads.

Filesystem blobs are opened (and, when small, read) in one trip to a worker thread; small
ones are then kept in memory by digest (``blob_memo``) and written with the headers in one
packet, large ones go out with ``sendfile``. Other stores stream in chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from contracts.events.registry import BlockHit, DownloadRecorded
from contracts.rpc import registry as rpc
from services.gateway.deps import GatewayDeps
from services.gateway.dispatch import client_address
from services.gateway.domain.etag import none_match
from services.gateway.packages.domain.digests import digest_headers
from services.gateway.packages.domain.ranges import ByteRange, if_range_allows, parse_range
from services.gateway.packages.http.blob_memo import BlobMemo, blob_memo
from services.gateway.packages.http.metrics import (
    DOWNLOAD_BYTES,
    DOWNLOAD_RECORDS_FAILED,
    DOWNLOADS,
    REFUSED_DOWNLOADS,
)
from services.gateway.routing import RequestContext
from shared.artifact_blobs import (
    READ_CHUNK_BYTES,
    ArtifactBlobStore,
    BlobMissing,
    FilesystemBlobStore,
    OpenBlob,
)
from shared.errors import GatehouseError, NotFound, UpstreamUnavailable
from shared.logging import get_logger

log = get_logger(__name__)


class ArtifactNotFound(NotFound):
    code, title = "artifact_not_found", "No such artifact"


class ArtifactUnavailable(GatehouseError):
    """451: a block or the quarantine holds the artifact. The body is the why-blocked
    envelope: ``block_id``, ``reason``, ``customer_message``, ``blocked_until`` and
    ``public_url`` (a page to paste into an incident channel), besides the problem's own
    fields."""

    status = 451
    code, title = "artifact_blocked", "Unavailable for legal or security reasons"


def public_base(request: web.Request, deps: GatewayDeps) -> str:
    configured = deps.settings.public_url.rstrip("/")
    return configured or f"{request.scheme}://{request.host}"


def refusal(
    request: web.Request, deps: GatewayDeps, reply: rpc.ArtifactFetchReply
) -> ArtifactUnavailable:
    block = reply.block
    quarantined = reply.verdict == "quarantined"
    code = "artifact_quarantined" if quarantined else "artifact_blocked"
    title = (
        "The artifact is held in quarantine until its scan passes"
        if quarantined
        else "The artifact is blocked"
    )
    if block is None:  # the owner always explains; never let a refusal go unexplained
        return ArtifactUnavailable(
            f"{reply.artifact.path}: {title.lower()}", code=code, title=title
        )
    return ArtifactUnavailable(
        f"{reply.artifact.path}: {block.reason}",
        code=code,
        title=title,
        extra={
            "block_id": block.block_id,
            "reason": block.reason,
            "customer_message": block.customer_message,
            "blocked_until": _rfc3339(block.blocked_until),
            "public_url": f"{public_base(request, deps)}/blocked/{block.block_id}",
        },
    )


async def refuse_unless_allowed(
    ctx: RequestContext, deps: GatewayDeps, reply: rpc.ArtifactFetchReply, *, counts: bool
) -> None:
    """Nothing when the download may go ahead; otherwise 451 — after ``block.hit`` when a
    block refused it and the request ``counts`` as a download (GET of the artifact)."""
    if reply.verdict == "allowed":
        return
    REFUSED_DOWNLOADS.labels(reply.repository.format, reply.verdict).inc()
    if reply.verdict == "blocked" and counts and reply.block is not None:
        artifact = reply.artifact
        await deps.runtime.bus.publish(
            BlockHit(
                block_id=reply.block.block_id,
                artifact_id=artifact.id,
                repo_id=artifact.repo_id,
                digest=artifact.digest,
                purl=artifact.purl,
                principal=ctx.actor,
            ),
            aggregate=f"block:{reply.block.block_id}",
            actor=ctx.actor,
            correlation_id=ctx.request_id,
        )
    raise refusal(ctx.request, deps, reply)


def _rfc3339(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# Blobs up to this size are read along with the open and written from memory (most wheels and
# every METADATA file); larger ones go out with sendfile.
PRELOAD_MAX_BYTES = 256 * 1024
BeforeLast = Callable[[], Awaitable[None]]


class DownloadNotRecorded(UpstreamUnavailable):
    code, title = "download_not_recorded", "The download could not be recorded"


async def send_blob(
    ctx: RequestContext,
    deps: GatewayDeps,
    *,
    digest: str,
    media_type: str,
    record: rpc.Artifact | None,
    fmt: str,
    extra_headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """The blob ``digest`` as the response: 304 when ``If-None-Match`` names it, 206 for a
    satisfiable single range (416 otherwise), HEAD without a body. ``record``: the
    artifact whose download this is (``download.recorded``), None for a side file."""
    request = ctx.request
    memo = blob_memo(deps.runtime.state, deps.settings.artifact_memory_cache_bytes)
    source = await _open(deps.artifact_blobs, memo, digest, head=request.method == "HEAD")
    if source is None:
        # Deleted between the owner's answer and now (a DELETE racing this GET).
        raise ArtifactNotFound(f"{request.path}: the artifact was deleted")
    try:
        return await _answer(
            ctx,
            deps,
            source,
            digest=digest,
            media_type=media_type,
            record=record,
            fmt=fmt,
            extra_headers=extra_headers,
        )
    finally:
        await source.close()


async def _answer(
    ctx: RequestContext,
    deps: GatewayDeps,
    source: _Source,
    *,
    digest: str,
    media_type: str,
    record: rpc.Artifact | None,
    fmt: str,
    extra_headers: dict[str, str] | None,
) -> web.StreamResponse:
    request = ctx.request
    size = source.size
    sha256 = digest.removeprefix("sha256:")
    etag = f'"{sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        # Revalidate every time: a block may apply to content a client already has.
        "Cache-Control": "private, no-cache",
        **digest_headers(sha256),
        **(extra_headers or {}),
    }
    if none_match(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    wanted: ByteRange | None = None
    if if_range_allows(request.headers.get("If-Range"), etag):
        wanted = parse_range(request.headers.get("Range"), size)
    status, start, end = (200, 0, size) if wanted is None else (206, wanted.start, wanted.end)
    if wanted is not None:
        headers["Content-Range"] = wanted.content_range(size)
    response = source.response_class(status=status, headers=headers)
    response.content_type = media_type
    response.content_length = end - start
    if request.method == "HEAD":
        await response.prepare(request)
        await response.write_eof()
        return response
    await source.check(start, end)
    recording = None
    if record is not None:
        recording = asyncio.create_task(_record_download(ctx, deps, record))
        DOWNLOADS.labels(fmt).inc()
    try:
        if recording is not None and end == start:
            # No byte to hold back: the record before the headers (a 503 if it fails).
            await _recorded(recording, request)
        await response.prepare(request)
        before_last = None if recording is None else _waiter(recording, request)
        try:
            sent = await source.send(request, response, start, end, before_last=before_last)
        except ConnectionError:
            # The client went away mid-download (its download.recorded stands: it had bytes).
            log.info("download_aborted", path=request.path)
            return response
        except DownloadNotRecorded:
            # Cut one byte short: the client never holds the whole file unrecorded.
            if request.transport is not None:
                request.transport.abort()
            return response
        DOWNLOAD_BYTES.labels(fmt).inc(sent)
        await response.write_eof()
        return response
    finally:
        if recording is not None and not recording.done():
            # The client left before the ack: the publish was sent; its outcome still counts.
            with contextlib.suppress(DownloadNotRecorded):
                await _recorded(recording, request)


def _waiter(recording: asyncio.Task[None], request: web.Request) -> BeforeLast:
    async def wait() -> None:
        await _recorded(recording, request)

    return wait


async def _recorded(recording: asyncio.Task[None], request: web.Request) -> None:
    """The record's outcome; a failure is logged, counted and raised as a 503. Shielded: a
    handler cancelled meanwhile does not cancel the publish."""
    try:
        await asyncio.shield(recording)
    except Exception as exc:
        DOWNLOAD_RECORDS_FAILED.inc()
        log.error("download_record_failed", path=request.path, error=f"{type(exc).__name__}: {exc}")
        raise DownloadNotRecorded("who-pulled could not record this download; try again") from None


async def _record_download(ctx: RequestContext, deps: GatewayDeps, artifact: rpc.Artifact) -> None:
    await deps.runtime.bus.publish(
        DownloadRecorded(
            artifact_id=artifact.id,
            repo_id=artifact.repo_id,
            project_id=artifact.project_id,
            digest=artifact.digest,
            purl=artifact.purl,
            principal=ctx.actor,
            address=client_address(ctx.request)[:64],
        ),
        aggregate=f"artifact:{artifact.id}",
        actor=ctx.actor,
        correlation_id=ctx.request_id,
    )


# ---- where the bytes come from -------------------------------------------------------------
class _HeadersWithBody(web.StreamResponse):
    """Headers go out with the first body write (one packet for a small file), as
    ``web.Response`` does; never for ``sendfile``, which needs them sent before."""

    _send_headers_immediately = False


class _Source:
    size: int
    response_class: type[web.StreamResponse] = web.StreamResponse

    async def check(self, start: int, end: int) -> None:
        """Anything that must fail before the headers go (the blob deleted meanwhile)."""

    async def send(
        self,
        request: web.Request,
        response: web.StreamResponse,
        start: int,
        end: int,
        *,
        before_last: BeforeLast | None,
    ) -> int:
        """Write bytes [start, end) of the blob; ``before_last`` is awaited before the last
        byte is written. Returns the bytes written."""
        raise NotImplementedError

    async def close(self) -> None:
        return None


async def _open(
    store: ArtifactBlobStore, memo: BlobMemo, digest: str, *, head: bool
) -> _Source | None:
    if isinstance(store, FilesystemBlobStore):
        data = memo.get(digest) if memo.max_bytes else None
        if data is not None:
            return _MemorySource(data)
        try:
            blob = await store.open_blob(digest, preload_max=0 if head else PRELOAD_MAX_BYTES)
        except BlobMissing:
            return None
        if blob.data is not None:
            memo.put(digest, blob.data)
            blob.close()
            return _MemorySource(blob.data)
        return _FileSource(blob)
    size = await store.size(digest)
    return None if size is None else _StoreSource(store, digest, size)


class _MemorySource(_Source):
    """A small blob, read already: written from memory."""

    response_class = _HeadersWithBody

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    async def send(
        self,
        request: web.Request,
        response: web.StreamResponse,
        start: int,
        end: int,
        *,
        before_last: BeforeLast | None,
    ) -> int:
        if end <= start:
            return 0
        view = memoryview(self.data)
        if before_last is None:
            await response.write(view[start:end])
        else:
            await response.write(view[start : end - 1])
            await before_last()
            await response.write(view[end - 1 : end])
        return end - start


class _FileSource(_Source):
    """An open file of the filesystem store, sent with ``sendfile``."""

    def __init__(self, blob: OpenBlob) -> None:
        self.blob = blob
        self.size = blob.size

    async def send(
        self,
        request: web.Request,
        response: web.StreamResponse,
        start: int,
        end: int,
        *,
        before_last: BeforeLast | None,
    ) -> int:
        if end <= start:
            return 0
        last = end - 1 if before_last is not None else end
        await self._sendfile(request, response, start, last)
        if before_last is not None:
            await before_last()
            await self._sendfile(request, response, last, end)
        return end - start

    async def _sendfile(
        self, request: web.Request, response: web.StreamResponse, start: int, end: int
    ) -> None:
        if end <= start:
            return
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("the client went away")
        try:
            await asyncio.get_running_loop().sendfile(transport, self.blob.file, start, end - start)
        except NotImplementedError:  # a transport sendfile cannot write to (TLS)
            await self._copy(response, start, end)

    async def _copy(self, response: web.StreamResponse, start: int, end: int) -> None:
        position = start
        while position < end:
            want = min(READ_CHUNK_BYTES, end - position)
            chunk = await asyncio.to_thread(os.pread, self.blob.file.fileno(), want, position)
            if not chunk:
                raise BlobMissing("the blob is shorter than its size")
            await response.write(chunk)
            position += len(chunk)

    async def close(self) -> None:
        self.blob.close()


class _StoreSource(_Source):
    """A store that streams chunks (S3): the first chunk is read before the headers go (a
    blob deleted since ``size`` is still a 404), and each chunk is written once the next
    has come, so the last byte can wait for ``before_last``."""

    def __init__(self, store: ArtifactBlobStore, digest: str, size: int) -> None:
        self.store = store
        self.digest = digest
        self.size = size
        self._chunks: AsyncIterator[bytes] | None = None
        self._first = b""

    async def check(self, start: int, end: int) -> None:
        self._chunks = self.store.read(self.digest, start=start, end=end)
        try:
            self._first = await anext(self._chunks, b"")
        except BlobMissing:
            raise ArtifactNotFound("the artifact was deleted") from None

    async def send(
        self,
        request: web.Request,
        response: web.StreamResponse,
        start: int,
        end: int,
        *,
        before_last: BeforeLast | None,
    ) -> int:
        assert self._chunks is not None
        sent = 0
        held = self._first
        async for chunk in self._chunks:
            if held:
                await response.write(held)
                sent += len(held)
            held = chunk
        if held and before_last is not None:
            await response.write(held[:-1])
            sent += len(held) - 1
            held = held[-1:]
        if before_last is not None:
            await before_last()
        if held:
            await response.write(held)
            sent += len(held)
        return sent

    async def close(self) -> None:
        if self._chunks is not None:
            await self._chunks.aclose()  # type: ignore[attr-defined]
