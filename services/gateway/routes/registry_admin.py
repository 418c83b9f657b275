"""Security blocks and the quarantine (owned by the scanner, asked over
``svc.scanner.block_*`` / ``quarantine_*``), at OrbitalReg's admin paths. ADMIN only.

* ``POST /api/admin/security`` ``{purl, versions, digest, name_pattern, format, reason,
  customer_message, blocked_until}`` (exactly one of purl, digest, name_pattern) → 201 with
  ``Location``; ``GET /api/admin/security`` (cursor); ``GET/PATCH/DELETE
  /api/admin/security/{block_id}`` with ``ETag`` / ``If-Match``.
* ``GET /api/admin/quarantine?project_id=`` lists the artifacts held in quarantine;
  ``POST /api/admin/quarantine/{artifact_id}/release`` and ``…/reject`` ``{reason}``.
"""

from __future__ import annotations

import re

import msgspec
from aiohttp import web

from contracts.rpc import registry as rpc
from services.gateway.routes._upstream import ask, if_match, path_id, revision_json
from services.gateway.routes.registry_repos import ArtifactNotFound, ProjectRef, project_filter
from services.gateway.routing import ADMIN_ONLY, RequestContext, Route
from shared.errors import NotFound
from shared.http import json_response

_TAG = "registry-admin"
_BLOCKS = "/api/admin/security"
_BLOCK = "/api/admin/security/{block_id}"
_QUARANTINE = "/api/admin/quarantine"
_RELEASE = "/api/admin/quarantine/{artifact_id}/release"
_REJECT = "/api/admin/quarantine/{artifact_id}/reject"
_BLOCK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ARTIFACT_ID = re.compile(r"art_[0-9a-f]{32}")
_ERRORS = (404, 502, 503, 504)


class BlockNotFound(NotFound):
    code, title = "block_not_found", "No such block"


class QuarantineQuery(msgspec.Struct, frozen=True, kw_only=True):
    project_id: ProjectRef | None = None
    cursor: rpc.Cursor | None = None
    limit: rpc.Limit = rpc.LIMIT_DEFAULT


def _block_id(ctx: RequestContext) -> str:
    return path_id(ctx, "block_id", _BLOCK_ID, BlockNotFound, "block")


def _block_response(block: rpc.Block, *, status: int = 200) -> web.Response:
    return revision_json(block, block.revision, status=status, location=f"{_BLOCKS}/{block.id}")


# ---- blocks ---------------------------------------------------------------------------------
async def create_block(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.BlockBody)
    block = await ask(ctx, rpc.SERVICE, rpc.BLOCK_CREATE, body, rpc.Block)
    return _block_response(block, status=201)


async def list_blocks(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.BlockListRequest)
    return json_response(await ask(ctx, rpc.SERVICE, rpc.BLOCK_LIST, query, rpc.BlockPage))


async def get_block(ctx: RequestContext) -> web.StreamResponse:
    # No 304: hits change beside the revision.
    request = rpc.BlockRequest(id=_block_id(ctx))
    return _block_response(await ask(ctx, rpc.SERVICE, rpc.BLOCK_GET, request, rpc.Block))


async def update_block(ctx: RequestContext) -> web.StreamResponse:
    patch = ctx.body
    assert isinstance(patch, rpc.BlockPatch)
    request = rpc.BlockUpdateRequest(id=_block_id(ctx), patch=patch, if_match=if_match(ctx))
    return _block_response(await ask(ctx, rpc.SERVICE, rpc.BLOCK_UPDATE, request, rpc.Block))


async def delete_block(ctx: RequestContext) -> web.StreamResponse:
    request = rpc.BlockDeleteRequest(id=_block_id(ctx), if_match=if_match(ctx))
    await ask(ctx, rpc.SERVICE, rpc.BLOCK_DELETE, request, rpc.Block)
    return web.Response(status=204)


# ---- quarantine -----------------------------------------------------------------------------
async def list_quarantine(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, QuarantineQuery)
    request = rpc.QuarantineListRequest(
        project_ids=await project_filter(ctx, query.project_id),
        cursor=query.cursor,
        limit=query.limit,
    )
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.QUARANTINE_LIST, request, rpc.ArtifactPage)
    )


def _decision(ctx: RequestContext) -> rpc.QuarantineDecisionRequest:
    value = path_id(ctx, "artifact_id", _ARTIFACT_ID, ArtifactNotFound, "artifact")
    body = ctx.body
    assert isinstance(body, rpc.QuarantineDecision)
    return rpc.QuarantineDecisionRequest(artifact_id=value, decision=body)


async def release(ctx: RequestContext) -> web.StreamResponse:
    request = _decision(ctx)
    return json_response(await ask(ctx, rpc.SERVICE, rpc.QUARANTINE_RELEASE, request, rpc.Artifact))


async def reject(ctx: RequestContext) -> web.StreamResponse:
    request = _decision(ctx)
    return json_response(await ask(ctx, rpc.SERVICE, rpc.QUARANTINE_REJECT, request, rpc.Artifact))


_BLOCK_RULES = (
    "exactly one of purl (pkg:…, optionally with versions, a vers: range in the purl's own "
    "scheme, e.g. vers:pypi/>=1.0|<2.0), digest (sha256:…) or name_pattern (a glob of the "
    "PEP 503 name: letters, digits, . _ - * ?); format limits it to pypi or generic; "
    "blocked_until ends it (in the future). 422 invalid_block naming every field at fault"
)

ROUTES: list[Route] = [
    Route(
        method="POST",
        path=_BLOCKS,
        handler=create_block,
        roles=ADMIN_ONLY,
        summary="Create a security block: downloads of what it matches answer 451 with "
        f"its reason and customer_message (block.created). {_BLOCK_RULES}",
        tag=_TAG,
        body=rpc.BlockBody,
        response=rpc.Block,
        response_status=201,
        errors=(422, 502, 503, 504),
    ),
    Route(
        method="GET",
        path=_BLOCKS,
        handler=list_blocks,
        roles=ADMIN_ONLY,
        summary="List security blocks in creation order, expired ones too, with their hits",
        tag=_TAG,
        query=rpc.BlockListRequest,
        response=rpc.BlockPage,
        errors=(422, 502, 503, 504),
    ),
    Route(
        method="GET",
        path=_BLOCK,
        handler=get_block,
        roles=ADMIN_ONLY,
        summary="A security block with its hits and ETag; 404 block_not_found",
        tag=_TAG,
        response=rpc.Block,
        errors=_ERRORS,
    ),
    Route(
        method="PATCH",
        path=_BLOCK,
        handler=update_block,
        roles=ADMIN_ONLY,
        summary="Change a block's versions (purl blocks), reason, customer_message or "
        "blocked_until (a past moment ends it). If-Match: 412 precondition_failed; 422 "
        "invalid_block; 404 block_not_found",
        tag=_TAG,
        body=rpc.BlockPatch,
        response=rpc.Block,
        errors=(412, 422, *_ERRORS),
    ),
    Route(
        method="DELETE",
        path=_BLOCK,
        handler=delete_block,
        roles=ADMIN_ONLY,
        summary="Lift a security block (block.deleted). If-Match: 412 precondition_failed; "
        "404 block_not_found",
        tag=_TAG,
        response_status=204,
        errors=(412, *_ERRORS),
    ),
    Route(
        method="GET",
        path=_QUARANTINE,
        handler=list_quarantine,
        roles=ADMIN_ONLY,
        summary="The artifacts held in quarantine (uploaded to a quarantine_new repository, "
        "neither released nor rejected yet), newest first, by project (id or slug)",
        tag=_TAG,
        query=QuarantineQuery,
        response=rpc.ArtifactPage,
        errors=(422, 502, 503, 504),
    ),
    Route(
        method="POST",
        path=_RELEASE,
        handler=release,
        roles=ADMIN_ONLY,
        summary="Release an artifact from quarantine: it may be downloaded now "
        "(artifact.quarantine-released with the reason). 409 not_quarantined; 404 "
        "artifact_not_found",
        tag=_TAG,
        body=rpc.QuarantineDecision,
        response=rpc.Artifact,
        errors=(409, 422, *_ERRORS),
    ),
    Route(
        method="POST",
        path=_REJECT,
        handler=reject,
        roles=ADMIN_ONLY,
        summary="Reject a quarantined artifact: it is deleted (artifact.deleted, reason "
        "quarantine_rejected); the answer is the artifact as it was. 409 not_quarantined; "
        "404 artifact_not_found",
        tag=_TAG,
        body=rpc.QuarantineDecision,
        response=rpc.Artifact,
        errors=(409, 422, *_ERRORS),
    ),
]
