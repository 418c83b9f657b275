"""Triage of findings and VEX documents (owned by the scanner, asked over ``svc.scanner.*``).

* ``PATCH /api/v1/findings/{id}`` sets a finding's VEX state. **If-Match is required**
  (428 ``precondition_required`` without it): a triage is a decision about evidence the
  caller has read, so it names the revision it read (the ``ETag`` of ``GET``, ``"v<n>"``);
  a finding that changed since answers 412 ``precondition_failed`` with ``current_etag``.
  ``If-Match: *`` triages whatever the current revision is.
* ``POST /api/v1/projects/{project}/vulnerabilities/bulk-transition`` applies one transition
  to 1..200 findings (unconditional), with a result per row.
* ``POST /api/v1/projects/{project}/vex`` imports a CycloneDX VEX or OpenVEX document (JSON,
  told apart by content) into the project's latest snapshot; the body goes through the
  upload path (stored as a blob, up to ``GATEHOUSE_MAX_SBOM_BYTES``).
* ``GET /api/v1/projects/{project}/vex?format=openvex|cyclonedx`` exports the snapshot's
  findings as a VEX document.

Roles: the triage routes take every role at the door and let the scanner apply the triage
role rules, so a refusal carries its code: VIEWER and AUDITOR get 403
``vex_role_forbidden``; OPERATOR may set analyzing, exploitable, not_affected and fixed but
not suppressed or false_positive; POLICY_AUTHOR, APPROVER and ADMIN may do everything.
VEX import needs POLICY_AUTHOR or ADMIN; every role may export.
"""

from __future__ import annotations

from aiohttp import web

from contracts.rpc import scanner_triage as rpc
from contracts.rpc.scanner_scans import FindingView
from services.gateway.deps import deps_of
from services.gateway.domain.etag import accepted_versions, etag_for
from services.gateway.routes._upstream import (
    ask,
    blob_unless_cached,
    document_etag,
    project_of,
)
from services.gateway.routing import READ_ROLES, RequestContext, Route, Upload, roles
from services.gateway.uploads import store_upload
from shared.errors import GatehouseError, PayloadTooLarge, ValidationFailed
from shared.http import json_response

VEX_IMPORTERS = roles("ADMIN", "POLICY_AUTHOR")
VEX_TYPES = (
    "application/json",
    "application/vnd.cyclonedx+json",
    "application/openvex+json",
    "application/octet-stream",
)
_ERRORS = (404, 502, 503, 504)


class PreconditionRequired(GatehouseError):
    code, status, title = "precondition_required", 428, "If-Match is required"


def if_match_revisions(header: str | None) -> list[int] | None:
    """The revisions an ``If-Match`` header accepts: None for ``*``; a tag that is not one
    of ours (weak, or not ``"v<n>"``) matches nothing. 428 when the header is absent."""
    if header is None:
        raise PreconditionRequired(
            'send If-Match with the finding\'s ETag (or "*" to triage whatever it is now)'
        )
    return accepted_versions(header)


# ---- one finding ----------------------------------------------------------------------------
async def triage_finding(ctx: RequestContext) -> web.StreamResponse:
    body, principal = ctx.body, ctx.principal
    assert isinstance(body, rpc.TriageBody) and principal is not None
    finding_id = ctx.request.match_info["finding_id"]
    if not 0 < len(finding_id) <= 64:
        raise ValidationFailed(
            "finding_id has 1 to 64 characters",
            extra={"errors": [{"field": "finding_id", "message": "1 to 64 characters"}]},
        )
    accepted = if_match_revisions(ctx.request.headers.get("If-Match"))
    request = rpc.FindingTriageRequest(
        finding_id=finding_id,
        only_project=principal.project_id,
        if_match=accepted,
        state=body.state,
        justification=body.justification,
        detail=body.detail,
    )
    finding = await ask(ctx, rpc.SERVICE, rpc.FINDING_TRIAGE, request, FindingView)
    return json_response(finding, headers={"ETag": etag_for(finding.version)})


# ---- bulk -----------------------------------------------------------------------------------
async def bulk_transition(ctx: RequestContext) -> web.StreamResponse:
    body = ctx.body
    assert isinstance(body, rpc.BulkTransitionBody)
    project = await project_of(ctx)
    request = rpc.BulkTransitionRequest(project_id=project.id, body=body)
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.BULK_TRANSITION, request, rpc.BulkTransitionReply)
    )


# ---- VEX ------------------------------------------------------------------------------------
async def import_vex(ctx: RequestContext) -> web.StreamResponse:
    upload, deps = ctx.body, deps_of(ctx)
    assert isinstance(upload, Upload)
    limit = min(deps.settings.max_upload_bytes, deps.settings.max_sbom_bytes)
    if len(upload.data) > limit:
        raise PayloadTooLarge(
            f"the document is {len(upload.data)} bytes; at most {limit} are accepted",
            code="vex_too_large",
            extra={"limit": limit},
        )
    project = await project_of(ctx)
    digest = await store_upload(ctx, upload)
    request = rpc.VexImportRequest(project_id=project.id, digest=digest, size=len(upload.data))
    return json_response(await ask(ctx, rpc.SERVICE, rpc.VEX_IMPORT, request, rpc.VexImportSummary))


async def export_vex(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.VexExportQuery)
    project = await project_of(ctx)
    request = rpc.VexExportRequest(project_id=project.id, product_name=project.slug, query=query)
    exported = await ask(ctx, rpc.SERVICE, rpc.VEX_EXPORT, request, rpc.VexExported)
    etag = document_etag(exported.digest)
    data = await blob_unless_cached(ctx, exported.digest)
    if data is None:
        return web.Response(status=304, headers={"ETag": etag})
    suffix = "openvex.json" if exported.format == "openvex" else "cdx-vex.json"
    return web.Response(
        body=data,
        content_type="application/json",
        headers={
            "ETag": etag,
            "Content-Disposition": f'attachment; filename="{project.slug}.{suffix}"',
            "Gatehouse-Scan-Id": exported.scan_id,
        },
    )


ROUTES: list[Route] = [
    Route(
        method="PATCH",
        path="/api/v1/findings/{finding_id}",
        handler=triage_finding,
        roles=READ_ROLES,
        summary="Triage a finding: set its VEX state (with a justification for not_affected, "
        "a reason in detail for false_positive and suppressed). If-Match with the ETag read "
        "is required (428 without, 412 when it changed); answers the finding and its new ETag. "
        "Role rules: VIEWER and AUDITOR 403 vex_role_forbidden; OPERATOR not suppressed or "
        "false_positive",
        tag="findings",
        body=rpc.TriageBody,
        response=FindingView,
        errors=(409, 412, 428, *_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="POST",
        path="/api/v1/projects/{project}/vulnerabilities/bulk-transition",
        handler=bulk_transition,
        roles=READ_ROLES,
        summary="One transition for 1..200 findings of the project's latest snapshot: a result "
        "per row ({id, ok, status, outcome, code, finding}); a refused row does not stop the "
        "others. Envelope errors (no ids, more than 200, a duplicate, a role that may not set "
        "the state, missing reasons) are problem details",
        tag="findings",
        body=rpc.BulkTransitionBody,
        response=rpc.BulkTransitionReply,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="POST",
        path="/api/v1/projects/{project}/vex",
        handler=import_vex,
        roles=VEX_IMPORTERS,
        summary="Import a CycloneDX VEX or OpenVEX document (JSON, auto-detected) into the "
        "project's latest snapshot through the triage rules: a summary of applied, unchanged, "
        "refused (with codes) and unmatched statements",
        tag="findings",
        upload=VEX_TYPES,
        response=rpc.VexImportSummary,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}/vex",
        handler=export_vex,
        roles=READ_ROLES,
        summary="The latest snapshot's (or scan_id's) findings as OpenVEX 0.2.0 or CycloneDX "
        "1.6 VEX; deterministic (ETag = the document's digest). 404 no_snapshot before the "
        "first scan; an OpenVEX document needs a statement, so a snapshot without findings "
        "answers 404 no_findings for format=openvex",
        tag="findings",
        query=rpc.VexExportQuery,
        errors=(409, *_ERRORS),
        project_param="project",
    ),
]
