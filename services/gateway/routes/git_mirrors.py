"""A repository's git mirror (owned by the signature-verifier, asked over
``svc.signature-verifier.mirror_*``).

* ``PUT /api/v1/repos/{owner}/{repo}/git`` ``{clone_url, default_branch?, credential?}``
  configures it (201 the first time, 200 after), ``GET`` shows it with its fetch status,
  ``DELETE`` drops it (204).
* ``POST /api/v1/repos/{owner}/{repo}/sync`` queues a fetch now (202).

ADMIN or OPERATOR. The repo must be listed by a project's ``repos`` (in any case, as
GitHub compares them; 404 ``repo_not_found`` otherwise): the gateway owns projects and
passes the project's id. A project-scoped key works on its own project's repos only.
"""

from __future__ import annotations

from aiohttp import web

from contracts.rpc import signatures as rpc
from services.gateway.adapters.read_model import projects_listing_repo
from services.gateway.commits_cache import commits_changed
from services.gateway.deps import deps_of
from services.gateway.routes._upstream import RepoNotVisible, ask
from services.gateway.routing import RequestContext, Route, roles
from shared.http import json_response

MIRROR_ADMINS = roles("ADMIN", "OPERATOR")
_TAG = "repositories"
_ERRORS = (404, 502, 503, 504)
_GIT = "/api/v1/repos/{owner}/{repo}/git"
_SYNC = "/api/v1/repos/{owner}/{repo}/sync"


async def _repo_and_project(ctx: RequestContext) -> tuple[str, str]:
    """``owner/repo`` of the path and the project listing it (the caller's own, for a
    project-scoped key; else the oldest)."""
    repo = f"{ctx.request.match_info['owner']}/{ctx.request.match_info['repo']}"
    projects = await projects_listing_repo(deps_of(ctx).pool, repo)
    scope = ctx.principal.project_id if ctx.principal else None
    if scope is not None:
        projects = [p for p in projects if p.id == scope]
    if not projects:
        raise RepoNotVisible(f"no project lists {repo}")
    # The name as the project spells it: the mirror's events carry it.
    listed = next(r for r in projects[0].repos if r.lower() == repo.lower())
    return listed, projects[0].id


async def put_mirror(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.MirrorBody)
    repo, project_id = await _repo_and_project(ctx)
    request = rpc.MirrorPutRequest(repo=repo, project_id=project_id, mirror=body)
    reply = await ask(ctx, rpc.SERVICE, rpc.MIRROR_PUT, request, rpc.MirrorPutReply)
    commits_changed(ctx, repo=repo)
    return json_response(reply.mirror, status=201 if reply.created else 200)


async def get_mirror(ctx: RequestContext) -> web.StreamResponse:
    repo, _ = await _repo_and_project(ctx)
    request = rpc.MirrorRequest(repo=repo)
    return json_response(await ask(ctx, rpc.SERVICE, rpc.MIRROR_GET, request, rpc.MirrorView))


async def delete_mirror(ctx: RequestContext) -> web.StreamResponse:
    repo, _ = await _repo_and_project(ctx)
    await ask(ctx, rpc.SERVICE, rpc.MIRROR_DELETE, rpc.MirrorRequest(repo=repo), rpc.MirrorView)
    commits_changed(ctx, repo=repo)
    return web.Response(status=204)


async def sync_mirror(ctx: RequestContext) -> web.StreamResponse:
    repo, _ = await _repo_and_project(ctx)
    request = rpc.MirrorRequest(repo=repo)
    reply = await ask(ctx, rpc.SERVICE, rpc.MIRROR_SYNC, request, rpc.MirrorSyncReply)
    commits_changed(ctx, repo=repo)
    return json_response(reply, status=202)


ROUTES: list[Route] = [
    Route(
        method="PUT",
        path=_GIT,
        handler=put_mirror,
        roles=MIRROR_ADMINS,
        summary="Configure the repository's git mirror (201 the first time, 200 after): "
        "clone_url (https, ssh, or file:// / a local path when GATEHOUSE_GIT_ALLOW_FILE_URLS), "
        "default_branch (absent: the remote's HEAD), credential (the name of a token in "
        "GATEHOUSE_GIT_CREDENTIALS, never the token). 422 clone_url_refused (with its reason: "
        "scheme, credentials_in_url, file_urls_disabled, relative_path, address, "
        "unresolvable, malformed), credential_not_found, invalid_branch_name; 404 "
        "repo_not_found when no project lists the repo. The fetch runs afterwards",
        tag=_TAG,
        body=rpc.MirrorBody,
        response=rpc.MirrorView,
        also_succeeds=(201,),
        errors=(422, *_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path=_GIT,
        handler=get_mirror,
        roles=MIRROR_ADMINS,
        summary="The repository's git mirror and its fetch status (state, started_at, "
        "finished_at, succeeded_at, last_error, progress, head); 404 mirror_not_found",
        tag=_TAG,
        response=rpc.MirrorView,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
    Route(
        method="DELETE",
        path=_GIT,
        handler=delete_mirror,
        roles=MIRROR_ADMINS,
        summary="Drop the repository's git mirror (its verification rows stay); 404 "
        "mirror_not_found",
        tag=_TAG,
        response_status=204,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
    Route(
        method="POST",
        path=_SYNC,
        handler=sync_mirror,
        roles=MIRROR_ADMINS,
        summary="Fetch the repository's mirror now: 202 with its status (queued); poll GET "
        "…/git for the outcome. Its new commits on the default branch are announced as "
        "commit.pushed (source git). 404 mirror_not_found",
        tag=_TAG,
        response=rpc.MirrorSyncReply,
        response_status=202,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
]
