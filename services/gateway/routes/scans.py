"""Scans, components and findings (owned by the scanner, asked over ``svc.scanner.*``).

Uploads take the file as the request body: an SBOM (CycloneDX JSON/XML, SPDX JSON or
tag-value, auto-detected; at most ``GATEHOUSE_MAX_SBOM_BYTES``) or a source ``.zip`` (its
lockfiles are read; at most ``GATEHOUSE_MAX_UPLOAD_BYTES``). The gateway checks the project
(id or slug, not archived) and the query, stores the body as a blob and hands the scanner
its digest; the scanner checks that it can read it (format, safe archive) and queues the
scan: ``202 {scan_id, status: "queued"}`` with ``Location: /api/v1/scans/{scan_id}``.

Roles: ADMIN, OPERATOR and POLICY_AUTHOR upload and cancel scans; ADMIN and OPERATOR delete
finished ones, and only ADMIN may delete one carrying a release label (``force=true``, the
release's evidence). Every role reads. A project-scoped key sees only its project's scans
and findings (any other answers 404).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from contracts.events.scans import ReleaseLabel, Repo
from contracts.rpc import scanner_scans as rpc
from services.gateway.deps import deps_of
from services.gateway.domain.errors import ProjectArchived
from services.gateway.routes._upstream import ask, project_of, versioned_json
from services.gateway.routing import READ_ROLES, RequestContext, Route, Upload, roles
from services.gateway.uploads import store_upload
from shared.errors import Forbidden, PayloadTooLarge, ValidationFailed
from shared.http import json_response

SCAN_WRITERS = roles("ADMIN", "OPERATOR", "POLICY_AUTHOR")
SCAN_DELETERS = roles("ADMIN", "OPERATOR")
SBOM_TYPES = (
    "application/json",
    "application/vnd.cyclonedx+json",
    "application/spdx+json",
    "application/xml",
    "text/xml",
    "application/vnd.cyclonedx+xml",
    "text/plain",
    "text/spdx",
    "application/octet-stream",
)
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")
_SCAN_ERRORS = (404, 502, 503, 504)

CommitQuery = Annotated[
    str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{7,64}$", description="Commit id (hex, 7-64)")
]


class UploadQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    repo: Repo | None = None
    commit: CommitQuery | None = None
    label: ReleaseLabel | None = None


class CancelQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=500)] = ""


class DeleteQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    force: Annotated[
        bool, msgspec.Meta(description="Needed (ADMIN) to delete a release-labelled scan")
    ] = False


def _only_project(ctx: RequestContext) -> str | None:
    return ctx.principal.project_id if ctx.principal else None


def _path_id(ctx: RequestContext, name: str) -> str:
    value = ctx.request.match_info[name]
    if not 0 < len(value) <= 64:
        raise ValidationFailed(
            f"{name} has 1 to 64 characters",
            extra={"errors": [{"field": name, "message": "1 to 64 characters", "in": "path"}]},
        )
    return value


# ---- uploads --------------------------------------------------------------------------------
async def _submit(ctx: RequestContext, kind: str) -> web.StreamResponse:
    deps, query, upload = deps_of(ctx), ctx.query, ctx.body
    assert isinstance(query, UploadQuery) and isinstance(upload, Upload)
    if query.commit is not None and query.repo is None:
        raise ValidationFailed(
            "a commit needs its repository: pass repo=owner/name too",
            extra={
                "errors": [{"field": "$.repo", "message": "required with commit", "in": "query"}]
            },
        )
    limit = deps.settings.max_upload_bytes
    if kind == "sbom":
        limit = min(limit, deps.settings.max_sbom_bytes)
    if len(upload.data) > limit:
        raise PayloadTooLarge(
            f"the document is {len(upload.data)} bytes; at most {limit} are accepted",
            code="sbom_too_large" if kind == "sbom" else "upload_too_large",
            extra={"limit": limit},
        )
    project = await project_of(ctx)
    if project.archived:
        raise ProjectArchived(f"project {project.slug!r} is archived: it takes no new scans")
    digest = await store_upload(ctx, upload)
    accepted = await ask(
        ctx,
        rpc.SERVICE,
        rpc.SCAN_SUBMIT,
        rpc.ScanSubmitRequest(
            project_id=project.id,
            kind=kind,  # type: ignore[arg-type]
            source_digest=digest,
            size=len(upload.data),
            repo=query.repo,
            commit=query.commit.lower() if query.commit else None,
            label=query.label,
        ),
        rpc.ScanAccepted,
    )
    return json_response(
        accepted, status=202, headers={"Location": f"/api/v1/scans/{accepted.scan_id}"}
    )


async def upload_sbom(ctx: RequestContext) -> web.StreamResponse:
    return await _submit(ctx, "sbom")


async def upload_source(ctx: RequestContext) -> web.StreamResponse:
    return await _submit(ctx, "source")


# ---- one scan -------------------------------------------------------------------------------
async def get_scan(ctx: RequestContext) -> web.StreamResponse:
    ref = rpc.ScanRef(scan_id=_path_id(ctx, "scan_id"), only_project=_only_project(ctx))
    return json_response(await ask(ctx, rpc.SERVICE, rpc.SCAN_GET, ref, rpc.ScanView))


async def scan_log(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.ScanLogQuery)
    ref = rpc.ScanRef(scan_id=_path_id(ctx, "scan_id"), only_project=_only_project(ctx))
    page = await ask(
        ctx, rpc.SERVICE, rpc.SCAN_LOG, rpc.ScanLogRequest(scan=ref, query=query), rpc.ScanLogPage
    )
    return json_response(page)


async def cancel_scan(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, CancelQuery)
    request = rpc.ScanCancelRequest(
        scan_id=_path_id(ctx, "scan_id"), only_project=_only_project(ctx), reason=query.reason
    )
    return json_response(await ask(ctx, rpc.SERVICE, rpc.SCAN_CANCEL, request, rpc.ScanView))


async def delete_scan(ctx: RequestContext) -> web.StreamResponse:
    query, principal = ctx.query, ctx.principal
    assert isinstance(query, DeleteQuery) and principal is not None
    if query.force and "ADMIN" not in principal.roles:
        raise Forbidden(
            "deleting a release-labelled scan (force=true) needs the ADMIN role",
            extra={"required_roles": ["ADMIN"]},
        )
    request = rpc.ScanDeleteRequest(
        scan_id=_path_id(ctx, "scan_id"), only_project=_only_project(ctx), force=query.force
    )
    await ask(ctx, rpc.SERVICE, rpc.SCAN_DELETE, request, rpc.ScanDeletedReply)
    return web.Response(status=204)


# ---- project reads --------------------------------------------------------------------------
async def list_scans(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.ScanListQuery)
    project = await project_of(ctx)
    request = rpc.ScanListRequest(project_id=project.id, query=query)
    return json_response(await ask(ctx, rpc.SERVICE, rpc.SCAN_LIST, request, rpc.ScanPage))


async def list_snapshots(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.SnapshotQuery)
    project = await project_of(ctx)
    request = rpc.SnapshotRequest(project_id=project.id, query=query)
    return json_response(await ask(ctx, rpc.SERVICE, rpc.SNAPSHOTS, request, rpc.SnapshotPage))


async def list_components(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.ComponentQuery)
    project = await project_of(ctx)
    request = rpc.ComponentsRequest(project_id=project.id, query=query)
    return json_response(await ask(ctx, rpc.SERVICE, rpc.COMPONENTS, request, rpc.ComponentPage))


async def list_vulnerabilities(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, rpc.VulnerabilityQuery)
    project = await project_of(ctx)
    request = rpc.VulnerabilitiesRequest(project_id=project.id, query=query)
    return json_response(await ask(ctx, rpc.SERVICE, rpc.VULNERABILITIES, request, rpc.FindingPage))


async def get_finding(ctx: RequestContext) -> web.StreamResponse:
    ref = rpc.FindingRef(finding_id=_path_id(ctx, "finding_id"), only_project=_only_project(ctx))
    finding = await ask(ctx, rpc.SERVICE, rpc.FINDING_GET, ref, rpc.FindingView)
    return versioned_json(ctx, finding, finding.version)


ROUTES: list[Route] = [
    Route(
        method="POST",
        path="/api/v1/projects/{project}/sboms",
        handler=upload_sbom,
        roles=SCAN_WRITERS,
        summary="Upload an SBOM (CycloneDX 1.2-1.6 JSON/XML, SPDX 2.2/2.3 JSON/tag-value, "
        "auto-detected) and queue its scan: 202 {scan_id, status} + Location",
        tag="scans",
        query=UploadQuery,
        upload=SBOM_TYPES,
        response=rpc.ScanAccepted,
        response_status=202,
        errors=(404, 409, *_SCAN_ERRORS),
        project_param="project",
    ),
    Route(
        method="POST",
        path="/api/v1/projects/{project}/scans/upload",
        handler=upload_source,
        roles=SCAN_WRITERS,
        summary="Upload a source .zip and queue a scan of its lockfiles (package-lock.json, "
        "requirements*.txt, poetry.lock, uv.lock, Pipfile.lock, go.mod, Cargo.lock, "
        "composer.lock, Gemfile.lock): 202 {scan_id, status} + Location",
        tag="scans",
        query=UploadQuery,
        upload=ZIP_TYPES,
        response=rpc.ScanAccepted,
        response_status=202,
        errors=(404, 409, *_SCAN_ERRORS),
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/v1/scans/{scan_id}",
        handler=get_scan,
        roles=READ_ROLES,
        summary="A scan: status (queued, running, succeeded, failed, cancelled), progress, "
        "error (code, message, location), summary",
        tag="scans",
        response=rpc.ScanView,
        errors=_SCAN_ERRORS,
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path="/api/v1/scans/{scan_id}/log",
        handler=scan_log,
        roles=READ_ROLES,
        summary="The scan's log, oldest first (cursor pagination)",
        tag="scans",
        query=rpc.ScanLogQuery,
        response=rpc.ScanLogPage,
        errors=_SCAN_ERRORS,
        allow_project_scoped=True,
    ),
    Route(
        method="POST",
        path="/api/v1/scans/{scan_id}/cancel",
        handler=cancel_scan,
        roles=SCAN_WRITERS,
        summary="Cancel a queued or running scan (409 once it has finished)",
        tag="scans",
        query=CancelQuery,
        response=rpc.ScanView,
        errors=(409, *_SCAN_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="DELETE",
        path="/api/v1/scans/{scan_id}",
        handler=delete_scan,
        roles=SCAN_DELETERS,
        summary="Delete a finished scan with its components and findings (409 while it "
        "runs; a release-labelled scan needs force=true and the ADMIN role)",
        tag="scans",
        query=DeleteQuery,
        response_status=204,
        errors=(409, *_SCAN_ERRORS),
        allow_project_scoped=True,
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}/scans",
        handler=list_scans,
        roles=READ_ROLES,
        summary="The project's scans, newest first (filters: status, kind, label)",
        tag="scans",
        query=rpc.ScanListQuery,
        response=rpc.ScanPage,
        errors=_SCAN_ERRORS,
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}/snapshots",
        handler=list_snapshots,
        roles=READ_ROLES,
        summary="The project's snapshots (succeeded scans), newest first",
        tag="scans",
        query=rpc.SnapshotQuery,
        response=rpc.SnapshotPage,
        errors=_SCAN_ERRORS,
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}/components",
        handler=list_components,
        roles=READ_ROLES,
        summary="Components of the latest snapshot or of scan_id (filters: severity, "
        "license_category, direct, scope; sort: name, severity, license_category, purl)",
        tag="scans",
        query=rpc.ComponentQuery,
        response=rpc.ComponentPage,
        errors=(409, *_SCAN_ERRORS),
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}/vulnerabilities",
        handler=list_vulnerabilities,
        roles=READ_ROLES,
        summary="Findings of the latest snapshot or of scan_id (filters: severity, status, "
        "license_category, min_epss; sort: severity, cvss, epss, discovered_at, component)",
        tag="scans",
        query=rpc.VulnerabilityQuery,
        response=rpc.FindingPage,
        errors=(409, *_SCAN_ERRORS),
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/v1/findings/{finding_id}",
        handler=get_finding,
        roles=READ_ROLES,
        summary="A finding (ETag = its version; If-None-Match answers 304)",
        tag="scans",
        response=rpc.FindingView,
        errors=_SCAN_ERRORS,
        allow_project_scoped=True,
    ),
]
