"""The release gate (owned by release-decision, asked over ``svc.release-decision.*``).

* ``GET /api/v1/releases/decision?repo=&commit=[&as_of=]``: SHIP or NO_SHIP with every
  blocker, read through :func:`services.gateway.decision_reads.read_decision` (the one
  place decisions are read at the gateway).

A project-scoped key sees only the repos its project lists (any other repo answers 404
``repo_not_found``, as an unknown one does).
"""

from __future__ import annotations

from aiohttp import web

from contracts.rpc import release_decision as rpc
from services.gateway.adapters.read_model import find_project
from services.gateway.decision_reads import read_decision
from services.gateway.deps import deps_of
from services.gateway.routing import ALL_ROLES, RequestContext, Route
from shared.errors import NotFound
from shared.http import json_response

_ERRORS = (404, 502, 503, 504)


class RepoNotVisible(NotFound):
    code, title = "repo_not_found", "No project lists this repository and nothing names it"


async def _check_repo_scope(ctx: RequestContext, repo: str) -> None:
    """A project-scoped key may read only the repos of its own project."""
    principal = ctx.principal
    if principal is None or principal.project_id is None:
        return
    project = await find_project(deps_of(ctx).pool, principal.project_id)
    if project is None or repo not in project.repos:
        raise RepoNotVisible(f"no project lists {repo}")


async def get_decision(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.DecisionRequest)
    await _check_repo_scope(ctx, query.repo)
    return json_response(await read_decision(ctx, query))


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/api/v1/releases/decision",
        handler=get_decision,
        roles=ALL_ROLES,
        summary="May this commit ship? SHIP or NO_SHIP with every blocker, the baseline (the "
        "repo's latest promoted snapshot), the policy version and when it was decided. "
        "commit=HEAD: the newest commit seen on the default branch; as_of=<RFC 3339>: the "
        "decision as it was then",
        tag="releases",
        query=rpc.DecisionRequest,
        response=rpc.DecisionView,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
]
