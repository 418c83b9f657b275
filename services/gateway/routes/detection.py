"""``GET /api/v1/detection/findings``: findings across projects, as promotion gates and
dashboards read them (owned by the scanner, asked over ``svc.scanner.detection_findings``).

The open findings of every project's latest snapshot, most severe first, then by finding id
(descending): a stable order, so a page starts strictly after the previous one.

* ``project``: project ids or slugs, repeated or comma-separated (422 ``unknown_project``).
* ``repo``: a registry repository id (``repo_…``: the findings of the project that owns it)
  or a git repository ``owner/name`` (each project's latest snapshot scanned from it, the
  name compared in any case). 422 ``unknown_repository`` / ``invalid_repo``.
* ``severity``: levels (repeated or comma-separated); ``min_severity``: this level or
  worse; ``state``: VEX states (repeated or comma-separated); ``epss_min``: 0..1;
  ``package``: a component name (any case) or a purl prefix (``pkg:pypi/django``).

Any role reads; a project-scoped key reads its own project's findings only (naming another
project or repository is 422, as an unknown one).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from aiohttp import web

from contracts.events.scans import VexState
from contracts.rpc import registry
from contracts.rpc import scanner_scans as rpc
from services.gateway.domain.errors import FieldInvalid
from services.gateway.routes._upstream import ask
from services.gateway.routes.registry_repos import resolve_project
from services.gateway.routing import READ_ROLES, RequestContext, Route
from shared.errors import NotFound
from shared.http import json_response

_REGISTRY_REPO = re.compile(r"repo_[0-9a-f]{32}")
_GIT_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}/[A-Za-z0-9._-]{1,100}")
_ListItem = Annotated[str, msgspec.Meta(max_length=2000)]


class DetectionQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    project: list[_ListItem] | None = (
        None  # ids or slugs, repeated or comma-separated (at most 100)
    )
    repo: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=300,
                description="A registry repository id (repo_…) or a git repository owner/name",
            ),
        ]
        | None
    ) = None
    severity: list[_ListItem] | None = None
    min_severity: rpc.Severity | None = None
    state: list[_ListItem] | None = None
    epss_min: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    package: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=500,
                description="A component name (any case) or a purl prefix (pkg:…)",
            ),
        ]
        | None
    ) = None
    cursor: rpc.Cursor | None = None
    limit: rpc.Limit = rpc.DEFAULT_LIMIT


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return list(dict.fromkeys(p.strip() for v in values for p in v.split(",") if p.strip()))


def _levels(field: str, values: list[str] | None, type_: Any) -> list[Any] | None:
    found = _split(values)
    if found is None:
        return None
    try:
        return list(msgspec.convert(found, list[type_]))
    except msgspec.ValidationError as exc:
        raise FieldInvalid(field, f"not one of the accepted values: {exc}") from None


async def _projects(ctx: RequestContext, refs: list[str] | None) -> list[str] | None:
    scope = ctx.principal.project_id if ctx.principal else None
    if refs is None:
        return [scope] if scope is not None else None
    if len(refs) > 100:
        raise FieldInvalid("project", "at most 100 projects")
    return [await resolve_project(ctx, ref, field="project") for ref in refs]


async def _registry_repo_project(ctx: RequestContext, repo_id: str) -> str:
    scope = ctx.principal.project_id if ctx.principal else None
    try:
        found = await ask(
            ctx,
            registry.SERVICE,
            registry.REPOSITORY_GET,
            registry.RepositoryRef(id=repo_id),
            registry.Repository,
        )
    except NotFound:
        found = None
    if found is None or (scope is not None and found.project_id != scope):
        raise FieldInvalid("repo", f"no repository {repo_id!r}", code="unknown_repository")
    return found.project_id


async def detection_findings(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, DetectionQuery)
    severity = _levels("severity", query.severity, rpc.Severity)
    state = _levels("state", query.state, VexState)
    project_ids = await _projects(ctx, _split(query.project))
    git_repo: str | None = None
    if query.repo is not None:
        if _REGISTRY_REPO.fullmatch(query.repo):
            owner = await _registry_repo_project(ctx, query.repo)
            project_ids = [owner] if project_ids is None or owner in project_ids else []
        elif _GIT_REPO.fullmatch(query.repo):
            git_repo = query.repo
        else:
            raise FieldInvalid(
                "repo", "a registry repository id (repo_…) or owner/name", code="invalid_repo"
            )
    request = rpc.DetectionFindingsRequest(
        project_ids=project_ids,
        repo=git_repo,
        severity=severity,
        min_severity=query.min_severity,
        state=state,
        epss_min=query.epss_min,
        package=query.package,
        cursor=query.cursor,
        limit=query.limit,
    )
    page = await ask(ctx, rpc.SERVICE, rpc.DETECTION_FINDINGS, request, rpc.DetectionFindingPage)
    return json_response(page)


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/api/v1/detection/findings",
        handler=detection_findings,
        roles=READ_ROLES,
        summary="Open findings of every project's latest snapshot, most severe first then by "
        "id (descending), cursor paginated; filters: project (ids or slugs), repo (repo_… "
        "or owner/name), severity, min_severity, state (VEX), epss_min, package (a name or "
        "a purl prefix). A project-scoped key reads its own project's. 422 unknown_project, "
        "unknown_repository, invalid_repo",
        tag="scans",
        query=DetectionQuery,
        response=rpc.DetectionFindingPage,
        errors=(422, 502, 503, 504),
        allow_project_scoped=True,
    ),
]
