"""Answering a download: the gate's verdict (451 with the why-blocked envelope), then the
blob, streamed from the artifact blob store with ``ETag``, digests, conditional requests
and single byte ranges.

Events: a refused download of a blocked artifact publishes ``block.hit``; every download
that is answered with content publishes ``download.recorded`` (who pulled: the key or
``anonymous`` and the client address) *before* the first byte leaves, so an incident's
who-pulled never misses a client that got the bytes. HEAD, 304 and 451 are no downloads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

from aiohttp import web

from contracts.events.registry import BlockHit, DownloadRecorded
from contracts.rpc import registry as rpc
from services.gateway.deps import GatewayDeps
from services.gateway.dispatch import client_address
from services.gateway.domain.etag import none_match
from services.gateway.packages.domain.digests import digest_headers
from services.gateway.packages.domain.ranges import ByteRange, if_range_allows, parse_range
from services.gateway.packages.http.metrics import DOWNLOAD_BYTES, DOWNLOADS, REFUSED_DOWNLOADS
from services.gateway.routing import RequestContext
from shared.artifact_blobs import BlobMissing
from shared.errors import GatehouseError, NotFound
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
    blobs = deps.artifact_blobs
    size = await blobs.size(digest)
    if size is None:
        # Deleted between the owner's answer and now (a DELETE racing this GET).
        raise ArtifactNotFound(f"{request.path}: the artifact was deleted")
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
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type = media_type
    response.content_length = end - start
    if request.method == "HEAD":
        await response.prepare(request)
        await response.write_eof()
        return response
    chunks = blobs.read(digest, start=start, end=end)
    try:
        # The first chunk before the headers: a blob deleted since size() is still a 404.
        first = await anext(chunks, b"")
    except BlobMissing:
        raise ArtifactNotFound(f"{request.path}: the artifact was deleted") from None
    if record is not None:
        await _record_download(ctx, deps, record)
        DOWNLOADS.labels(fmt).inc()
    await response.prepare(request)
    try:
        sent = await _stream(response, first, chunks)
    except ConnectionError:
        # The client went away mid-download (its download.recorded stands: it had bytes).
        log.info("download_aborted", path=request.path)
        return response
    DOWNLOAD_BYTES.labels(fmt).inc(sent)
    await response.write_eof()
    return response


async def _stream(response: web.StreamResponse, first: bytes, chunks: AsyncIterator[bytes]) -> int:
    sent = 0
    try:
        if first:
            await response.write(first)
            sent += len(first)
        async for chunk in chunks:
            await response.write(chunk)
            sent += len(chunk)
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    return sent


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
