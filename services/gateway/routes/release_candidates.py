"""Release candidates, environments and deployments, compatible with the Aviator releases
API (owned by release-decision, asked over ``svc.release-decision.rc_*``).

* ``POST /api/releases/{project}/releases/{release_candidate_version}`` ``{repo, commit,
  trigger_build_workflow}``: cut a candidate (``v1.4.0-rc2``), creating its release
  (``v1.4.0``) when it is the first. ``GET …/releases`` and ``GET …/releases/{version}``.
* ``PUT /api/releases/{project}/environments/{env}`` ``{protected, workflow_url}``;
  ``GET …/environments``.
* ``POST /api/releases/{project}/environments/{env}/deployments``
  ``{release_candidate_version, override?}`` requests a deployment (``deployment.requested``
  for the environment's workflow); ``PATCH`` the same path ``{release_candidate_version,
  status}`` reports its status (creating the deployment when it is new); ``GET`` lists them.

``{project}`` is the project's id or slug. Errors are problem+json that also carry Aviator's
``error`` message. Roles: ADMIN, OPERATOR and APPROVER cut candidates and deploy; ADMIN and
POLICY_AUTHOR configure environments (``protected`` is a gate); every role reads. A
project-scoped key works on its own project only.
"""

from __future__ import annotations

from aiohttp import web

from contracts.rpc import release_candidates as rpc
from services.gateway.dto import ProjectView
from services.gateway.routes._upstream import ask, project_of
from services.gateway.routing import READ_ROLES, RequestContext, Route, roles
from shared.http import json_response

RELEASE_WRITERS = roles("ADMIN", "OPERATOR", "APPROVER")
ENVIRONMENT_WRITERS = roles("ADMIN", "POLICY_AUTHOR")
_ERRORS = (404, 502, 503, 504)
_TAG = "release candidates"


def _ref(project: ProjectView) -> rpc.ProjectRef:
    return rpc.ProjectRef(
        id=project.id, slug=project.slug, repos=list(project.repos), archived=project.archived
    )


def _path(ctx: RequestContext, name: str) -> str:
    """A path segment bounded like the RPC's; a longer one is cut and marked with "…", which
    no version or environment name contains, so the service refuses it with its own error."""
    value = ctx.request.match_info[name]
    return value if len(value) <= rpc.NAME_MAX else value[: rpc.NAME_MAX - 1] + "…"


# ---- releases -------------------------------------------------------------------------------
async def create_candidate(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.CandidateBody)
    project = await project_of(ctx)
    request = rpc.CandidateCreateRequest(
        project=_ref(project), version=_path(ctx, "version"), body=body
    )
    reply = await ask(ctx, rpc.SERVICE, rpc.CANDIDATE_CREATE, request, rpc.CandidateCreateReply)
    location = f"/api/releases/{project.slug}/releases/{reply.candidate.release_version}"
    return json_response(
        reply.candidate, status=201 if reply.created else 200, headers={"Location": location}
    )


async def list_releases(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.ReleaseListQuery)
    project = await project_of(ctx)
    request = rpc.ReleaseListRequest(project_id=project.id, query=query)
    return json_response(await ask(ctx, rpc.SERVICE, rpc.RELEASE_LIST, request, rpc.ReleasePage))


async def get_release(ctx: RequestContext) -> web.StreamResponse:
    project = await project_of(ctx)
    request = rpc.ReleaseGetRequest(project_id=project.id, version=_path(ctx, "version"))
    return json_response(await ask(ctx, rpc.SERVICE, rpc.RELEASE_GET, request, rpc.ReleaseView))


# ---- environments ---------------------------------------------------------------------------
async def put_environment(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.EnvironmentBody)
    project = await project_of(ctx)
    request = rpc.EnvironmentPutRequest(project=_ref(project), name=_path(ctx, "env"), body=body)
    reply = await ask(ctx, rpc.SERVICE, rpc.ENVIRONMENT_PUT, request, rpc.EnvironmentPutReply)
    return json_response(reply.environment, status=201 if reply.created else 200)


async def list_environments(ctx: RequestContext) -> web.StreamResponse:
    project = await project_of(ctx)
    request = rpc.EnvironmentListRequest(project_id=project.id)
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.ENVIRONMENT_LIST, request, rpc.EnvironmentList)
    )


# ---- deployments ----------------------------------------------------------------------------
async def create_deployment(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.DeploymentBody)
    project = await project_of(ctx)
    request = rpc.DeploymentCreateRequest(
        project=_ref(project), environment=_path(ctx, "env"), body=body
    )
    view = await ask(ctx, rpc.SERVICE, rpc.DEPLOYMENT_CREATE, request, rpc.DeploymentView)
    return json_response(view, status=201)


async def report_deployment_status(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.DeploymentStatusBody)
    project = await project_of(ctx)
    request = rpc.DeploymentStatusRequest(
        project=_ref(project), environment=_path(ctx, "env"), body=body
    )
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.DEPLOYMENT_STATUS, request, rpc.DeploymentView)
    )


async def list_deployments(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.DeploymentListQuery)
    project = await project_of(ctx)
    request = rpc.DeploymentListRequest(
        project_id=project.id, environment=_path(ctx, "env"), query=query
    )
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.DEPLOYMENT_LIST, request, rpc.DeploymentPage)
    )


_RELEASE = "/api/releases/{project}/releases/{version}"
_ENVIRONMENT = "/api/releases/{project}/environments/{env}"
_DEPLOYMENTS = "/api/releases/{project}/environments/{env}/deployments"

ROUTES: list[Route] = [
    Route(
        method="POST",
        path=_RELEASE,
        handler=create_candidate,
        roles=RELEASE_WRITERS,
        summary="Cut a release candidate: {version} is the release candidate version "
        "(v1.4.0-rc2: the -rcN suffix is required) at commit of repo (one of the project's "
        "repos). Creates the release (v1.4.0) with its first candidate. 201 the candidate; "
        "200 when the same candidate (same repo and commit) exists already. Errors carry "
        "Aviator's error message: 400 Invalid release candidate version, 400 Invalid commit "
        "hash, 404 GitHub repository not found, 409 release_candidate_exists",
        tag=_TAG,
        body=rpc.CandidateBody,
        response=rpc.CandidateView,
        response_status=201,
        also_succeeds=(200,),
        errors=(400, 409, *_ERRORS),
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/releases/{project}/releases",
        handler=list_releases,
        roles=READ_ROLES,
        summary="The project's releases, newest first, each with its latest candidate",
        tag=_TAG,
        query=rpc.ReleaseListQuery,
        response=rpc.ReleasePage,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="GET",
        path=_RELEASE,
        handler=get_release,
        roles=READ_ROLES,
        summary="One release (v1.4.0, or one of its candidates' versions) with every "
        "candidate; 404 Release not found",
        tag=_TAG,
        response=rpc.ReleaseView,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="PUT",
        path=_ENVIRONMENT,
        handler=put_environment,
        roles=ENVIRONMENT_WRITERS,
        summary="Create (201) or configure (200) an environment: protected (a NO_SHIP "
        "candidate is deployed there only on an APPROVER's override) and the workflow_url "
        "that runs its deployments",
        tag=_TAG,
        body=rpc.EnvironmentBody,
        response=rpc.EnvironmentView,
        also_succeeds=(201,),
        errors=(409, *_ERRORS),
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/releases/{project}/environments",
        handler=list_environments,
        roles=READ_ROLES,
        summary="The project's environments, by name, each with what is deployed there now "
        "(its newest successful deployment)",
        tag=_TAG,
        response=rpc.EnvironmentList,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="POST",
        path=_DEPLOYMENTS,
        handler=create_deployment,
        roles=RELEASE_WRITERS,
        summary="Deploy a release candidate to the environment: 201 the deployment "
        "(pending) and deployment.requested for the environment's workflow. A protected "
        "environment refuses a NO_SHIP candidate (409 release_blocked with the blockers) "
        "unless an APPROVER sends override: {reason} (recorded with the deployment; 403 "
        "override_not_allowed for anyone else). 404 Release environment not found / "
        "Release not found",
        tag=_TAG,
        body=rpc.DeploymentBody,
        response=rpc.DeploymentView,
        response_status=201,
        errors=(400, 403, 409, *_ERRORS),
        project_param="project",
    ),
    Route(
        method="PATCH",
        path=_DEPLOYMENTS,
        handler=report_deployment_status,
        roles=RELEASE_WRITERS,
        summary="Report the status of the candidate's deployment to the environment "
        "(pending, queued, in_progress, success, failure, error, canceling, canceled, "
        "inactive, unknown), creating the deployment when there is none (no workflow is "
        "triggered). A success marks the environment's older successful deployments "
        "inactive, as GitHub does",
        tag=_TAG,
        body=rpc.DeploymentStatusBody,
        response=rpc.DeploymentView,
        errors=(400, 409, *_ERRORS),
        project_param="project",
    ),
    Route(
        method="GET",
        path=_DEPLOYMENTS,
        handler=list_deployments,
        roles=READ_ROLES,
        summary="The environment's deployments, newest first (filters: status, "
        "release_candidate_version)",
        tag=_TAG,
        query=rpc.DeploymentListQuery,
        response=rpc.DeploymentPage,
        errors=_ERRORS,
        project_param="project",
    ),
]
