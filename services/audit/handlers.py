"""The audit service's request/reply endpoints: ``svc.audit.query``, ``export_page``,
``verify``.

Reads are read-your-writes on request: ``min_sequence`` makes a query wait until the log
has applied that stream sequence (a caller that just changed something passes the version it
got back), bounded well inside the caller's RPC deadline.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from contracts.rpc.audit import (
    AuditExportPage,
    AuditExportRequest,
    AuditFilters,
    AuditPage,
    AuditQueryRequest,
    AuditVerifyProgress,
    AuditVerifyRequest,
    window_problem,
)
from services.audit.adapters import log_store
from services.audit.domain.chain import verify_chain
from services.audit.domain.entries import columns_problem
from shared.errors import GatehouseError, ValidationFailed
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings

# Share of the caller's RPC deadline a query may spend waiting for the log to catch up.
CATCH_UP_SHARE = 0.6


class NotCaughtUp(GatehouseError):
    code, status, title = "audit_not_caught_up", 504, "The audit log has not caught up yet"
    transient = True


@dataclass
class AuditHandlers:
    pool: asyncpg.Pool
    runner: ProjectionRunner
    settings: Settings

    async def query(self, request: AuditQueryRequest, _ctx: CallContext) -> AuditPage:
        _check_filters(request.filters)
        await self._caught_up(request.min_sequence)
        offset = (request.page - 1) * request.page_size
        async with self.pool.acquire() as conn:
            items, total = await log_store.query(
                conn, request.filters, offset=offset, limit=request.page_size
            )
        return AuditPage(
            items=items,
            page=request.page,
            page_size=request.page_size,
            total=total,
            has_more=offset + len(items) < total,
        )

    async def export_page(self, request: AuditExportRequest, _ctx: CallContext) -> AuditExportPage:
        _check_filters(request.filters)
        await self._caught_up(request.min_sequence)
        async with self.pool.acquire() as conn:
            up_to = request.up_to_sequence
            if up_to is None:
                up_to = await log_store.last_sequence(conn)
            items = await log_store.export_page(
                conn,
                request.filters,
                after_sequence=request.after_sequence,
                up_to_sequence=up_to,
                limit=request.limit,
            )
            total = (
                await log_store.count(conn, request.filters, up_to_sequence=up_to)
                if request.count_total
                else None
            )
        full = len(items) == request.limit
        return AuditExportPage(
            items=items,
            up_to_sequence=up_to,
            next_after=items[-1].sequence if full else None,
            total=total,
        )

    async def verify(self, request: AuditVerifyRequest, _ctx: CallContext) -> AuditVerifyProgress:
        async with self.pool.acquire() as conn:
            up_to = request.up_to_sequence
            if up_to is None:
                up_to = await log_store.last_sequence(conn)
            try:
                prev_hash = await log_store.hash_at(conn, request.after_sequence)
            except LookupError as exc:
                raise ValidationFailed(
                    str(exc), extra={"errors": [{"field": "$.after_sequence", "message": str(exc)}]}
                ) from exc
            entries = await log_store.entries_after(
                conn,
                after_sequence=request.after_sequence,
                up_to_sequence=up_to,
                limit=request.max_rows,
            )
        verdict = verify_chain(
            entries,
            prev_sequence=request.after_sequence,
            prev_hash=prev_hash,
            also=lambda entry: columns_problem(entry.columns, entry.event),
        )
        return AuditVerifyProgress(
            ok=verdict.ok,
            checked=verdict.checked,
            first_bad_sequence=verdict.first_bad_sequence,
            problem=verdict.problem,
            last_sequence=verdict.last_sequence,
            last_hash=verdict.last_hash.hex(),
            up_to_sequence=up_to,
            done=not verdict.ok or len(entries) < request.max_rows,
        )

    async def _caught_up(self, sequence: int) -> None:
        if sequence <= self.runner.checkpoint:
            return
        # A write is acknowledged only once the stream holds it: a sequence beyond the
        # stream's last one names no write, and waiting for it would only time out (504).
        last = await self.runner.bus.last_sequence()
        if sequence > last:
            message = f"no write has stream sequence {sequence} (the last one is {last})"
            raise ValidationFailed(
                message,
                code="sequence_not_written",
                extra={"errors": [{"field": "$.min_sequence", "message": message}]},
            )
        timeout = self.settings.rpc_timeout_seconds * CATCH_UP_SHARE
        try:
            await self.runner.wait_for(sequence, timeout=timeout)
        except TimeoutError:
            raise NotCaughtUp(
                f"the audit log has applied up to stream sequence {self.runner.checkpoint}, "
                f"not yet {sequence}; ask again shortly",
                extra={"checkpoint": self.runner.checkpoint},
            ) from None


def _check_filters(filters: AuditFilters) -> None:
    problem = window_problem(filters.occurred_from, filters.occurred_to)
    if problem:
        raise ValidationFailed(problem, extra={"errors": [{"field": "$.to", "message": problem}]})
