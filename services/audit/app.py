"""Wiring of the audit service: the hash-chained log projection and its query, export and
verify endpoints on ``svc.audit.*``."""

from __future__ import annotations

from pathlib import Path

from contracts.rpc.audit import (
    EXPORT_PAGE,
    QUERY,
    VERIFY,
    AuditExportRequest,
    AuditQueryRequest,
    AuditVerifyRequest,
)
from services.audit.handlers import AuditHandlers
from services.audit.projection import SCHEMA, AuditLogProjection
from shared.service import Runtime, ServiceDefinition


async def setup(runtime: Runtime) -> None:
    runner = runtime.add_projection(AuditLogProjection())
    handlers = AuditHandlers(pool=runtime.pool, runner=runner, settings=runtime.settings)
    runtime.rpc.add(QUERY, AuditQueryRequest, handlers.query)
    runtime.rpc.add(EXPORT_PAGE, AuditExportRequest, handlers.export_page)
    runtime.rpc.add(VERIFY, AuditVerifyRequest, handlers.verify)


DEFINITION = ServiceDefinition(
    name="audit",
    schema=SCHEMA,
    migrations_dir=Path(__file__).parent / "migrations",
    description="Append-only, hash-chained audit log of every event; query, export, verify",
    setup=setup,
)
