"""``/pypi/<project>/<repo>/…``: the simple repository API pip reads and the upload API
twine posts to.

* ``GET …/simple/`` and ``…/simple/<name>/``: PEP 503 HTML or PEP 691 JSON by ``Accept``
  (406 for neither); a name not PEP 503-normalized is redirected (301) to its normalized
  URL; ``ETag`` (the repository's artifact revision and the representation) with
  ``If-None-Match`` → 304; ``X-PyPI-Last-Serial``.
* ``GET …/files/<sha256>/<filename>`` (and ``<filename>.metadata``, PEP 658): the file,
  451 with the why-blocked envelope when a block or the quarantine holds it (the metadata
  file is served all the same: it describes the file, pip then asks for the file).
* ``POST …/`` (also ``…/legacy/``): the legacy upload form. Errors answer as PyPI does —
  the status line's reason phrase carries the message (twine prints it) — with a
  problem+json body; an existing file name is 409 (``twine --skip-existing`` knows it).
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Callable

from aiohttp import web

from contracts.rpc import registry as rpc
from services.gateway.deps import GatewayDeps
from services.gateway.domain.etag import none_match
from services.gateway.packages.domain.archive import ArchiveLimits, inspect_distribution
from services.gateway.packages.domain.errors import InvalidUploadForm
from services.gateway.packages.domain.filenames import parse_dist_filename
from services.gateway.packages.domain.names import (
    canonical_version,
    is_valid_name,
    normalize_name,
    pypi_purl,
)
from services.gateway.packages.domain.simple_index import (
    IndexedFile,
    is_json,
    negotiate,
    project_list,
    project_page,
)
from services.gateway.packages.domain.upload_form import (
    check_declared_digests,
    check_matches_file,
    upload_form,
)
from services.gateway.packages.http.access import (
    anonymous_safe,
    ask_scanner,
    caller,
    repository_ref,
    require_visible,
    require_writer,
)
from services.gateway.packages.http.bodies import (
    one_chunk,
    read_upload_form,
    refuse_declared_too_large,
)
from services.gateway.packages.http.downloads import (
    ArtifactNotFound,
    refuse_unless_allowed,
    send_blob,
)
from services.gateway.packages.http.formats import require_format, writable_repository
from services.gateway.packages.http.metrics import UPLOAD_BYTES, UPLOADS
from services.gateway.packages.http.storing import staging, store_and_register
from services.gateway.routing import RequestContext
from shared.artifact_paths import check_filename
from shared.blobs import digest_of
from shared.errors import GatehouseError, NotFound
from shared.http import json_response, problem_response, request_id_of

METADATA_SUFFIX = ".metadata"
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_OCTETS = "application/octet-stream"


class PackageNotFound(NotFound):
    code, title = "package_not_found", "No such package in this repository"


def archive_limits(deps: GatewayDeps) -> ArchiveLimits:
    return ArchiveLimits(
        max_expanded_bytes=deps.settings.artifact_max_expanded_bytes,
        max_sbom_bytes=deps.settings.max_sbom_bytes,
    )


# ---- the simple index ----------------------------------------------------------------------------
def moved(location: str) -> web.Response:
    return web.Response(status=301, headers={"Location": location})


async def simple_root_redirect(request: web.Request) -> web.StreamResponse:
    return moved(f"{request.path}/")


async def simple_index(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    ctx = await caller(request, deps, required=False)
    media_type = negotiate(request.headers.get("Accept"))
    ref = await repository_ref(ctx, deps)
    reply = await _index(ctx, deps, ref, None)
    return _index_response(
        request, reply, media_type, lambda: project_list(reply.names, media_type)
    )


async def simple_project(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    name = request.match_info["name"]
    if not is_valid_name(name):
        raise PackageNotFound(f"{name!r} is not a valid project name")
    normalized = normalize_name(name)
    if name != normalized or not request.path.endswith("/"):
        base = request.path.rsplit("/simple/", 1)[0]
        return moved(f"{base}/simple/{normalized}/")
    ctx = await caller(request, deps, required=False)
    media_type = negotiate(request.headers.get("Accept"))
    ref = await repository_ref(ctx, deps)
    reply = await _index(ctx, deps, ref, normalized)
    if not reply.files:
        raise PackageNotFound(f"no files of {normalized!r} in this repository")
    files = [_indexed(f) for f in reply.files]
    return _index_response(
        request, reply, media_type, lambda: project_page(normalized, files, media_type)
    )


async def _index(
    ctx: RequestContext, deps: GatewayDeps, ref: rpc.RepositoryRef, name: str | None
) -> rpc.ArtifactIndexReply:
    request = rpc.ArtifactIndexRequest(repo=ref, name=name)
    reply = await anonymous_safe(
        ctx,
        deps,
        ref,
        lambda: ask_scanner(ctx, deps, rpc.ARTIFACT_INDEX, request, rpc.ArtifactIndexReply),
    )
    require_visible(ctx, reply.repository)
    require_format(reply.repository, "pypi")
    return reply


def _indexed(file: rpc.IndexFile) -> IndexedFile:
    return IndexedFile(
        filename=file.path,
        sha256=file.digest.removeprefix("sha256:"),
        size=file.size,
        requires_python=file.requires_python,
        metadata_sha256=file.metadata_digest.removeprefix("sha256:")
        if file.metadata_digest
        else None,
        uploaded_at=file.uploaded_at,
    )


def _index_response(
    request: web.Request,
    reply: rpc.ArtifactIndexReply,
    media_type: str,
    render: Callable[[], bytes],
) -> web.StreamResponse:
    etag = f'"r{reply.revision}-{"json" if is_json(media_type) else "html"}"'
    headers = {
        "ETag": etag,
        # The representation depends on Accept; who may see it, on Authorization.
        "Vary": "Accept, Authorization",
        "Cache-Control": "private, max-age=0, must-revalidate",
        "X-PyPI-Last-Serial": str(reply.revision),
    }
    if none_match(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    body = render()
    content_type = media_type if is_json(media_type) else f"{media_type}; charset=utf-8"
    return web.Response(body=body, headers={**headers, "Content-Type": content_type})


# ---- files ---------------------------------------------------------------------------------------
async def download(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    sha256 = request.match_info["sha256"]
    requested = request.match_info["filename"]
    side_file = requested.endswith(METADATA_SUFFIX)
    filename = check_filename(requested.removesuffix(METADATA_SUFFIX) if side_file else requested)
    if not _SHA256_HEX.match(sha256):
        raise ArtifactNotFound(f"{sha256!r} is not a sha256 digest")
    ctx = await caller(request, deps, required=False)
    ref = await repository_ref(ctx, deps)
    fetch = rpc.ArtifactFetchRequest(repo=ref, path=filename)
    reply = await anonymous_safe(
        ctx,
        deps,
        ref,
        lambda: ask_scanner(ctx, deps, rpc.ARTIFACT_FETCH, fetch, rpc.ArtifactFetchReply),
    )
    require_visible(ctx, reply.repository)
    require_format(reply.repository, "pypi")
    artifact = reply.artifact
    if artifact.digest != f"sha256:{sha256}":
        raise ArtifactNotFound(f"{filename} has no content {sha256} (a stale link?)")
    if side_file:
        # The core metadata describes the file and is not the file: it is served even while
        # a block or the quarantine holds the file, so that pip resolves, asks for the file
        # itself and is refused there, naming the file (and block.hit names the artifact).
        if artifact.metadata_digest is None:
            raise ArtifactNotFound(f"{filename} has no core metadata file")
        return await send_blob(
            ctx, deps, digest=artifact.metadata_digest, media_type=_OCTETS, record=None, fmt="pypi"
        )
    downloading = request.method == "GET"
    await refuse_unless_allowed(ctx, deps, reply, counts=downloading)
    return await send_blob(
        ctx,
        deps,
        digest=artifact.digest,
        media_type=_OCTETS,
        record=artifact if downloading else None,
        fmt="pypi",
        extra_headers={"Content-Disposition": _attachment(filename)},
    )


def _attachment(filename: str) -> str:
    return f"attachment; filename*=UTF-8''{urllib.parse.quote(filename)}"


# ---- upload --------------------------------------------------------------------------------------
async def upload(request: web.Request, deps: GatewayDeps) -> web.StreamResponse:
    try:
        artifact = await _upload(request, deps)
    except GatehouseError as exc:
        UPLOADS.labels("pypi", exc.code).inc()
        response = problem_response(exc, request_id=request_id_of(request), instance=request.path)
        # PyPI's way, which twine prints: the message in the status line.
        response.set_status(exc.status, reason=_reason_phrase(exc))
        return response
    UPLOADS.labels("pypi", "stored").inc()
    UPLOAD_BYTES.labels("pypi").inc(artifact.size)
    return json_response(artifact)


async def _upload(request: web.Request, deps: GatewayDeps) -> rpc.Artifact:
    ctx = await caller(request, deps, required=True)
    require_writer(ctx)
    ref = await repository_ref(ctx, deps, for_write=True)
    await writable_repository(ctx, deps, ref, "pypi")
    limit = deps.settings.artifact_max_upload_bytes
    refuse_declared_too_large(request, limit)
    limits = archive_limits(deps)
    async with staging(deps) as staged:
        parts = await read_upload_form(request, deps, staged=staged, max_bytes=limit)
        form = upload_form(parts.fields)
        if parts.content is None or parts.filename is None:
            raise _no_content()
        content = parts.content
        check_declared_digests(
            form,
            sha256=content.digest.removeprefix("sha256:"),
            md5=content.md5,
            blake2_256=content.blake2b_256,
        )
        dist = parse_dist_filename(parts.filename, name_hint=form.name)
        check_matches_file(form, dist)
        inspection = await asyncio.to_thread(inspect_distribution, content.path, dist, limits)
        metadata_digest = None
        if inspection.metadata_file is not None:
            side = await deps.artifact_blobs.stage(
                one_chunk(inspection.metadata_file), max_bytes=limits.max_metadata_bytes
            )
            staged.append(side)
            metadata_digest = side.digest
        name = normalize_name(inspection.metadata.name)
        version = canonical_version(inspection.metadata.version) or inspection.metadata.version
        register = rpc.ArtifactRegisterRequest(
            repo=ref,
            path=dist.filename,
            kind=dist.kind,
            digest=content.digest,
            size=content.size,
            name=name,
            version=version,
            purl=pypi_purl(name, version),
            metadata_digest=metadata_digest,
            requires_python=inspection.metadata.requires_python,
            sbom_digests=sorted({digest_of(sbom.data) for sbom in inspection.sboms}),
            provenance=form.provenance,
            uploaded_by=ctx.actor,
        )
        sboms = [sbom.data for sbom in inspection.sboms]
        return await store_and_register(ctx, deps, staged=staged, evidence=sboms, request=register)


def _no_content() -> GatehouseError:
    return InvalidUploadForm("the form has no content part (the file)", extra={"field": "content"})


def _reason_phrase(exc: GatehouseError) -> str:
    """The detail as a status line can carry it: one line of printable ASCII."""
    text = " ".join(exc.detail.split())
    text = text.encode("ascii", "replace").decode("ascii")
    return text[:300] or exc.title
