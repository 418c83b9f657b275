"""Helpers of the routes that ask another service: the RPC call, the project in the path,
versioned JSON answers and documents served from the blob store."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec
from aiohttp import web

from services.gateway.adapters.read_model import find_project
from services.gateway.deps import deps_of
from services.gateway.domain.errors import ProjectNotFound
from services.gateway.domain.etag import accepted_versions, etag_for, none_match
from services.gateway.dto import ProjectView
from services.gateway.packages.read_cache import registry_changed
from services.gateway.routing import RequestContext
from services.gateway.uploads import gateway_blobs
from shared.errors import NotFound
from shared.http import json_response
from shared.rpc import call

Resp = TypeVar("Resp", bound=msgspec.Struct)


async def ask(
    ctx: RequestContext,
    service: str,
    operation: str,
    request: msgspec.Struct,
    response_type: type[Resp],
    *,
    timeout: float | None = None,  # noqa: ASYNC109 - the NATS request deadline
) -> Resp:
    """``service``'s ``operation`` on behalf of the caller (its call context is passed on)."""
    deps = deps_of(ctx)
    try:
        return await call(
            deps.runtime.bus,
            service,
            operation,
            request,
            response_type,
            ctx=ctx.call_context(),
            timeout=timeout or deps.settings.rpc_timeout_seconds,
        )
    finally:
        # Whatever the outcome (a timeout may still have written): read-your-writes.
        registry_changed(deps.runtime.state, service, operation)


class RepoNotVisible(NotFound):
    code, title = "repo_not_found", "No project lists this repository and nothing names it"


async def check_repo_scope(ctx: RequestContext, repo: str | None) -> None:
    """A project-scoped key reads only the repos its project lists (in any case, as GitHub
    compares them); any other answers 404 ``repo_not_found``, exactly as an unknown repo."""
    scope = ctx.principal.project_id if ctx.principal else None
    if scope is None or repo is None:
        return
    project = await find_project(deps_of(ctx).pool, scope)
    if project is None or repo.lower() not in {r.lower() for r in project.repos}:
        raise RepoNotVisible(f"no project lists {repo}")


async def project_of(ctx: RequestContext) -> ProjectView:
    """The project named (id or slug) by the ``project`` path parameter; 404 when unknown."""
    ref = ctx.request.match_info["project"]
    project = await find_project(deps_of(ctx).pool, ref)
    if project is None:
        raise ProjectNotFound(ref)
    return project


def versioned_json(ctx: RequestContext, view: msgspec.Struct, version: int) -> web.StreamResponse:
    """``view`` with its ``ETag``; a GET whose If-None-Match names it answers 304."""
    etag = etag_for(version)
    if ctx.request.method == "GET" and none_match(ctx.request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers={"ETag": etag})
    return json_response(view, headers={"ETag": etag})


def document_etag(digest: str) -> str:
    """A stored document's ETag: its digest (the same bytes, the same tag)."""
    return f'"{digest}"'


async def blob_unless_cached(ctx: RequestContext, digest: str) -> bytes | None:
    """The stored document, or None when If-None-Match already names it (answer 304)."""
    if none_match(ctx.request.headers.get("If-None-Match"), document_etag(digest)):
        return None
    return await (await gateway_blobs(ctx)).get(digest)


def path_id(
    ctx: RequestContext, name: str, pattern: re.Pattern[str], missing: type[NotFound], what: str
) -> str:
    """The path parameter ``name`` when it has the shape of ``pattern``; any other answers
    404 as an unknown ``what`` would (``missing``, quoting at most 80 characters of it)."""
    value = ctx.request.match_info[name]
    if not pattern.fullmatch(value):
        raise missing(f"no {what} {value[:80]!r}")
    return value


def if_match(ctx: RequestContext) -> list[int] | None:
    """The revisions the ``If-Match`` header accepts (None: any)."""
    return accepted_versions(ctx.request.headers.get("If-Match"))


def revision_json(
    view: msgspec.Struct, revision: int, *, status: int = 200, location: str
) -> web.Response:
    """``view`` with its revision's ``ETag``; a 201 also says where it lives (``location``)."""
    headers = {"ETag": etag_for(revision)}
    if status == 201:
        headers["Location"] = location
    return json_response(view, status=status, headers=headers)
