"""Workflow triggers (the Aviator flows; owned by the webhook-fanout, asked over
``svc.webhook-fanout.workflow_*``): how Gatehouse calls a project's workflows.

* ``PUT /api/releases/{project}/environments/{env}/workflow`` ``{format, ref?,
  dispatch_event_type?, github_token?}``: how the environment's deployment workflow (its
  ``workflow_url``) is called for each ``deployment.requested``. ``GET`` the same path.
* ``PUT /api/releases/{project}/build-workflow`` ``{url, format, …}``: the project's build
  workflow, called for each candidate cut with ``trigger_build_workflow: true``. ``GET``.
* ``POST …/environments/{env}/workflow-secret`` / ``POST …/build-workflow/secret``
  ``{grace_seconds?}``: a new Standard Webhooks secret, shown this once.

ADMIN and OPERATOR; a project-scoped key works on its own project only.
"""

from __future__ import annotations

from aiohttp import web

from contracts.rpc import workflows as rpc
from services.gateway.routes._upstream import ask, project_of
from services.gateway.routing import RequestContext, Route, roles
from shared.http import json_response

WORKFLOW_WRITERS = roles("ADMIN", "OPERATOR")
_TAG = "release candidates"
_ERRORS = (404, 502, 503, 504)
_NO_STORE = {"Cache-Control": "no-store"}
_ENV_WORKFLOW = "/api/releases/{project}/environments/{env}/workflow"
_ENV_SECRET = "/api/releases/{project}/environments/{env}/workflow-secret"
_BUILD = "/api/releases/{project}/build-workflow"
_BUILD_SECRET = "/api/releases/{project}/build-workflow/secret"


async def _ref(ctx: RequestContext, kind: str) -> rpc.WorkflowRef:
    project = await project_of(ctx)
    env = ctx.request.match_info.get("env")
    if env is not None and len(env) > rpc.NAME_MAX:
        env = env[: rpc.NAME_MAX - 1] + "…"  # no environment is named so: a 404
    return rpc.WorkflowRef(project_id=project.id, kind=kind, environment=env)  # type: ignore[arg-type]


async def put_environment_workflow(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.WorkflowSettings)
    request = rpc.WorkflowConfigureRequest(workflow=await _ref(ctx, "deployment"), settings=body)
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.WORKFLOW_CONFIGURE, request, rpc.WorkflowView)
    )


async def put_build_workflow(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.BuildWorkflowSettings)
    settings = rpc.WorkflowSettings(
        format=body.format,
        ref=body.ref,
        dispatch_event_type=body.dispatch_event_type,
        github_token=body.github_token,
    )
    request = rpc.WorkflowConfigureRequest(
        workflow=await _ref(ctx, "build"), settings=settings, url=body.url
    )
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.WORKFLOW_CONFIGURE, request, rpc.WorkflowView)
    )


async def get_environment_workflow(ctx: RequestContext) -> web.StreamResponse:
    request = rpc.WorkflowGetRequest(workflow=await _ref(ctx, "deployment"))
    return json_response(await ask(ctx, rpc.SERVICE, rpc.WORKFLOW_GET, request, rpc.WorkflowView))


async def get_build_workflow(ctx: RequestContext) -> web.StreamResponse:
    request = rpc.WorkflowGetRequest(workflow=await _ref(ctx, "build"))
    return json_response(await ask(ctx, rpc.SERVICE, rpc.WORKFLOW_GET, request, rpc.WorkflowView))


async def _secret(ctx: RequestContext, kind: str) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.SecretBody)
    request = rpc.WorkflowSecretRequest(workflow=await _ref(ctx, kind), body=body)
    reply = await ask(ctx, rpc.SERVICE, rpc.WORKFLOW_SECRET, request, rpc.WorkflowSecretReply)
    return json_response(reply, headers=_NO_STORE)


async def environment_workflow_secret(ctx: RequestContext) -> web.StreamResponse:
    return await _secret(ctx, "deployment")


async def build_workflow_secret(ctx: RequestContext) -> web.StreamResponse:
    return await _secret(ctx, "build")


_FORMATS = (
    "format: standard (the event envelope, signed as Standard Webhooks with the workflow's "
    "secret), github_repository_dispatch ({event_type, client_payload}) or "
    "github_workflow_dispatch ({ref, inputs}; ref required), both sent with "
    "Authorization: Bearer github_token (write-only, required for these formats)"
)
_SECRET = (
    "A new Standard Webhooks secret (whsec_…) for the workflow, shown this once; the "
    "previous one keeps signing for grace_seconds (default 24 h; none when it was never "
    "shown). 409 workflow_uses_github_token for a GitHub dispatch"
)

ROUTES: list[Route] = [
    Route(
        method="PUT",
        path=_ENV_WORKFLOW,
        handler=put_environment_workflow,
        roles=WORKFLOW_WRITERS,
        summary="How the environment's deployment workflow (its workflow_url) is called for "
        "each deployment request. " + _FORMATS + ". 404 environment_not_found",
        tag=_TAG,
        body=rpc.WorkflowSettings,
        response=rpc.WorkflowView,
        errors=(422, *_ERRORS),
        project_param="project",
    ),
    Route(
        method="GET",
        path=_ENV_WORKFLOW,
        handler=get_environment_workflow,
        roles=WORKFLOW_WRITERS,
        summary="How the environment's deployment workflow is called (never the secret "
        "or the token)",
        tag=_TAG,
        response=rpc.WorkflowView,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="POST",
        path=_ENV_SECRET,
        handler=environment_workflow_secret,
        roles=WORKFLOW_WRITERS,
        summary=_SECRET,
        tag=_TAG,
        body=rpc.SecretBody,
        response=rpc.WorkflowSecretReply,
        errors=(409, 422, *_ERRORS),
        project_param="project",
        redact_on_replay=("secret",),
    ),
    Route(
        method="PUT",
        path=_BUILD,
        handler=put_build_workflow,
        roles=WORKFLOW_WRITERS,
        summary="The project's build workflow, called for each release candidate cut with "
        "trigger_build_workflow: true (the candidate's build_status follows). url: where "
        "(checked like a webhook's: receiver_url_refused). " + _FORMATS,
        tag=_TAG,
        body=rpc.BuildWorkflowSettings,
        response=rpc.WorkflowView,
        errors=(422, *_ERRORS),
        project_param="project",
    ),
    Route(
        method="GET",
        path=_BUILD,
        handler=get_build_workflow,
        roles=WORKFLOW_WRITERS,
        summary="The project's build workflow; 404 build_workflow_not_configured",
        tag=_TAG,
        response=rpc.WorkflowView,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="POST",
        path=_BUILD_SECRET,
        handler=build_workflow_secret,
        roles=WORKFLOW_WRITERS,
        summary=_SECRET + "; 404 build_workflow_not_configured",
        tag=_TAG,
        body=rpc.SecretBody,
        response=rpc.WorkflowSecretReply,
        errors=(409, 422, *_ERRORS),
        project_param="project",
        redact_on_replay=("secret",),
    ),
]
