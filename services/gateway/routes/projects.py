"""Projects: create, list, read, update (If-Match), archive (DELETE).

Roles: any role reads; ADMIN and POLICY_AUTHOR create and update (policy authors set projects
up); only ADMIN archives. A project-scoped key sees and changes only its own project.
"""

from __future__ import annotations

from aiohttp import web

from contracts.events.identity import ProjectArchived, ProjectCreated
from contracts.ids import new_id
from services.gateway.adapters.read_model import (
    find_project,
    list_projects,
    project_state,
    slug_in_use,
)
from services.gateway.deps import deps_of
from services.gateway.domain.errors import ProjectArchived as ProjectIsArchived
from services.gateway.domain.errors import ProjectNotFound, SlugTaken
from services.gateway.domain.etag import check_if_match, etag_for, none_match
from services.gateway.domain.projects import check_new_slug, check_repos, project_changes
from services.gateway.dto import (
    ProjectCreate,
    ProjectList,
    ProjectListQuery,
    ProjectPatch,
    ProjectView,
)
from services.gateway.routes._pages import after_key
from services.gateway.routing import (
    ADMIN_ONLY,
    READ_ROLES,
    RequestContext,
    Route,
    roles,
)
from shared.http import json_response
from shared.pagination import split_page

PROJECT_WRITERS = roles("ADMIN", "POLICY_AUTHOR")


def _answer(project: ProjectView, *, status: int = 200) -> web.Response:
    headers = {"ETag": etag_for(project.version)}
    if status == 201:
        headers["Location"] = f"/api/v1/projects/{project.id}"
    return json_response(project, status=status, headers=headers)


async def _project_for(ctx: RequestContext) -> ProjectView:
    """The project named in the path (the dispatcher already checked a scoped key's access)."""
    ref = ctx.request.match_info["project"]
    project = await find_project(deps_of(ctx).pool, ref)
    if project is None:
        raise ProjectNotFound(ref)
    return project


async def create_project(ctx: RequestContext) -> web.StreamResponse:
    return await deps_of(ctx).writer.once(
        ctx.command_id,
        first=lambda: _create_project(ctx),
        again=lambda applied: _created(ctx, applied.aggregate_id),
    )


async def _create_project(ctx: RequestContext) -> web.StreamResponse:
    deps, body = deps_of(ctx), ctx.body
    assert isinstance(body, ProjectCreate)
    check_new_slug(body.slug)
    check_repos(body.repos)
    project_id = new_id()
    async with deps.writer.locked(f"project-slug:{body.slug}") as conn:
        if await slug_in_use(conn, body.slug):
            raise SlugTaken(f"the slug {body.slug!r} is already in use")
        await deps.writer.emit(
            ProjectCreated(
                project_id=project_id,
                slug=body.slug,
                name=body.name,
                description=body.description,
                default_branch=body.default_branch,
                repos=list(body.repos),
                badge=body.badge,
            ),
            aggregate=f"project:{project_id}",
            actor=ctx.actor,
            correlation_id=ctx.request_id,
        )
    return await _created(ctx, project_id)


async def _created(ctx: RequestContext, project_id: str) -> web.Response:
    created = await find_project(deps_of(ctx).pool, project_id)
    assert created is not None
    return _answer(created, status=201)


async def list_all_projects(ctx: RequestContext) -> web.StreamResponse:
    deps, query, principal = deps_of(ctx), ctx.query, ctx.principal
    assert isinstance(query, ProjectListQuery) and principal is not None
    rows = await list_projects(
        deps.pool,
        after_slug=after_key(query),
        limit=query.limit + 1,
        include_archived=query.include_archived,
        only_project=principal.project_id,
    )
    items, next_cursor = split_page(rows, limit=query.limit, key=lambda p: (p.slug,))
    return json_response(ProjectList(items=items, next_cursor=next_cursor))


async def get_project(ctx: RequestContext) -> web.StreamResponse:
    project = await _project_for(ctx)
    etag = etag_for(project.version)
    if none_match(ctx.request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers={"ETag": etag})
    return _answer(project)


async def update_project(ctx: RequestContext) -> web.StreamResponse:
    deps, patch = deps_of(ctx), ctx.body
    assert isinstance(patch, ProjectPatch)
    if isinstance(patch.repos, list):
        check_repos(patch.repos)
    project_id = (await _project_for(ctx)).id
    async with deps.writer.locked(f"project:{project_id}") as conn:
        project = await find_project(conn, project_id)
        assert project is not None  # projects are archived, never removed
        check_if_match(ctx.request.headers.get("If-Match"), etag_for(project.version))
        if project.archived:
            raise ProjectIsArchived(f"project {project.slug!r} is archived and cannot change")
        change = project_changes(project_state(project), patch)
        if change is not None:
            await deps.writer.emit(
                change,
                aggregate=f"project:{project_id}",
                actor=ctx.actor,
                correlation_id=ctx.request_id,
            )
    updated = await find_project(deps.pool, project_id)
    assert updated is not None
    return _answer(updated)


async def archive_project(ctx: RequestContext) -> web.StreamResponse:
    deps = deps_of(ctx)
    project_id = (await _project_for(ctx)).id
    async with deps.writer.locked(f"project:{project_id}") as conn:
        project = await find_project(conn, project_id)
        assert project is not None
        check_if_match(ctx.request.headers.get("If-Match"), etag_for(project.version))
        if not project.archived:  # archiving twice is a no-op, not an error
            await deps.writer.emit(
                ProjectArchived(project_id=project_id),
                aggregate=f"project:{project_id}",
                actor=ctx.actor,
                correlation_id=ctx.request_id,
            )
    return web.Response(status=204)


ROUTES: list[Route] = [
    Route(
        method="POST",
        path="/api/v1/projects",
        handler=create_project,
        roles=PROJECT_WRITERS,
        summary="Create a project (the slug is unique and permanent)",
        tag="projects",
        body=ProjectCreate,
        response=ProjectView,
        response_status=201,
        errors=(409,),
    ),
    Route(
        method="GET",
        path="/api/v1/projects",
        handler=list_all_projects,
        roles=READ_ROLES,
        summary="List projects by slug; archived ones only with include_archived=true",
        tag="projects",
        query=ProjectListQuery,
        response=ProjectList,
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}",
        handler=get_project,
        roles=READ_ROLES,
        summary="Read a project by id or slug (ETag; If-None-Match answers 304)",
        tag="projects",
        response=ProjectView,
        errors=(404,),
        project_param="project",
    ),
    Route(
        method="PATCH",
        path="/api/v1/projects/{project}",
        handler=update_project,
        roles=PROJECT_WRITERS,
        summary="Change fields of a project; send If-Match with the ETag you read",
        tag="projects",
        body=ProjectPatch,
        response=ProjectView,
        errors=(404, 409, 412),
        project_param="project",
    ),
    Route(
        method="DELETE",
        path="/api/v1/projects/{project}",
        handler=archive_project,
        roles=ADMIN_ONLY,
        summary="Archive a project (it keeps its history and its slug)",
        tag="projects",
        response_status=204,
        errors=(404, 412),
        project_param="project",
    ),
]
