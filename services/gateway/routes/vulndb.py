"""The vulnerability database (owned by the scanner, asked over ``svc.scanner.vulndb_*``).

Imports (ADMIN) take the file as the request body, up to ``GATEHOUSE_MAX_UPLOAD_BYTES``:
the gateway stores it as a blob and hands the scanner its digest. The scanner answers once
the import is applied, with what it did (``ImportSummary``); a file it cannot read at all
is refused whole (problem+json with the archive or EPSS code), a broken advisory inside a
readable bundle is listed under ``rejected`` and the rest is imported. Reads: any role.
"""

from __future__ import annotations

from aiohttp import web

from contracts.rpc.scanner_vulndb import (
    ADVISORY,
    IMPORT_EPSS,
    IMPORT_OSV,
    IMPORT_TIMEOUT_SECONDS,
    SERVICE,
    STATUS,
    AdvisoryDetail,
    AdvisoryRequest,
    EpssImportRequest,
    ImportSummary,
    OsvImportRequest,
    StatusRequest,
    VulnDbStatus,
)
from services.gateway.routes._upstream import ask
from services.gateway.routing import ADMIN_ONLY, READ_ROLES, RequestContext, Route, Upload
from services.gateway.uploads import store_upload
from shared.errors import ValidationFailed
from shared.http import json_response

ZIP_TYPES = ("application/zip", "application/x-zip-compressed")
EPSS_TYPES = ("text/csv", "application/gzip", "application/x-gzip")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header; an empty archive


def _upload(ctx: RequestContext) -> Upload:
    upload = ctx.body
    assert isinstance(upload, Upload)
    return upload


async def import_osv(ctx: RequestContext) -> web.StreamResponse:
    upload = _upload(ctx)
    # Refuse what is plainly not a zip before anything is stored.
    if not upload.data.startswith(_ZIP_MAGIC):
        raise ValidationFailed(
            "the body is not a zip archive", code="archive_invalid", extra={"location": "$"}
        )
    digest = await store_upload(ctx, upload)
    summary = await ask(
        ctx,
        SERVICE,
        IMPORT_OSV,
        OsvImportRequest(digest=digest, format="zip"),
        ImportSummary,
        timeout=IMPORT_TIMEOUT_SECONDS,
    )
    return json_response(summary)


async def import_epss(ctx: RequestContext) -> web.StreamResponse:
    digest = await store_upload(ctx, _upload(ctx))
    summary = await ask(
        ctx,
        SERVICE,
        IMPORT_EPSS,
        EpssImportRequest(digest=digest),
        ImportSummary,
        timeout=IMPORT_TIMEOUT_SECONDS,
    )
    return json_response(summary)


async def status(ctx: RequestContext) -> web.StreamResponse:
    return json_response(await ask(ctx, SERVICE, STATUS, StatusRequest(), VulnDbStatus))


async def advisory(ctx: RequestContext) -> web.StreamResponse:
    ref = ctx.request.match_info["id"]
    if not 0 < len(ref) <= 255:
        raise ValidationFailed(
            "an advisory id has 1 to 255 characters",
            extra={"errors": [{"field": "id", "message": "1 to 255 characters", "in": "path"}]},
        )
    return json_response(await ask(ctx, SERVICE, ADVISORY, AdvisoryRequest(id=ref), AdvisoryDetail))


ROUTES: list[Route] = [
    Route(
        method="POST",
        path="/api/v1/vulndb/import",
        handler=import_osv,
        roles=ADMIN_ONLY,
        summary="Import OSV advisories from a zip of JSON files (incremental by `modified`; "
        "broken advisories are listed under `rejected`, the rest imported)",
        tag="vulndb",
        upload=ZIP_TYPES,
        response=ImportSummary,
        errors=(502, 503, 504),
    ),
    Route(
        method="POST",
        path="/api/v1/vulndb/epss",
        handler=import_epss,
        roles=ADMIN_ONLY,
        summary="Import EPSS scores from FIRST's CSV (plain or gzip); a file with a "
        "malformed line is refused whole, naming the lines",
        tag="vulndb",
        upload=EPSS_TYPES,
        response=ImportSummary,
        errors=(502, 503, 504),
    ),
    Route(
        method="GET",
        path="/api/v1/vulndb/status",
        handler=status,
        roles=READ_ROLES,
        summary="Advisory counts per ecosystem, withdrawn count, last imports, EPSS as-of",
        tag="vulndb",
        response=VulnDbStatus,
        allow_project_scoped=True,  # global data: nothing of any project
        errors=(502, 503, 504),
    ),
    Route(
        method="GET",
        path="/api/v1/vulndb/advisories/{id}",
        handler=advisory,
        roles=READ_ROLES,
        summary="One advisory by id or alias: the OSV document, severity and CVSS score, "
        "alias group, EPSS",
        tag="vulndb",
        response=AdvisoryDetail,
        allow_project_scoped=True,  # global data: nothing of any project
        errors=(404, 502, 503, 504),
    ),
]
