"""Retention policies of registry repositories and their runs (owned by the scanner, asked
over ``svc.scanner.retention_*``), at OrbitalReg's paths.

* ``GET/POST /api/v1/repos/{id}/retention`` (any role / ADMIN, OPERATOR): the repository's
  policies; create one with a ``RetentionPolicy`` body → 201 with ``Location`` and
  ``ETag``; a name the repository already uses is a 409 ``retention_policy_name_in_use``
  naming the other policy.
* ``GET/PUT/DELETE /api/v1/repos/{id}/retention/{policy_id}``: one policy; ``PUT`` replaces
  it whole; ``If-Match`` (412).
* ``POST /api/v1/repos/{id}/retention/{policy_id}/run?dry_run=true|false`` (ADMIN,
  OPERATOR): a dry run (the default) answers 200 with what would go and why; a real run
  answers 202 with the queued run and ``Location: …/retention/runs/{run_id}``.
* ``GET /api/v1/repos/{id}/retention/runs`` and ``…/runs/{run_id}``: runs, newest first,
  with their status and progress (``deleted`` / ``skipped`` of ``total``).
* ``GET /api/admin/retention?project_id=`` (ADMIN): every repository's policies.

``{id}`` is ``repo_<32 hex>`` and the routes match ``repo_<hex>`` only, so the git routes
under ``/api/v1/repos/{owner}/{repo}/…`` are never shadowed; where an owner looks like a
repository id, the git routes (declared first) still win. A project-scoped key sees and
changes its own project's repositories only; another project's answers as a missing one.
"""

from __future__ import annotations

import re

import msgspec
from aiohttp import web

from contracts.events.registry import RetentionPolicy
from contracts.rpc import registry as registry_rpc
from contracts.rpc import retention as rpc
from services.gateway.routes._upstream import ask, if_match, path_id, revision_json
from services.gateway.routes.registry_repos import (
    REPO_WRITERS,
    ProjectRef,
    project_filter,
    visible_repo,
)
from services.gateway.routing import ADMIN_ONLY, READ_ROLES, RequestContext, Route
from shared.errors import NotFound
from shared.http import json_response

_TAG = "registry-retention"
_POLICIES = "/api/v1/repos/{id:repo_[0-9a-f]+}/retention"
_POLICY = _POLICIES + "/{policy_id:ret_[0-9a-f]+}"
_RUN = _POLICY + "/run"
_RUNS = _POLICIES + "/runs"
_RUN_ONE = _RUNS + "/{run_id}"
_ADMIN = "/api/admin/retention"
_POLICY_ID = re.compile(r"ret_[0-9a-f]{32}")
_RUN_ID = re.compile(r"rrun_[0-9a-f]{32}")
_ERRORS = (404, 502, 503, 504)


class PolicyNotFound(NotFound):
    code, title = "retention_policy_not_found", "No such retention policy"


class RunNotFound(NotFound):
    code, title = "retention_run_not_found", "No such retention run"


class RunQuery(msgspec.Struct, frozen=True, kw_only=True):
    dry_run: bool = True


class AdminQuery(msgspec.Struct, frozen=True, kw_only=True):
    project_id: ProjectRef | None = None
    cursor: registry_rpc.Cursor | None = None
    limit: registry_rpc.Limit = registry_rpc.LIMIT_DEFAULT


class PageQuery(msgspec.Struct, frozen=True, kw_only=True):
    cursor: registry_rpc.Cursor | None = None
    limit: registry_rpc.Limit = registry_rpc.LIMIT_DEFAULT


def _policy_id(ctx: RequestContext) -> str:
    return path_id(ctx, "policy_id", _POLICY_ID, PolicyNotFound, "retention policy")


def _policy_response(view: rpc.RetentionPolicyView, *, status: int = 200) -> web.Response:
    location = f"/api/v1/repos/{view.repo_id}/retention/{view.id}"
    return revision_json(view, view.revision, status=status, location=location)


# ---- policies -------------------------------------------------------------------------------
async def list_policies(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, PageQuery)
    repo = await visible_repo(ctx)
    request = rpc.RetentionListRequest(repo_id=repo.id, cursor=query.cursor, limit=query.limit)
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.RETENTION_LIST, request, rpc.RetentionPolicyPage)
    )


async def create_policy(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, RetentionPolicy)
    repo = await visible_repo(ctx)
    request = rpc.RetentionCreateRequest(repo_id=repo.id, policy=body)
    view = await ask(ctx, rpc.SERVICE, rpc.RETENTION_CREATE, request, rpc.RetentionPolicyView)
    return _policy_response(view, status=201)


async def get_policy(ctx: RequestContext) -> web.StreamResponse:
    # No 304: deleted_count changes beside the revision.
    repo = await visible_repo(ctx)
    request = rpc.RetentionRef(repo_id=repo.id, id=_policy_id(ctx))
    return _policy_response(
        await ask(ctx, rpc.SERVICE, rpc.RETENTION_GET, request, rpc.RetentionPolicyView)
    )


async def replace_policy(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, RetentionPolicy)
    repo = await visible_repo(ctx)
    request = rpc.RetentionReplaceRequest(
        repo_id=repo.id, id=_policy_id(ctx), policy=body, if_match=if_match(ctx)
    )
    return _policy_response(
        await ask(ctx, rpc.SERVICE, rpc.RETENTION_REPLACE, request, rpc.RetentionPolicyView)
    )


async def delete_policy(ctx: RequestContext) -> web.StreamResponse:
    repo = await visible_repo(ctx)
    request = rpc.RetentionDeleteRequest(
        repo_id=repo.id, id=_policy_id(ctx), if_match=if_match(ctx)
    )
    await ask(ctx, rpc.SERVICE, rpc.RETENTION_DELETE, request, rpc.RetentionPolicyView)
    return web.Response(status=204)


async def list_all_policies(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, AdminQuery)
    request = rpc.RetentionListRequest(
        project_ids=await project_filter(ctx, query.project_id),
        cursor=query.cursor,
        limit=query.limit,
    )
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.RETENTION_LIST, request, rpc.RetentionPolicyPage)
    )


# ---- runs -----------------------------------------------------------------------------------
async def run_policy(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, RunQuery)
    repo = await visible_repo(ctx)
    request = rpc.RetentionRunRequest(repo_id=repo.id, id=_policy_id(ctx), dry_run=query.dry_run)
    run = await ask(ctx, rpc.SERVICE, rpc.RETENTION_RUN, request, rpc.RetentionRun)
    if run.dry_run or run.id is None:
        return json_response(run)
    location = f"/api/v1/repos/{repo.id}/retention/runs/{run.id}"
    return json_response(run, status=202, headers={"Location": location})


async def list_runs(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, PageQuery)
    repo = await visible_repo(ctx)
    request = rpc.RetentionRunListRequest(repo_id=repo.id, cursor=query.cursor, limit=query.limit)
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.RETENTION_RUN_LIST, request, rpc.RetentionRunPage)
    )


async def get_run(ctx: RequestContext) -> web.StreamResponse:
    repo = await visible_repo(ctx)
    request = rpc.RetentionRunRef(
        repo_id=repo.id, run_id=path_id(ctx, "run_id", _RUN_ID, RunNotFound, "retention run")
    )
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.RETENTION_RUN_GET, request, rpc.RetentionRun)
    )


_RULES = (
    "of the artifacts whose path matches pattern (a glob: * and ? within a path segment, ** "
    "across; every artifact without one), keep the newest keep_last per package and/or "
    "those younger than max_age_days; never delete promoted artifacts nor artifacts "
    "downloaded in the last keep_pulled_days (default 30); quarantined artifacts are left "
    "alone. 422 invalid_retention_policy (neither keep_last nor max_age_days, a bad "
    "pattern); 409 retention_policy_name_in_use (names are unique per repository, "
    "case-insensitively; conflicting_policy_id names the other)"
)
_SCOPED = "A project-scoped key sees its project's repositories only"

# {policy_id} matches ret_<hex> only, so …/retention/runs is never taken for a policy (nor
# its Allow header for a policy's).
ROUTES: list[Route] = [
    Route(
        method="GET",
        path=_POLICIES,
        handler=list_policies,
        roles=READ_ROLES,
        summary=f"A repository's retention policies, in creation order. {_SCOPED}",
        tag=_TAG,
        query=PageQuery,
        response=rpc.RetentionPolicyPage,
        errors=(422, *_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="POST",
        path=_POLICIES,
        handler=create_policy,
        roles=REPO_WRITERS,
        summary="Create a retention policy in a repository (retention.policy-set): "
        f"{_RULES}. 201 with Location and ETag",
        tag=_TAG,
        body=RetentionPolicy,
        response=rpc.RetentionPolicyView,
        response_status=201,
        errors=(409, 422, *_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path=_RUNS,
        handler=list_runs,
        roles=READ_ROLES,
        summary="A repository's retention runs, newest first, with status and progress",
        tag=_TAG,
        query=PageQuery,
        response=rpc.RetentionRunPage,
        errors=(422, *_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path=_RUN_ONE,
        handler=get_run,
        roles=READ_ROLES,
        summary="A retention run: status (queued, running, done, failed), total, deleted, "
        "skipped, bytes_freed, the artifacts it deletes with why, and what the guards kept; "
        "404 retention_run_not_found",
        tag=_TAG,
        response=rpc.RetentionRun,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path=_POLICY,
        handler=get_policy,
        roles=READ_ROLES,
        summary="A retention policy with its ETag and how many artifacts it deleted; 404 "
        "retention_policy_not_found",
        tag=_TAG,
        response=rpc.RetentionPolicyView,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
    Route(
        method="PUT",
        path=_POLICY,
        handler=replace_policy,
        roles=REPO_WRITERS,
        summary=f"Replace a retention policy whole (retention.policy-set): {_RULES}. "
        "If-Match: 412 precondition_failed",
        tag=_TAG,
        body=RetentionPolicy,
        response=rpc.RetentionPolicyView,
        errors=(409, 412, 422, *_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="DELETE",
        path=_POLICY,
        handler=delete_policy,
        roles=REPO_WRITERS,
        summary="Delete a retention policy (retention.policy-deleted): a queued run of it "
        "ends failed, a running one skips what it has not deleted yet. If-Match: 412 "
        "precondition_failed",
        tag=_TAG,
        response_status=204,
        errors=(412, *_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="POST",
        path=_RUN,
        handler=run_policy,
        roles=REPO_WRITERS,
        summary="Run a retention policy. dry_run=true (the default): 200 with what would be "
        "deleted and why, and what the guards keep; nothing changes. dry_run=false: 202 with "
        "the queued run and its Location; each deletion publishes retention.deleted then "
        "artifact.deleted (reason retention). 409 retention_policy_disabled (a real run of a "
        "disabled policy)",
        tag=_TAG,
        query=RunQuery,
        response=rpc.RetentionRun,
        response_status=202,
        also_succeeds=(200,),
        errors=(409, 422, *_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path=_ADMIN,
        handler=list_all_policies,
        roles=ADMIN_ONLY,
        summary="Every repository's retention policies, in creation order, by project (id or slug)",
        tag=_TAG,
        query=AdminQuery,
        response=rpc.RetentionPolicyPage,
        errors=(422, 502, 503, 504),
    ),
]
