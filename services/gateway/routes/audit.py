"""The audit log (owned by the audit service, asked over ``svc.audit.*``): query, CSV
export, chain verification. Roles: ADMIN, AUDITOR.

The CSV export streams page after page of a snapshot (the log's head when the export
began), oldest first, and stops at ``GATEHOUSE_AUDIT_EXPORT_MAX_ROWS`` (100,000): the
``X-Export-Total`` / ``X-Export-Rows`` / ``X-Export-Truncated`` headers say how many matched
and how many follow. The log is append-only, so the count taken first is exact.
"""

from __future__ import annotations

from aiohttp import web

from contracts.rpc.audit import (
    EXPORT_PAGE,
    EXPORT_PAGE_MAX,
    QUERY,
    SERVICE,
    VERIFY,
    AuditExportPage,
    AuditExportRequest,
    AuditFilters,
    AuditPage,
    AuditQueryRequest,
    AuditVerification,
    AuditVerifyProgress,
    AuditVerifyRequest,
    window_problem,
)
from services.gateway.deps import deps_of
from services.gateway.domain.audit_csv import csv_text
from services.gateway.dto import AuditFilterQuery, AuditListQuery
from services.gateway.routes._upstream import ask
from services.gateway.routing import RequestContext, Route, roles
from shared.errors import GatehouseError, ValidationFailed
from shared.http import json_response
from shared.logging import get_logger

log = get_logger(__name__)

AUDIT_ROLES = roles("ADMIN", "AUDITOR")
CSV_MEDIA_TYPE = "text/csv"


def audit_filters(query: AuditFilterQuery) -> AuditFilters:
    problem = window_problem(query.from_, query.to)
    if problem:
        raise ValidationFailed(
            f"query parameter: {problem}",
            extra={"errors": [{"field": "$.to", "message": problem, "in": "query"}]},
        )
    return AuditFilters(
        actor=query.actor,
        type=query.type,
        aggregate=query.aggregate,
        occurred_from=query.from_,
        occurred_to=query.to,
        q=query.q,
    )


async def list_audit(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, AuditListQuery)
    page = await ask(
        ctx,
        SERVICE,
        QUERY,
        AuditQueryRequest(
            filters=audit_filters(query),
            page=query.page,
            page_size=query.page_size,
            min_sequence=query.min_sequence,
        ),
        AuditPage,
    )
    return json_response(page)


async def export_audit_csv(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, AuditFilterQuery)
    cap = deps_of(ctx).settings.audit_export_max_rows
    filters = audit_filters(query)
    # The first page is asked for before anything is sent, so an unreachable audit service
    # is still an ordinary problem response.
    page = await ask(
        ctx,
        SERVICE,
        EXPORT_PAGE,
        AuditExportRequest(
            filters=filters,
            limit=min(EXPORT_PAGE_MAX, cap),
            count_total=True,
            min_sequence=query.min_sequence,
        ),
        AuditExportPage,
    )
    total = page.total or 0
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{CSV_MEDIA_TYPE}; charset=utf-8; header=present",
            "Content-Disposition": 'attachment; filename="gatehouse-audit.csv"',
            "Cache-Control": "no-store",
            "X-Request-ID": ctx.request_id,
            "X-Export-Total": str(total),
            "X-Export-Rows": str(min(total, cap)),
            "X-Export-Limit": str(cap),
            "X-Export-Truncated": "true" if total > cap else "false",
            "X-Export-Up-To-Sequence": str(page.up_to_sequence),
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(ctx.request)
    await response.write(csv_text([], header=True).encode())
    written = 0
    try:
        while True:
            rows = page.items[: cap - written]
            await response.write(csv_text(rows).encode())
            written += len(rows)
            if written >= cap or page.next_after is None:
                break
            page = await ask(
                ctx,
                SERVICE,
                EXPORT_PAGE,
                AuditExportRequest(
                    filters=filters,
                    after_sequence=page.next_after,
                    up_to_sequence=page.up_to_sequence,
                    limit=min(EXPORT_PAGE_MAX, cap - written),
                ),
                AuditExportPage,
            )
    except GatehouseError as exc:
        # The status line is gone: cut the connection so the client sees an incomplete
        # body instead of a CSV that looks whole.
        log.warning("audit_export_interrupted", rows=written, error=exc.code)
        if ctx.request.transport is not None:
            ctx.request.transport.close()
        return response
    await response.write_eof()
    return response


async def verify_audit(ctx: RequestContext) -> web.StreamResponse:
    """Walks the whole chain, one bounded verify call after another."""
    checked = 0
    after = 0
    up_to: int | None = None
    while True:
        progress = await ask(
            ctx,
            SERVICE,
            VERIFY,
            AuditVerifyRequest(after_sequence=after, up_to_sequence=up_to),
            AuditVerifyProgress,
        )
        checked += progress.checked
        up_to = progress.up_to_sequence
        if progress.done:
            break
        after = progress.last_sequence
    return json_response(
        AuditVerification(
            ok=progress.ok,
            checked=checked,
            first_bad_sequence=progress.first_bad_sequence,
            problem=progress.problem,
            head_sequence=progress.last_sequence,
            head_hash=progress.last_hash,
        )
    )


ROUTES: list[Route] = [
    Route(
        method="GET",
        path="/api/v1/audit",
        handler=list_audit,
        roles=AUDIT_ROLES,
        summary="Search the audit log (newest first; filters, full text, page/page_size)",
        tag="audit",
        query=AuditListQuery,
        response=AuditPage,
        errors=(502, 503, 504),
    ),
    Route(
        method="GET",
        path="/api/v1/audit/export.csv",
        handler=export_audit_csv,
        roles=AUDIT_ROLES,
        summary="Stream the matching audit entries as CSV, oldest first, at most 100,000 "
        "rows (X-Export-Total, X-Export-Rows, X-Export-Truncated)",
        tag="audit",
        query=AuditFilterQuery,
        response_media_type=CSV_MEDIA_TYPE,
        errors=(502, 503, 504),
    ),
    Route(
        method="GET",
        path="/api/v1/audit/verify",
        handler=verify_audit,
        roles=AUDIT_ROLES,
        summary="Recompute the hash chain: {ok, checked, first_bad_sequence}",
        tag="audit",
        response=AuditVerification,
        errors=(502, 503, 504),
    ),
]
