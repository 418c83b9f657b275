"""Registry repositories and the artifact metadata API (owned by the scanner, asked over
``svc.scanner.repository_*`` / ``artifact_*``), at OrbitalReg's paths.

* ``GET /api/v1/repos?project_id=&slug=&cursor=&limit=`` (``project_id``: a project id or
  slug) and ``POST /api/v1/repos`` ``{project_id, slug, format: pypi | generic, visibility,
  quarantine_new, description, quota_bytes, quota_artifacts}`` (ADMIN or OPERATOR) → 201
  with ``Location``; ``GET/PATCH/DELETE /api/v1/repos/{id}`` with ``ETag: "v<revision>"``
  and ``If-Match`` (412). ``{id}`` is ``repo_<32 hex>``: one path segment, so the git
  routes under ``/api/v1/repos/{owner}/{repo}/…`` are untouched.
* ``GET /api/v1/artifacts?repo=&q=&cursor=&limit=`` (``repo``: a repository id or
  ``<project>/<slug>``; ``q``: a substring of the name, path or purl) and
  ``GET /api/v1/artifacts/{id}``: any role.

A project-scoped key sees and changes its own project's repositories and artifacts only;
another project's answers exactly as a missing one.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from aiohttp import web

from contracts.events.registry import RepoSlug
from contracts.rpc import registry as rpc
from services.gateway.adapters.read_model import find_project
from services.gateway.deps import deps_of
from services.gateway.domain.errors import FieldInvalid
from services.gateway.routes._upstream import ask, if_match, path_id, revision_json
from services.gateway.routing import READ_ROLES, RequestContext, Route, roles
from shared.errors import NotFound
from shared.http import json_response

REPO_WRITERS = roles("ADMIN", "OPERATOR")
_TAG = "registry"
_REPOS = "/api/v1/repos"
_REPO = "/api/v1/repos/{id}"
_ARTIFACTS = "/api/v1/artifacts"
_ARTIFACT = "/api/v1/artifacts/{id}"
_REPO_ID = re.compile(r"repo_[0-9a-f]{32}")
_ARTIFACT_ID = re.compile(r"art_[0-9a-f]{32}")
_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_ERRORS = (404, 502, 503, 504)


class RepositoryNotFound(NotFound):
    code, title = "repository_not_found", "No such repository"


class ArtifactNotFound(NotFound):
    code, title = "artifact_not_found", "No such artifact"


ProjectRef = Annotated[
    str, msgspec.Meta(min_length=1, max_length=200, description="A project id or slug")
]


class RepoListQuery(msgspec.Struct, frozen=True, kw_only=True):
    project_id: ProjectRef | None = None
    slug: RepoSlug | None = None
    cursor: rpc.Cursor | None = None
    limit: rpc.Limit = rpc.LIMIT_DEFAULT


class ArtifactQuery(msgspec.Struct, frozen=True, kw_only=True):
    repo: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=300,
                description="A repository id (repo_…) or <project id or slug>/<repo slug>",
            ),
        ]
        | None
    ) = None
    q: rpc.Query | None = None
    cursor: rpc.Cursor | None = None
    limit: rpc.Limit = rpc.LIMIT_DEFAULT


def _scope(ctx: RequestContext) -> str | None:
    return ctx.principal.project_id if ctx.principal else None


def _visible(ctx: RequestContext, project_id: str) -> bool:
    scope = _scope(ctx)
    return scope is None or scope == project_id


async def resolve_project(ctx: RequestContext, ref: str, *, field: str) -> str:
    """The id of the project ``ref`` (an id or slug) names; 422 ``unknown_project`` when
    there is none, or when a project-scoped key names another project."""
    project = await find_project(deps_of(ctx).pool, ref)
    if project is None or not _visible(ctx, project.id):
        raise FieldInvalid(field, f"no project {ref!r}", code="unknown_project")
    return project.id


async def project_filter(ctx: RequestContext, ref: str | None) -> list[str] | None:
    """The ``project_id`` filter of a list: the project ``ref`` names (see
    :func:`resolve_project`), or None (any)."""
    if ref is None:
        return None
    return [await resolve_project(ctx, ref, field="project_id")]


def _repo_id(ctx: RequestContext) -> str:
    return path_id(ctx, "id", _REPO_ID, RepositoryNotFound, "repository")


async def visible_repo(ctx: RequestContext) -> rpc.Repository:
    """The repository of the path (``repo_<hex>``); another project's, for a project-scoped
    key, answers as a missing one."""
    repo_id = _repo_id(ctx)
    repo = await ask(
        ctx, rpc.SERVICE, rpc.REPOSITORY_GET, rpc.RepositoryRef(id=repo_id), rpc.Repository
    )
    if not _visible(ctx, repo.project_id):
        raise RepositoryNotFound(f"no repository {repo_id!r}")
    return repo


def _repo_response(repo: rpc.Repository, *, status: int = 200) -> web.Response:
    return revision_json(repo, repo.revision, status=status, location=f"{_REPOS}/{repo.id}")


# ---- repositories ---------------------------------------------------------------------------
async def create_repo(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.RepositoryBody)
    project_id = await resolve_project(ctx, body.project_id, field="project_id")
    request = rpc.RepositoryCreateRequest(body=msgspec.structs.replace(body, project_id=project_id))
    repo = await ask(ctx, rpc.SERVICE, rpc.REPOSITORY_CREATE, request, rpc.Repository)
    return _repo_response(repo, status=201)


async def list_repos(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, RepoListQuery)
    scope = _scope(ctx)
    project_ids = await project_filter(ctx, query.project_id)
    if project_ids is None and scope is not None:
        project_ids = [scope]
    request = rpc.RepositoryListRequest(
        project_ids=project_ids, slug=query.slug, cursor=query.cursor, limit=query.limit
    )
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.REPOSITORY_LIST, request, rpc.RepositoryPage)
    )


async def get_repo(ctx: RequestContext) -> web.StreamResponse:
    # No 304: the ETag is the configuration's revision, and the usage changes beside it.
    return _repo_response(await visible_repo(ctx))


async def update_repo(ctx: RequestContext) -> web.StreamResponse:
    patch = ctx.body
    assert isinstance(patch, rpc.RepositoryPatch)
    repo = await visible_repo(ctx)
    request = rpc.RepositoryUpdateRequest(id=repo.id, patch=patch, if_match=if_match(ctx))
    return _repo_response(
        await ask(ctx, rpc.SERVICE, rpc.REPOSITORY_UPDATE, request, rpc.Repository)
    )


async def delete_repo(ctx: RequestContext) -> web.StreamResponse:
    repo = await visible_repo(ctx)
    request = rpc.RepositoryDeleteRequest(id=repo.id, if_match=if_match(ctx))
    await ask(ctx, rpc.SERVICE, rpc.REPOSITORY_DELETE, request, rpc.Repository)
    return web.Response(status=204)


# ---- artifacts ------------------------------------------------------------------------------
async def _repo_filter(ctx: RequestContext, ref: str | None) -> str | None:
    """The repository id ``?repo=`` names (an id, or ``<project>/<slug>``)."""
    if ref is None or _REPO_ID.fullmatch(ref):
        return ref
    project_ref, slash, slug = ref.rpartition("/")
    if not slash or not project_ref or not slug:
        raise FieldInvalid(
            "repo", "a repository id (repo_…) or <project>/<slug>", code="invalid_repo"
        )
    project_id = await resolve_project(ctx, project_ref, field="repo")
    try:
        if not _SLUG.fullmatch(slug):
            raise RepositoryNotFound(slug)
        found = await ask(
            ctx,
            rpc.SERVICE,
            rpc.REPOSITORY_GET,
            rpc.RepositoryRef(project_id=project_id, slug=slug),
            rpc.Repository,
        )
    except NotFound:
        raise FieldInvalid("repo", f"no repository {ref!r}", code="unknown_repository") from None
    return found.id


async def list_artifacts(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, ArtifactQuery)
    scope = _scope(ctx)
    request = rpc.ArtifactListRequest(
        project_ids=[scope] if scope is not None else None,
        repo_id=await _repo_filter(ctx, query.repo),
        q=query.q,
        cursor=query.cursor,
        limit=query.limit,
    )
    return json_response(await ask(ctx, rpc.SERVICE, rpc.ARTIFACT_LIST, request, rpc.ArtifactPage))


async def get_artifact(ctx: RequestContext) -> web.StreamResponse:
    value = path_id(ctx, "id", _ARTIFACT_ID, ArtifactNotFound, "artifact")
    artifact = await ask(
        ctx, rpc.SERVICE, rpc.ARTIFACT_GET, rpc.ArtifactGetRequest(id=value), rpc.Artifact
    )
    if not _visible(ctx, artifact.project_id):
        raise ArtifactNotFound(f"no artifact {value!r}")
    return json_response(artifact)


_SCOPED = "A project-scoped key sees its project only (another project's answers as a missing one)"

ROUTES: list[Route] = [
    Route(
        method="POST",
        path=_REPOS,
        handler=create_repo,
        roles=REPO_WRITERS,
        summary="Create a registry repository in a project (project_id: the project's id or "
        "slug): format pypi | generic, visibility public | private, quarantine_new (new "
        "artifacts wait for their scan or an admin), quotas in bytes and artifacts (null: "
        "unlimited). 201 with Location and ETag; 409 repository_slug_taken; 422 "
        "unknown_project",
        tag=_TAG,
        body=rpc.RepositoryBody,
        response=rpc.Repository,
        response_status=201,
        errors=(409, 422, 502, 503, 504),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path=_REPOS,
        handler=list_repos,
        roles=READ_ROLES,
        summary="List registry repositories in creation order, by project (id or slug) and "
        f"slug. {_SCOPED}",
        tag=_TAG,
        query=RepoListQuery,
        response=rpc.RepositoryPage,
        errors=(422, 502, 503, 504),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path=_REPO,
        handler=get_repo,
        roles=READ_ROLES,
        summary="A registry repository with its usage and its ETag (the revision of its "
        "configuration); 404 repository_not_found",
        tag=_TAG,
        response=rpc.Repository,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
    Route(
        method="PATCH",
        path=_REPO,
        handler=update_repo,
        roles=REPO_WRITERS,
        summary="Change a registry repository's visibility, quarantine_new, description or "
        "quotas (slug, project and format never change). If-Match: 412 precondition_failed; "
        "404 repository_not_found",
        tag=_TAG,
        body=rpc.RepositoryPatch,
        response=rpc.Repository,
        errors=(412, 422, *_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="DELETE",
        path=_REPO,
        handler=delete_repo,
        roles=REPO_WRITERS,
        summary="Delete a registry repository with every artifact in it (repository.deleted). "
        "If-Match: 412 precondition_failed; 404 repository_not_found",
        tag=_TAG,
        response_status=204,
        errors=(412, *_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path=_ARTIFACTS,
        handler=list_artifacts,
        roles=READ_ROLES,
        summary="List artifacts, newest first: by repository (repo_… or <project>/<slug>) "
        "and a case-insensitive substring of the name, path or purl (q). 422 invalid_repo, "
        f"unknown_repository. {_SCOPED}",
        tag=_TAG,
        query=ArtifactQuery,
        response=rpc.ArtifactPage,
        errors=(422, 502, 503, 504),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path=_ARTIFACT,
        handler=get_artifact,
        roles=READ_ROLES,
        summary="An artifact: name, version, purl, digest, size, uploaded by/when, "
        "provenance, scan status, quarantine; 404 artifact_not_found",
        tag=_TAG,
        response=rpc.Artifact,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
]
