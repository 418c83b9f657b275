"""License policy and waivers (owned by the scanner, asked over ``svc.scanner.license_*``).

* ``GET/PUT /api/v1/license-policy``: the org policy, every project's default; also at
  OrbitalReg's ``/api/admin/license-policies`` (ADMIN only): the same handlers, the same
  body, validation, ETag / If-Match and ``policy.changed``.
* ``GET/PUT/DELETE /api/v1/projects/{project}/license-policy``: a project's override (what
  it lists wins; unset fallbacks are inherited); DELETE returns the project to the org
  policy. GET shows the override and the ``effective`` merged policy.
* ``POST/GET /api/v1/projects/{project}/license-policy/waivers``,
  ``DELETE …/waivers/{waiver_id}``: waivers (a license accepted as allowed, for one package
  when ``purl`` is set, until ``expires_at``).

Policies are versioned: ``ETag: "v<version>"`` (``"v0"``: never set). A write may send
``If-Match`` with the ETag it read (412 ``precondition_failed`` with ``current_etag`` when
the policy changed since); without it the write is unconditional. A change answers once
it is recorded; the snapshots it affects are evaluated again off the request path (follow
``scan.relicensed``, the scan's log, or the policy gate).

Roles: POLICY_AUTHOR and ADMIN write; every role reads. A project-scoped key reads the org
policy and reads (or, with a writer role, changes) only its own project's.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from contracts.rpc import scanner_licensing as rpc
from services.gateway.domain.errors import ProjectArchived
from services.gateway.domain.etag import accepted_versions, etag_for
from services.gateway.dto import ProjectView
from services.gateway.routes._upstream import ask, project_of, versioned_json
from services.gateway.routing import ADMIN_ONLY, READ_ROLES, RequestContext, Route, roles
from shared.errors import ValidationFailed
from shared.http import json_response

POLICY_WRITERS = roles("ADMIN", "POLICY_AUTHOR")
_ERRORS = (404, 502, 503, 504)
# OrbitalReg's path of the org policy (an admin mount of the same resource).
ADMIN_POLICIES = "/api/admin/license-policies"


class RevokeQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=rpc.REASON_MAX)] = ""


async def _project(ctx: RequestContext, *, writing: bool = False) -> ProjectView:
    project = await project_of(ctx)
    if writing and project.archived:
        raise ProjectArchived(f"project {project.slug!r} is archived and cannot change")
    return project


def _if_match(ctx: RequestContext) -> list[int] | None:
    return accepted_versions(ctx.request.headers.get("If-Match"))


def _policy_answer(ctx: RequestContext, view: rpc.LicensePolicyView) -> web.StreamResponse:
    return versioned_json(ctx, view, view.version)


# ---- org policy -----------------------------------------------------------------------------
async def get_org_policy(ctx: RequestContext) -> web.StreamResponse:
    view = await ask(
        ctx, rpc.SERVICE, rpc.POLICY_GET, rpc.PolicyGetRequest(), rpc.LicensePolicyView
    )
    return _policy_answer(ctx, view)


async def put_org_policy(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.LicensePolicyBody)
    request = rpc.PolicyPutRequest(if_match=_if_match(ctx), document=body)
    return _policy_answer(
        ctx, await ask(ctx, rpc.SERVICE, rpc.POLICY_PUT, request, rpc.LicensePolicyView)
    )


# ---- project policy -------------------------------------------------------------------------
async def get_project_policy(ctx: RequestContext) -> web.StreamResponse:
    project = await project_of(ctx)
    request = rpc.PolicyGetRequest(project_id=project.id)
    return _policy_answer(
        ctx, await ask(ctx, rpc.SERVICE, rpc.POLICY_GET, request, rpc.LicensePolicyView)
    )


async def put_project_policy(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.LicensePolicyBody)
    project = await _project(ctx, writing=True)
    request = rpc.PolicyPutRequest(
        project_id=project.id,
        if_match=_if_match(ctx),
        document=body,
    )
    return _policy_answer(
        ctx, await ask(ctx, rpc.SERVICE, rpc.POLICY_PUT, request, rpc.LicensePolicyView)
    )


async def delete_project_policy(ctx: RequestContext) -> web.StreamResponse:
    project = await _project(ctx, writing=True)
    request = rpc.PolicyDeleteRequest(project_id=project.id, if_match=_if_match(ctx))
    view = await ask(ctx, rpc.SERVICE, rpc.POLICY_DELETE, request, rpc.LicensePolicyView)
    return web.Response(status=204, headers={"ETag": etag_for(view.version)})


# ---- waivers --------------------------------------------------------------------------------
def _waiver_id(ctx: RequestContext) -> str:
    value = ctx.request.match_info["waiver_id"]
    if not 0 < len(value) <= 64:
        raise ValidationFailed(
            "waiver_id has 1 to 64 characters",
            extra={
                "errors": [{"field": "waiver_id", "message": "1 to 64 characters", "in": "path"}]
            },
        )
    return value


async def grant_waiver(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.WaiverBody)
    project = await _project(ctx, writing=True)
    request = rpc.WaiverGrantRequest(project_id=project.id, body=body)
    waiver = await ask(ctx, rpc.SERVICE, rpc.WAIVER_GRANT, request, rpc.WaiverView)
    location = f"/api/v1/projects/{project.slug}/license-policy/waivers/{waiver.id}"
    return json_response(waiver, status=201, headers={"Location": location})


async def list_waivers(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.WaiverListQuery)
    project = await project_of(ctx)
    request = rpc.WaiverListRequest(project_id=project.id, query=query)
    return json_response(await ask(ctx, rpc.SERVICE, rpc.WAIVER_LIST, request, rpc.WaiverPage))


async def get_waiver(ctx: RequestContext) -> web.StreamResponse:
    project = await project_of(ctx)
    request = rpc.WaiverRef(project_id=project.id, waiver_id=_waiver_id(ctx))
    return json_response(await ask(ctx, rpc.SERVICE, rpc.WAIVER_GET, request, rpc.WaiverView))


async def revoke_waiver(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, RevokeQuery)
    project = await _project(ctx, writing=True)
    request = rpc.WaiverRevokeRequest(
        project_id=project.id, waiver_id=_waiver_id(ctx), reason=query.reason
    )
    await ask(ctx, rpc.SERVICE, rpc.WAIVER_REVOKE, request, rpc.WaiverView)
    return web.Response(status=204)


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/api/v1/license-policy",
        handler=get_org_policy,
        roles=READ_ROLES,
        summary="The org license policy (every project's default); ETag is its version",
        tag="licenses",
        response=rpc.LicensePolicyView,
        errors=_ERRORS,
        allow_project_scoped=True,
    ),
    Route(
        method="PUT",
        path="/api/v1/license-policy",
        handler=put_org_policy,
        roles=POLICY_WRITERS,
        summary="Set the org license policy: allowed, conditional and forbidden SPDX licenses, "
        "and the category of licenses on no list (default), unknown to SPDX (unknown) and "
        "of components without one (no_license). If-Match with the ETag read (412 when it "
        "changed). Every project's latest snapshot is evaluated again",
        tag="licenses",
        body=rpc.LicensePolicyBody,
        response=rpc.LicensePolicyView,
        errors=(412, *_ERRORS),
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}/license-policy",
        handler=get_project_policy,
        roles=READ_ROLES,
        summary="The project's license policy override (null: none) and the effective policy "
        "(the org policy merged with it); ETag is the override's version",
        tag="licenses",
        response=rpc.LicensePolicyView,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="PUT",
        path="/api/v1/projects/{project}/license-policy",
        handler=put_project_policy,
        roles=POLICY_WRITERS,
        summary="Set the project's override: what it lists takes its category, fallbacks it "
        "leaves out are the org's. If-Match with the ETag read (412 when it changed). The "
        "project's latest snapshot is evaluated again",
        tag="licenses",
        body=rpc.LicensePolicyBody,
        response=rpc.LicensePolicyView,
        errors=(409, 412, *_ERRORS),
        project_param="project",
    ),
    Route(
        method="DELETE",
        path="/api/v1/projects/{project}/license-policy",
        handler=delete_project_policy,
        roles=POLICY_WRITERS,
        summary="Remove the project's override: the org policy applies again",
        tag="licenses",
        response_status=204,
        errors=(409, 412, *_ERRORS),
        project_param="project",
    ),
    Route(
        method="POST",
        path="/api/v1/projects/{project}/license-policy/waivers",
        handler=grant_waiver,
        roles=POLICY_WRITERS,
        summary="Grant a waiver: the license (an SPDX id, a name, or a whole expression) is "
        "allowed for the project's components (only the package's when purl is set) until "
        "expires_at; 201 + Location",
        tag="licenses",
        body=rpc.WaiverBody,
        response=rpc.WaiverView,
        response_status=201,
        errors=(409, *_ERRORS),
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}/license-policy/waivers",
        handler=list_waivers,
        roles=READ_ROLES,
        summary="The project's waivers, newest first (status: active, expired, revoked)",
        tag="licenses",
        query=rpc.WaiverListQuery,
        response=rpc.WaiverPage,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}/license-policy/waivers/{waiver_id}",
        handler=get_waiver,
        roles=READ_ROLES,
        summary="One waiver",
        tag="licenses",
        response=rpc.WaiverView,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="DELETE",
        path="/api/v1/projects/{project}/license-policy/waivers/{waiver_id}",
        handler=revoke_waiver,
        roles=POLICY_WRITERS,
        summary="Revoke a waiver (a waiver already ended is left as it is); the project's "
        "latest snapshot is evaluated again",
        tag="licenses",
        query=RevokeQuery,
        response_status=204,
        errors=(409, *_ERRORS),
        project_param="project",
    ),
    Route(
        method="GET",
        path=ADMIN_POLICIES,
        handler=get_org_policy,
        roles=ADMIN_ONLY,
        summary="The org license policy at OrbitalReg's admin path (the same resource as "
        "GET /api/v1/license-policy); ETag is its version",
        tag="licenses",
        response=rpc.LicensePolicyView,
        errors=_ERRORS,
    ),
    Route(
        method="PUT",
        path=ADMIN_POLICIES,
        handler=put_org_policy,
        roles=ADMIN_ONLY,
        summary="Replace the org license policy at OrbitalReg's admin path (the same body, "
        "validation, If-Match and policy.changed as PUT /api/v1/license-policy)",
        tag="licenses",
        body=rpc.LicensePolicyBody,
        response=rpc.LicensePolicyView,
        errors=(412, *_ERRORS),
    ),
]
