"""``svc.scanner.finding_triage`` / ``bulk_transition`` / ``vex_import`` / ``vex_export``.

Commands check the caller's roles and reasons first (nothing is read for a caller who may
not triage), then take the triage locks (``store.triage_locks``), decide with the domain
(``domain/vex.py``, ``domain/vex_apply.py``) against the read model as it is under the
lock, publish one ``finding.triaged`` per finding that changes, and answer once the scans
projection has applied them (read-your-writes: the reply and the next read show the new
state and revision). A refusal publishes nothing.

Only findings of the project's latest snapshot are triaged (409 ``finding_not_current``
otherwise, naming the current finding of the same package and vulnerability): the latest
decision is what the triage memory carries into the next scan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from contracts.events.scans import FindingTriaged, TriageCause
from contracts.rpc.scanner_scans import FindingView
from contracts.rpc.scanner_triage import (
    LIST_MAX,
    BulkRowView,
    BulkTransitionReply,
    BulkTransitionRequest,
    FindingTriageRequest,
    VexChange,
    VexExported,
    VexExportRequest,
    VexImportRequest,
    VexImportSummary,
    VexRefusal,
    VexUnmatched,
    VexWarningView,
)
from services.scanner.domain.model import Component
from services.scanner.domain.vex import (
    BulkRow,
    BulkRowResult,
    Triaged,
    TriageError,
    bulk_transition,
    check_request,
    transition,
    validate_bulk_ids,
)
from services.scanner.domain.vex_apply import plan_vex_import
from services.scanner.domain.vex_export import build_cyclonedx_vex, build_openvex
from services.scanner.domain.vex_import import VexDocument, parse_vex
from services.scanner.scans import queries
from services.scanner.scans.handlers import (
    CATCH_UP_SHARE,
    FindingNotFound,
    NotVisibleYet,
    ScanNotFound,
    ScanNotSucceeded,
)
from services.scanner.triage import store
from services.scanner.triage.rules import not_current, row_status, unmatched_statements
from shared.blobs import BlobStore
from shared.errors import Forbidden, NotFound, PayloadTooLarge, ValidationFailed
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.service import Runtime

VEX_IMPORTERS = frozenset({"ADMIN", "POLICY_AUTHOR"})
# Events published at once (a VEX import may change thousands of findings).
PUBLISH_BATCH = 64
# Share of the RPC deadline a request may wait for another triage's locks.
LOCK_SHARE = 0.25


class NoSnapshot(NotFound):
    code, title = "no_snapshot", "The project has no snapshot"


class NoFindings(NotFound):
    code, title = "no_findings", "The snapshot has no findings"


class VexMissing(ValidationFailed):
    code, title = "vex_missing", "The uploaded VEX document is not stored"


class VexTooLarge(PayloadTooLarge):
    code, title = "vex_too_large", "The VEX document is too large"


@dataclass(frozen=True)
class _Change:
    """One finding.triaged to publish."""

    finding_id: str
    project_id: str
    scan_id: str
    package: str
    vulnerability_id: str
    triaged: Triaged
    cause: TriageCause
    source: str | None = None


@dataclass
class TriageHandlers:
    runtime: Runtime
    runner: ProjectionRunner  # the scans projection: it applies finding.triaged
    blobs: BlobStore

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    @property
    def _lock_timeout(self) -> float:
        return self.runtime.settings.rpc_timeout_seconds * LOCK_SHARE

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
                await self._record(
                    [
                        _Change(
                            finding_id=row.id,
                            project_id=row.project_id,
                            scan_id=row.scan_id,
                            package=row.package,
                            vulnerability_id=row.vulnerability_id,
                            triaged=decided,
                            cause="triage",
                        )
                    ],
                    ctx=ctx,
                )
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
                _change(rows[i], result.triaged, cause="bulk")
                for i, result in decided.items()
                if result.triaged is not None
            ]
            await self._record(changes, ctx=ctx)
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
    async def vex_import(self, request: VexImportRequest, ctx: CallContext) -> VexImportSummary:
        if not VEX_IMPORTERS & set(ctx.roles):
            raise Forbidden(
                "importing VEX needs the POLICY_AUTHOR or ADMIN role", code="vex_role_forbidden"
            )
        limit = min(self.runtime.settings.max_upload_bytes, self.runtime.settings.max_sbom_bytes)
        if request.size > limit:
            raise VexTooLarge(
                f"the document is {request.size} bytes; at most {limit} are accepted",
                extra={"limit": limit},
            )
        try:
            data = await self.blobs.get(request.digest)
        except NotFound:
            raise VexMissing(f"no stored upload {request.digest}") from None
        document: VexDocument = await asyncio.to_thread(parse_vex, data)
        del data
        if await store.latest_snapshot(self.pool, request.project_id) is None:
            raise _no_snapshot()
        async with store.triage_locks(
            self.pool, request.project_id, whole_project=True, timeout=self._lock_timeout
        ) as conn:
            latest = await store.latest_snapshot(conn, request.project_id)
            if latest is None:  # deleted meanwhile
                raise _no_snapshot()
            findings, packages = await store.snapshot_findings(conn, latest.id)
            plan = plan_vex_import(
                findings, document.statements, roles=ctx.roles, product_version=latest.label
            )
            unmatched = unmatched_statements(
                findings, document.statements, product_version=latest.label
            )
            by_id = {f.id: f for f in findings}
            changes = [
                _Change(
                    finding_id=row.finding_id,
                    project_id=request.project_id,
                    scan_id=latest.id,
                    package=packages[row.finding_id],
                    vulnerability_id=by_id[row.finding_id].vulnerability_id,
                    triaged=row.triaged,
                    cause="vex",
                    source=f"{request.digest}#{row.statement}"[:600],
                )
                for row in plan
                if row.triaged is not None
            ]
            await self._record(changes, ctx=ctx)
        refused = [row for row in plan if row.status == "failed"]
        return VexImportSummary(
            scan_id=latest.id,
            format=document.format,
            spec_version=document.spec_version,
            statements=len(document.statements),
            applied=len(changes),
            unchanged=sum(1 for row in plan if row.status == "unchanged"),
            refused=len(refused),
            unmatched=len(unmatched),
            changes=[
                VexChange(
                    finding_id=c.finding_id,
                    vulnerability_id=c.vulnerability_id,
                    package=c.package,
                    from_state=c.triaged.from_state,
                    to_state=c.triaged.to_state,
                    statement=(c.source or "").partition("#")[2],
                )
                for c in changes[:LIST_MAX]
            ],
            refusals=[
                VexRefusal(
                    finding_id=row.finding_id,
                    vulnerability_id=by_id[row.finding_id].vulnerability_id,
                    package=packages[row.finding_id],
                    from_state=row.from_state,
                    to_state=row.to_state,
                    statement=row.statement,
                    code=row.code or "vex_refused",
                    detail=row.detail or "",
                )
                for row in refused[:LIST_MAX]
            ],
            unmatched_statements=[
                VexUnmatched(statement=s.location, vulnerability_id=s.vulnerability_ids[0])
                for s in unmatched[:LIST_MAX]
            ],
            warnings=[
                VexWarningView(code=w.code, detail=w.detail, location=w.location)
                for w in document.warnings[:LIST_MAX]
            ],
        )

    # ---- VEX out ----------------------------------------------------------------------------
    async def vex_export(self, request: VexExportRequest, _ctx: CallContext) -> VexExported:
        query = request.query
        found = await self._snapshot(request.project_id, query.scan_id)
        findings, _ = await store.snapshot_findings(self.pool, found.id)
        if not findings and query.format == "openvex":
            raise NoFindings(
                f"snapshot {found.id} has no findings, and an OpenVEX document needs at least "
                "one statement (format=cyclonedx answers a document without vulnerabilities)",
                extra={"scan_id": found.id},
            )
        timestamp = await store.export_timestamp(self.pool, found)
        name = (request.project_id, found.id, query.format)
        if query.format == "openvex":
            author = f"{request.product_name} (Gatehouse)"
            data = await asyncio.to_thread(
                build_openvex, findings, author=author, timestamp=timestamp, document_name=name
            )
        else:
            subject = Component(
                ref=f"urn:gatehouse:project:{request.project_id}",
                name=request.product_name,
                version=found.label,
                type="application",
            )
            data = await asyncio.to_thread(
                build_cyclonedx_vex,
                findings,
                subject=subject,
                timestamp=timestamp,
                document_name=name,
            )
        digest = await self.blobs.put(data)
        return VexExported(
            scan_id=found.id,
            format=query.format,
            digest=digest,
            size=len(data),
            statements=len(findings),
        )

    async def _snapshot(self, project_id: str, pinned: str | None) -> store.Snapshot:
        if pinned is None:
            latest = await store.latest_snapshot(self.pool, project_id)
            if latest is None:
                raise _no_snapshot()
            return latest
        scan = await queries.scan(self.pool, pinned)
        if scan is None or scan.project_id != project_id:
            raise ScanNotFound(
                f"no scan {pinned!r} in this project",
                extra={
                    "errors": [{"field": "$.scan_id", "message": "unknown scan", "in": "query"}]
                },
            )
        found = await store.snapshot(self.pool, pinned)
        if found is None:
            raise ScanNotSucceeded(
                f"scan {pinned} is {scan.status}; only a succeeded scan is a snapshot",
                extra={"scan_status": scan.status},
            )
        return found

    # ---- publishing -------------------------------------------------------------------------
    async def _record(self, changes: Sequence[_Change], *, ctx: CallContext) -> None:
        """Publish one finding.triaged per change and wait until the scans projection has
        applied them all (the caller still holds the locks)."""
        if not changes:
            return
        last = 0
        for start in range(0, len(changes), PUBLISH_BATCH):
            batch = changes[start : start + PUBLISH_BATCH]
            published = await asyncio.gather(*(self._publish(c, ctx=ctx) for c in batch))
            last = max(last, *published)
        timeout = self.runtime.settings.rpc_timeout_seconds * CATCH_UP_SHARE
        try:
            await self.runner.wait_for(last, timeout=timeout)
        except TimeoutError:
            raise NotVisibleYet(
                f"the triage was recorded (stream sequence {last}) but is not readable within "
                f"{timeout:g}s; read it again shortly",
                extra={"stream_sequence": last},
            ) from None

    async def _publish(self, change: _Change, *, ctx: CallContext) -> int:
        triaged = change.triaged
        _, sequence = await self.runtime.bus.publish(
            FindingTriaged(
                finding_id=change.finding_id,
                project_id=change.project_id,
                scan_id=change.scan_id,
                package=change.package,
                vulnerability_id=change.vulnerability_id,
                from_state=triaged.from_state,
                to_state=triaged.to_state,
                justification=triaged.justification,
                detail=triaged.detail,
                version=triaged.revision,
                cause=change.cause,
                source=change.source,
            ),
            aggregate=f"finding:{change.finding_id}",
            actor=ctx.actor,
            correlation_id=ctx.request_id or None,
        )
        return sequence


def _change(row: store.TriageRow, triaged: Triaged, *, cause: TriageCause) -> _Change:
    return _Change(
        finding_id=row.id,
        project_id=row.project_id,
        scan_id=row.scan_id,
        package=row.package,
        vulnerability_id=row.vulnerability_id,
        triaged=triaged,
        cause=cause,
    )


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


def _no_snapshot() -> NoSnapshot:
    return NoSnapshot("the project has no snapshot yet: upload an SBOM or a source archive first")
