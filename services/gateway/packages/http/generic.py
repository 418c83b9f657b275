"""``/generic/<project>/<repo>/<path>``: any file by path.

* ``PUT``: the body, streamed into the blob store (``X-Checksum-Sha256``, ``Digest``,
  ``Content-Digest`` or ``Repr-Digest`` checked when sent: 400 ``digest_mismatch``) →
  201 with the artifact, ``ETag``, ``Location``. A path is written once (409
  ``artifact_exists``): delete it first to replace it. ``?source_repo=&source_commit=``
  record where it was built from.
* ``GET`` / ``HEAD``: the file with ``ETag: "<sha256>"``, ``Digest`` / ``Repr-Digest``,
  ``Content-Length``, single ranges (206, 416), ``If-None-Match`` → 304; 451 when
  blocked or quarantined.
* ``DELETE``: 204.

The path comes from the raw request line, each segment percent-decoded once, and must
pass ``shared.artifact_paths`` (an encoded ``/`` inside a segment is refused too: it
would make two spellings of one path).
"""

from __future__ import annotations

import urllib.parse

from aiohttp import web

from contracts.rpc import registry as rpc
from services.gateway.deps import GatewayDeps
from services.gateway.packages.domain.digests import declared_sha256, digest_headers
from services.gateway.packages.domain.names import generic_purl
from services.gateway.packages.domain.upload_form import provenance_of
from services.gateway.packages.http.access import (
    ask_scanner,
    caller,
    repository_ref,
    require_visible,
    require_writer,
)
from services.gateway.packages.http.blob_memo import blob_memo
from services.gateway.packages.http.bodies import body_chunks, refuse_declared_too_large
from services.gateway.packages.http.downloads import refuse_unless_allowed, send_blob
from services.gateway.packages.http.formats import require_format, writable_repository
from services.gateway.packages.http.metrics import UPLOAD_BYTES, UPLOADS
from services.gateway.packages.http.reads import fetch_artifact
from services.gateway.packages.http.storing import staging, store_and_register
from shared.artifact_paths import (
    InvalidArtifactPath,
    basename,
    check_artifact_path,
    decode_url_path,
)
from shared.errors import GatehouseError
from shared.http import json_response
from shared.logging import get_logger

log = get_logger(__name__)
_OCTETS = "application/octet-stream"
_PREFIX_SEGMENTS = 4  # "", "generic", project, repo


def artifact_path_of(request: web.Request) -> str:
    raw = request.raw_path.split("?", 1)[0].split("#", 1)[0]
    segments = raw.split("/")[_PREFIX_SEGMENTS:]
    decoded = []
    for segment in segments:
        text = decode_url_path(segment)
        if "/" in text:
            raise InvalidArtifactPath("/".join(segments), "contains an encoded '/' (%2F)")
        decoded.append(text)
    return check_artifact_path("/".join(decoded))


def _query_text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return value if value else None


async def put(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    try:
        artifact = await _put(request, deps)
    except GatehouseError as exc:
        UPLOADS.labels("generic", exc.code).inc()
        raise
    UPLOADS.labels("generic", "stored").inc()
    UPLOAD_BYTES.labels("generic").inc(artifact.size)
    sha256 = artifact.digest.removeprefix("sha256:")
    return json_response(
        artifact,
        status=201,
        headers={"Location": request.path, "ETag": f'"{sha256}"', **digest_headers(sha256)},
    )


async def _put(request: web.Request, deps: GatewayDeps) -> rpc.Artifact:
    path = artifact_path_of(request)
    ctx = await caller(request, deps, required=True)
    require_writer(ctx)
    expected = declared_sha256(request.headers)
    provenance = provenance_of(
        _query_text(request, "source_repo"), _query_text(request, "source_commit")
    )
    ref = await repository_ref(ctx, deps, for_write=True)
    await writable_repository(ctx, deps, ref, "generic")
    limit = deps.settings.artifact_max_upload_bytes
    refuse_declared_too_large(request, limit)
    async with staging(deps) as staged:
        content = await deps.artifact_blobs.stage(
            body_chunks(request), max_bytes=limit, expected_sha256=expected, form_digests=False
        )
        staged.append(content)
        register = rpc.ArtifactRegisterRequest(
            repo=ref,
            path=path,
            kind="file",
            digest=content.digest,
            size=content.size,
            name=basename(path),
            purl=generic_purl(path),
            provenance=provenance,
            uploaded_by=ctx.actor,
        )
        return await store_and_register(ctx, deps, staged=staged, evidence=[], request=register)


async def get(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    path = artifact_path_of(request)
    ctx = await caller(request, deps, required=False)
    ref = await repository_ref(ctx, deps)
    reply = await fetch_artifact(ctx, deps, ref, path)
    require_visible(ctx, reply.repository)
    require_format(reply.repository, "generic")
    downloading = request.method == "GET"
    await refuse_unless_allowed(ctx, deps, reply, counts=downloading)
    name = urllib.parse.quote(basename(path))
    return await send_blob(
        ctx,
        deps,
        digest=reply.artifact.digest,
        # Never the type the name suggests: stored HTML must not run on the gateway's origin.
        media_type=_OCTETS,
        record=reply.artifact if downloading else None,
        fmt="generic",
        extra_headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
            "X-Content-Type-Options": "nosniff",
        },
    )


async def delete(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    """Remove the artifact (the scanner publishes ``artifact.deleted``), then its blob when
    the scanner says nothing else names it — under the digest's lock, so that an upload of
    the same bytes cannot slip in between and be left without its blob."""
    path = artifact_path_of(request)
    ctx = await caller(request, deps, required=True)
    require_writer(ctx)
    ref = await repository_ref(ctx, deps)
    fetch = rpc.ArtifactFetchRequest(repo=ref, path=path)
    current = await ask_scanner(ctx, deps, rpc.ARTIFACT_FETCH, fetch, rpc.ArtifactFetchReply)
    require_format(current.repository, "generic")
    digest = current.artifact.digest
    async with deps.writer.locked(f"artifact-blob:{digest}"):
        remove = rpc.ArtifactRemoveRequest(repo=ref, path=path)
        removed = await ask_scanner(ctx, deps, rpc.ARTIFACT_REMOVE, remove, rpc.Artifact)
        if removed.digest == digest:  # else replaced since: its blob is not under our lock
            uses = rpc.DigestUsesRequest(digest=digest)
            named = await ask_scanner(ctx, deps, rpc.ARTIFACT_DIGEST_USES, uses, rpc.DigestUses)
            if named.artifacts == 0:
                await deps.artifact_blobs.delete(digest)
                memo = blob_memo(deps.runtime.state, deps.settings.artifact_memory_cache_bytes)
                memo.discard(digest)
    return web.Response(status=204)
