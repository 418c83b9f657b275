"""The release gate (owned by release-decision, asked over ``svc.release-decision.*``).

* ``GET /api/v1/releases/decision?repo=&commit=[&as_of=]``: SHIP or NO_SHIP with every
  blocker, read through :func:`services.gateway.decision_reads.read_decision` (the one
  place decisions are read at the gateway).
* ``GET /api/v1/releases/decision/history?repo=[&commit=]``: the revisions and the event
  that caused each, newest first.
* ``GET/PUT /api/v1/releases/policy[?project=]``: the org decision policy or a project's
  override (``ETag: "v<n>"``, ``If-Match`` on PUT; POLICY_AUTHOR or ADMIN write).
* ``POST /api/v1/releases/promote``, ``GET /api/v1/releases/promotions``.
* ``GET /api/v1/releases/health[?repo=|?project=]``.

Project-scoped keys: a repo is visible only when the key's project lists it (any other
answers 404 ``repo_not_found``, as an unknown one does); the org policy is readable, a
project's only when it is the key's own; promotions, their listing and health are limited
to the key's project.
"""

from __future__ import annotations

from aiohttp import web

from contracts.rpc import release_decision as rpc
from services.gateway.adapters.read_model import find_project
from services.gateway.decision_reads import decisions_changed, read_decision
from services.gateway.deps import deps_of
from services.gateway.domain.errors import (
    FieldInvalid,
    ProjectArchived,
    ProjectNotFound,
    ProjectScopeForbidden,
)
from services.gateway.domain.etag import accepted_versions
from services.gateway.routes._upstream import ask, check_repo_scope, versioned_json
from services.gateway.routing import ALL_ROLES, READ_ROLES, RequestContext, Route, roles
from shared.http import json_response

POLICY_WRITERS = roles("ADMIN", "POLICY_AUTHOR")
PROMOTERS = roles("ADMIN", "OPERATOR", "APPROVER")
_ERRORS = (404, 502, 503, 504)


def _scope(ctx: RequestContext) -> str | None:
    return ctx.principal.project_id if ctx.principal else None


async def _project_id(ctx: RequestContext, ref: str | None, *, writing: bool = False) -> str | None:
    """The project named by ``?project=`` (id or slug); a scoped key: only its own, and
    its own when none is named. An archived project takes no change."""
    scope = _scope(ctx)
    if ref is None:
        return scope
    project = await find_project(deps_of(ctx).pool, ref)
    if project is None or (scope is not None and project.id != scope):
        raise ProjectNotFound(ref)
    if writing and project.archived:
        raise ProjectArchived(f"project {project.slug!r} is archived and cannot change")
    return project.id


# ---- decisions ------------------------------------------------------------------------------
async def get_decision(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.DecisionQuery)
    if query.artifact is not None:
        return json_response(await read_artifact_decision(ctx, query))
    if query.repo is None or query.commit is None:
        missing = "repo" if query.repo is None else "commit"
        raise FieldInvalid(missing, "give repo and commit, or artifact=sha256:<hex>")
    await check_repo_scope(ctx, query.repo)
    request = rpc.DecisionRequest(repo=query.repo, commit=query.commit, as_of=query.as_of)
    return json_response(await read_decision(ctx, request))


async def read_artifact_decision(ctx: RequestContext, query: rpc.DecisionQuery) -> rpc.DecisionView:
    """The decision of a registry artifact, from release-decision (never the hot copy of
    commit decisions: it is evaluated when asked)."""
    if query.repo is not None or query.commit is not None:
        field = "repo" if query.repo is not None else "commit"
        raise FieldInvalid(field, "artifact names the artifact alone: drop repo and commit")
    if query.as_of is not None:
        raise FieldInvalid("as_of", "as_of is for a commit's decision, not an artifact's")
    assert query.artifact is not None
    scope = _scope(ctx)
    request = rpc.ArtifactDecisionRequest(
        digest=query.artifact, project_ids=[scope] if scope is not None else None
    )
    return await ask(ctx, rpc.SERVICE, rpc.ARTIFACT_DECISION, request, rpc.DecisionView)


async def get_history(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.DecisionHistoryQuery)
    await check_repo_scope(ctx, query.repo)
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.DECISION_HISTORY, query, rpc.DecisionHistoryPage)
    )


# ---- policy ---------------------------------------------------------------------------------
async def _policy_project(ctx: RequestContext, *, writing: bool = False) -> str | None:
    query = ctx.query
    assert isinstance(query, rpc.PolicyQuery)
    if query.project is None:
        return None  # the org policy (a scoped key reads it, and cannot write it: see PUT)
    return await _project_id(ctx, query.project, writing=writing)


async def get_policy(ctx: RequestContext) -> web.StreamResponse:
    request = rpc.PolicyGetRequest(project_id=await _policy_project(ctx))
    view = await ask(ctx, rpc.SERVICE, rpc.POLICY_GET, request, rpc.DecisionPolicyView)
    return versioned_json(ctx, view, view.version)


async def put_policy(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.DecisionPolicyBody)
    project_id = await _policy_project(ctx, writing=True)
    if project_id is None and _scope(ctx) is not None:
        # A scoped key reads the org policy, so hiding it behind a 404 would say nothing
        # true: 403, as the org license policy answers.
        raise ProjectScopeForbidden()
    request = rpc.PolicyPutRequest(
        project_id=project_id,
        if_match=accepted_versions(ctx.request.headers.get("If-Match")),
        document=body,
    )
    view = await ask(ctx, rpc.SERVICE, rpc.POLICY_PUT, request, rpc.DecisionPolicyView)
    decisions_changed(ctx)
    return versioned_json(ctx, view, view.version)


# ---- promotions -----------------------------------------------------------------------------
async def promote(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.PromoteBody)
    request = rpc.PromoteRequest(body=body, allowed_project=_scope(ctx))
    view = await ask(ctx, rpc.SERVICE, rpc.PROMOTE, request, rpc.PromotionView)
    decisions_changed(ctx, repo=view.repo)
    return json_response(view, status=201)


async def list_promotions(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.PromotionsQuery)
    await check_repo_scope(ctx, query.repo)
    request = rpc.PromotionsRequest(
        repo=query.repo,
        project_id=await _project_id(ctx, query.project),
        cursor=query.cursor,
        limit=query.limit,
    )
    return json_response(await ask(ctx, rpc.SERVICE, rpc.PROMOTIONS, request, rpc.PromotionPage))


# ---- health ---------------------------------------------------------------------------------
async def get_health(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.HealthQuery)
    await check_repo_scope(ctx, query.repo)
    request = rpc.HealthRequest(repo=query.repo, project_id=await _project_id(ctx, query.project))
    return json_response(await ask(ctx, rpc.SERVICE, rpc.HEALTH, request, rpc.HealthView))


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/api/v1/releases/decision",
        handler=get_decision,
        roles=ALL_ROLES,
        summary="May this commit ship? SHIP or NO_SHIP with every blocker, the baseline (the "
        "repo's latest promoted snapshot), the policy version and when it was decided. "
        "commit=HEAD: the newest commit seen on the default branch; as_of=<RFC 3339>: the "
        "decision as it was then. artifact=sha256:<hex> instead of repo and commit: the "
        "decision of a registry artifact (its provenance commit's plus artifact_blocked; "
        "without provenance, from its own scan), described by `artifact`; 404 "
        "artifact_not_found",
        tag="releases",
        query=rpc.DecisionQuery,
        response=rpc.DecisionView,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path="/api/v1/releases/decision/history",
        handler=get_history,
        roles=READ_ROLES,
        summary="The changes of a commit's decision (or of every commit of the repo), newest "
        "first, each with the event that caused it",
        tag="releases",
        query=rpc.DecisionHistoryQuery,
        response=rpc.DecisionHistoryPage,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path="/api/v1/releases/policy",
        handler=get_policy,
        roles=READ_ROLES,
        summary="The org decision policy, or a project's override (?project=), and the "
        "effective merged policy; ETag is its version",
        tag="releases",
        query=rpc.PolicyQuery,
        response=rpc.DecisionPolicyView,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
    Route(
        method="PUT",
        path="/api/v1/releases/policy",
        handler=put_policy,
        roles=POLICY_WRITERS,
        summary="Set the org decision policy or a project's override (?project=); null fields "
        "take the default / the org's. If-Match with the ETag read (412 when it changed). "
        "Every affected commit is decided again",
        tag="releases",
        query=rpc.PolicyQuery,
        body=rpc.DecisionPolicyBody,
        response=rpc.DecisionPolicyView,
        errors=(403, 409, 412, *_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="POST",
        path="/api/v1/releases/promote",
        handler=promote,
        roles=PROMOTERS,
        summary="Promote a snapshot (a succeeded scan) to a status; it becomes its repo's "
        "baseline. NO_SHIP is refused (409 release_blocked with the blockers) unless an "
        "APPROVER sends override {reason}",
        tag="releases",
        body=rpc.PromoteBody,
        response=rpc.PromotionView,
        response_status=201,
        errors=(403, 409, *_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path="/api/v1/releases/promotions",
        handler=list_promotions,
        roles=READ_ROLES,
        summary="Promotions, newest first, by repo and/or project",
        tag="releases",
        query=rpc.PromotionsQuery,
        response=rpc.PromotionPage,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path="/api/v1/releases/health",
        handler=get_health,
        roles=READ_ROLES,
        summary="Is the verification graph reachable (bus, projection lag, scanner and "
        "signature-verifier answering), is the latest promoted snapshot fresh, and which "
        "required evidence is missing",
        tag="releases",
        query=rpc.HealthQuery,
        response=rpc.HealthView,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
]
