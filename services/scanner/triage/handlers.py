"""``svc.scanner.finding_triage`` and ``bulk_transition``: the triage of findings.

Commands check the caller's roles and reasons first (nothing is read for a caller who may
not triage), then take the triage locks (``store.triage_locks``), decide with the domain
(``domain/vex.py``) against the read model as it is under the lock, publish one
``finding.triaged`` per finding that changes and answer once the scans projection has
applied them (``record.Recorder``): the reply and the next read show the new state and
revision. A refusal publishes nothing.

Only findings of the project's latest snapshot are triaged (409 ``finding_not_current``
otherwise, naming the current finding of the same package and vulnerability): the latest
decision is what the triage memory carries into the next scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from contracts.rpc.scanner_scans import FindingView
from contracts.rpc.scanner_triage import (
    BulkRowView,
    BulkTransitionReply,
    BulkTransitionRequest,
    FindingTriageRequest,
)
from services.scanner.domain.vex import (
    BulkRow,
    BulkRowResult,
    TriageError,
    bulk_transition,
    check_request,
    transition,
    validate_bulk_ids,
)
from services.scanner.scans import queries
from services.scanner.scans.handlers import FindingNotFound
from services.scanner.triage import store
from services.scanner.triage.record import Change, Recorder
from services.scanner.triage.rules import not_current, row_status
from shared.rpc import CallContext

# Share of the RPC deadline a request may wait for another triage's locks.
LOCK_SHARE = 0.25


@dataclass
class TriageHandlers:
    recorder: Recorder

    @property
    def pool(self) -> asyncpg.Pool:
        return self.recorder.runtime.pool

    @property
    def _lock_timeout(self) -> float:
        return lock_timeout(self.recorder)

    # ---- one finding ------------------------------------------------------------------------
    async def triage(self, request: FindingTriageRequest, ctx: CallContext) -> FindingView:
        check_request(
            request.state,
            ctx.roles,
            justification=request.justification or None,
            detail=request.detail,
        )
        found = (await store.triage_rows(self.pool, [request.finding_id], project_id=None)).get(
            request.finding_id
        )
        if found is None or (
            request.only_project is not None and found.project_id != request.only_project
        ):
            raise FindingNotFound(f"no finding {request.finding_id!r}")
        async with store.triage_locks(
            self.pool, found.project_id, finding_ids=[found.id], timeout=self._lock_timeout
        ) as conn:
            row = (await store.triage_rows(conn, [found.id], project_id=None)).get(found.id)
            if row is None:  # its scan was deleted meanwhile
                raise FindingNotFound(f"no finding {request.finding_id!r}")
            latest = await store.latest_snapshot(conn, row.project_id)
            if latest is None or latest.id != row.scan_id:
                current = await store.current_finding_id(conn, latest.id, row) if latest else None
                raise not_current(
                    row.id, latest_scan_id=latest.id if latest else None, current=current
                )
            accepted = request.if_match
            expected = None
            if accepted is not None:
                expected = row.version if row.version in accepted else (accepted or [0])[0]
            try:
                decided = transition(
                    row.triage_state,
                    request.state,
                    roles=ctx.roles,
                    justification=request.justification,
                    detail=request.detail,
                    expected_revision=expected,
                )
            except TriageError as exc:
                if exc.code == "precondition_failed":
                    exc.extra["current_etag"] = f'"v{row.version}"'
                raise
            if decided.changed:
                await self.recorder.record([Change.of(row, decided, cause="triage")], ctx=ctx)
        view = await queries.finding(self.pool, found.id)
        if view is None:
            raise FindingNotFound(f"no finding {request.finding_id!r}")
        return view

    # ---- bulk -------------------------------------------------------------------------------
    async def bulk(self, request: BulkTransitionRequest, ctx: CallContext) -> BulkTransitionReply:
        body = request.body
        justification = body.justification or None
        check_request(body.state, ctx.roles, justification=justification, detail=body.detail)
        ids = validate_bulk_ids(body.ids)
        async with store.triage_locks(
            self.pool, request.project_id, finding_ids=ids, timeout=self._lock_timeout
        ) as conn:
            rows = await store.triage_rows(conn, ids, project_id=request.project_id)
            latest = await store.latest_snapshot(conn, request.project_id)
            stale = {i for i, row in rows.items() if latest is None or row.scan_id != latest.id}
            decided = {
                result.id: result
                for result in bulk_transition(
                    [BulkRow(i, rows[i].triage_state) for i in ids if i in rows and i not in stale],
                    body.state,
                    roles=ctx.roles,
                    justification=justification,
                    detail=body.detail,
                )
            }
            changes = [
                Change.of(rows[i], result.triaged, cause="bulk")
                for i, result in decided.items()
                if result.triaged is not None
            ]
            await self.recorder.record(changes, ctx=ctx)
        items: list[BulkRowView] = []
        for finding_id in ids:
            if finding_id not in rows:
                items.append(
                    _failed_row(
                        finding_id, "finding_not_found", "no such finding in this project", None
                    )
                )
            elif finding_id in stale:
                items.append(
                    _failed_row(
                        finding_id,
                        "finding_not_current",
                        "the finding is not in the project's latest snapshot",
                        rows[finding_id].state,
                    )
                )
            else:
                items.append(await self._row_view(decided[finding_id]))
        return BulkTransitionReply(
            items=items,
            updated=sum(1 for i in items if i.outcome == "updated"),
            unchanged=sum(1 for i in items if i.outcome == "unchanged"),
            failed=sum(1 for i in items if i.outcome == "failed"),
        )

    async def _row_view(self, result: BulkRowResult) -> BulkRowView:
        if result.status == "failed":
            assert result.code is not None
            return _failed_row(result.id, result.code, result.detail or "", result.from_state)
        return BulkRowView(
            id=result.id,
            ok=True,
            status=200,
            outcome=result.status,
            from_state=result.from_state,
            finding=await queries.finding(self.pool, result.id),
        )

    # ---- VEX in -----------------------------------------------------------------------------


def lock_timeout(recorder: Recorder) -> float:
    return recorder.runtime.settings.rpc_timeout_seconds * LOCK_SHARE


def _failed_row(finding_id: str, code: str, detail: str, from_state: str | None) -> BulkRowView:
    return BulkRowView(
        id=finding_id,
        ok=False,
        status=row_status(code),
        outcome="failed",
        code=code,
        detail=detail,
        from_state=from_state,  # type: ignore[arg-type]
    )
