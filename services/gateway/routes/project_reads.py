"""Reports on a project's snapshots (owned by the scanner, asked over ``svc.scanner.*``).

Every report reads the latest snapshot (the newest succeeded scan) or the one named by
``scan_id``: an unknown scan or one of another project answers 404 ``scan_not_found``, one
that has not succeeded 409 ``scan_not_succeeded``. Before the first snapshot: licenses is
an empty list (``scan_id`` null), the policy gate fails, the rest answer 404 ``no_snapshot``.

* ``licenses``: each license expression with its category, component count and waivers.
* ``policy-gate``: ``pass | warn | fail`` with the counts and every reason.
* ``diff?base=&target=``: components added, removed, changed; vulnerabilities new, resolved.
* ``sbom?format=cyclonedx-json|cyclonedx-xml|spdx-json``: the snapshot as an SBOM, with its
  vulnerabilities (CycloneDX: with their VEX analysis), as a download.
* ``notice?format=text|markdown|html``: third-party notices grouped by license.

Documents are rendered by the scanner into the blob store and served from there; their
``ETag`` is the document's digest (``If-None-Match`` answers 304), and the same snapshot
and triage give the same bytes. Every role reads; a project-scoped key only its project.
"""

from __future__ import annotations

from aiohttp import web

from contracts.rpc import scanner_licensing, scanner_reads
from services.gateway.dto import ProjectView
from services.gateway.routes._upstream import (
    ask,
    blob_unless_cached,
    document_etag,
    project_of,
)
from services.gateway.routing import READ_ROLES, RequestContext, Route
from shared.http import json_response

_ERRORS = (404, 409, 502, 503, 504)


async def list_licenses(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, scanner_licensing.LicensesQuery)
    project = await project_of(ctx)
    request = scanner_licensing.LicensesRequest(project_id=project.id, query=query)
    page = await ask(
        ctx,
        scanner_reads.SERVICE,
        scanner_licensing.LICENSES,
        request,
        scanner_licensing.LicensesPage,
    )
    return json_response(page)


async def policy_gate(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, scanner_reads.PolicyGateQuery)
    project = await project_of(ctx)
    request = scanner_reads.PolicyGateRequest(project_id=project.id, query=query)
    verdict = await ask(
        ctx, scanner_reads.SERVICE, scanner_reads.POLICY_GATE, request, scanner_reads.PolicyGateView
    )
    return json_response(verdict)


async def snapshot_diff(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, scanner_reads.DiffQuery)
    project = await project_of(ctx)
    request = scanner_reads.DiffRequest(project_id=project.id, query=query)
    page = await ask(
        ctx,
        scanner_reads.SERVICE,
        scanner_reads.SNAPSHOT_DIFF,
        request,
        scanner_reads.SnapshotDiffPage,
    )
    return json_response(page)


async def _document(
    ctx: RequestContext, project: ProjectView, exported: scanner_reads.DocumentExported
) -> web.StreamResponse:
    headers = {
        "ETag": document_etag(exported.digest),
        "Gatehouse-Scan-Id": exported.scan_id,
        "X-Content-Type-Options": "nosniff",
    }
    data = await blob_unless_cached(ctx, exported.digest)
    if data is None:
        return web.Response(status=304, headers=headers)
    name = f"{project.slug}-{exported.scan_id[:8]}{exported.extension}"
    headers["Content-Disposition"] = f'attachment; filename="{name}"'
    headers["Content-Type"] = exported.media_type
    if exported.media_type.startswith("text/html"):
        # A downloaded notice is markup: nothing in it runs if it is opened in place.
        headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return web.Response(body=data, headers=headers)


async def export_sbom(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, scanner_reads.SbomQuery)
    project = await project_of(ctx)
    request = scanner_reads.SbomRequest(
        project_id=project.id, product_name=project.slug, query=query
    )
    exported = await ask(
        ctx,
        scanner_reads.SERVICE,
        scanner_reads.SBOM_EXPORT,
        request,
        scanner_reads.DocumentExported,
    )
    return await _document(ctx, project, exported)


async def export_notice(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, scanner_reads.NoticeQuery)
    project = await project_of(ctx)
    request = scanner_reads.NoticeRequest(project_id=project.id, title=project.name, query=query)
    exported = await ask(
        ctx, scanner_reads.SERVICE, scanner_reads.NOTICE, request, scanner_reads.DocumentExported
    )
    return await _document(ctx, project, exported)


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/api/v1/projects/{project}/licenses",
        handler=list_licenses,
        roles=READ_ROLES,
        summary="Licenses of the latest snapshot or of scan_id: each expression with its "
        "category, component count, waivers and reason, most restrictive first (filter: "
        "category), with the policy versions the categories were evaluated with",
        tag="reports",
        query=scanner_licensing.LicensesQuery,
        response=scanner_licensing.LicensesPage,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}/policy-gate",
        handler=policy_gate,
        roles=READ_ROLES,
        summary="The scanner's gate for the latest snapshot or scan_id: fail on an effective "
        "CRITICAL, a forbidden license or EPSS >= threshold; warn on HIGH, conditional or "
        "unknown licenses, pairs not evaluated; else pass (no snapshot: fail)",
        tag="reports",
        query=scanner_reads.PolicyGateQuery,
        response=scanner_reads.PolicyGateView,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}/diff",
        handler=snapshot_diff,
        roles=READ_ROLES,
        summary="What changed from snapshot base to target (defaults: the latest, and the one "
        "before it): components added, removed, changed version; vulnerabilities new, "
        "resolved (cursor pagination over the five lists; counts of all)",
        tag="reports",
        query=scanner_reads.DiffQuery,
        response=scanner_reads.SnapshotDiffPage,
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}/sbom",
        handler=export_sbom,
        roles=READ_ROLES,
        summary="The snapshot as an SBOM download: CycloneDX 1.6 (or spec_version=1.5) JSON or "
        "XML with vulnerabilities and their analysis, or SPDX 2.3 JSON (ETag: the digest)",
        tag="reports",
        query=scanner_reads.SbomQuery,
        response_media_type="application/vnd.cyclonedx+json",
        also_media_types=("application/vnd.cyclonedx+xml", "application/spdx+json"),
        errors=_ERRORS,
        project_param="project",
    ),
    Route(
        method="GET",
        path="/api/v1/projects/{project}/notice",
        handler=export_notice,
        roles=READ_ROLES,
        summary="Third-party notices of the snapshot, grouped by license (text, markdown or "
        "html), without the project's own component",
        tag="reports",
        query=scanner_reads.NoticeQuery,
        response_media_type="text/plain",
        also_media_types=("text/markdown", "text/html"),
        errors=_ERRORS,
        project_param="project",
    ),
]
