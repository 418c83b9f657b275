"""``svc.scanner.vex_import`` and ``vex_export``: VEX documents in and out.

Import: the document (a blob the gateway stored) is read and told apart (CycloneDX VEX or
OpenVEX) before anything else; then, holding the project's triage lock exclusively, its
statements are applied to the open findings of the project's latest snapshot through the
triage rules for the importing principal (``domain.vex_apply.plan_vex_import``), one
``finding.triaged`` (``cause: vex``, ``source: <digest>#<statement path>``) per finding
that changes. A document that cannot be read writes nothing.

Export: the open findings of the latest snapshot (or a pinned one) as OpenVEX 0.2.0 or
CycloneDX 1.6 VEX, deterministic (``domain.vex_export``; the timestamp is the snapshot's
completion or its latest triage, whichever is later), stored as a blob for the gateway to
answer with (a large project's document exceeds a NATS message). An OpenVEX document needs
at least one statement: a snapshot without findings answers 404 ``no_findings`` for it (a
CycloneDX document without vulnerabilities is valid and is answered).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import asyncpg

from contracts.rpc.scanner_triage import (
    LIST_MAX,
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
from services.scanner.domain.vex_apply import plan_vex_import
from services.scanner.domain.vex_export import build_cyclonedx_vex, build_openvex
from services.scanner.domain.vex_import import VexDocument, parse_vex
from services.scanner.scans import queries
from services.scanner.scans.handlers import ScanNotFound, ScanNotSucceeded
from services.scanner.triage import store
from services.scanner.triage.handlers import lock_timeout
from services.scanner.triage.record import Change, Recorder
from services.scanner.triage.rules import unmatched_statements
from shared.blobs import BlobStore
from shared.errors import Forbidden, NotFound, PayloadTooLarge, ValidationFailed
from shared.rpc import CallContext

VEX_IMPORTERS = frozenset({"ADMIN", "POLICY_AUTHOR"})


class NoSnapshot(NotFound):
    code, title = "no_snapshot", "The project has no snapshot"


class NoFindings(NotFound):
    code, title = "no_findings", "The snapshot has no findings"


class VexMissing(ValidationFailed):
    code, title = "vex_missing", "The uploaded VEX document is not stored"


class VexTooLarge(PayloadTooLarge):
    code, title = "vex_too_large", "The VEX document is too large"


@dataclass
class VexHandlers:
    recorder: Recorder
    blobs: BlobStore

    @property
    def pool(self) -> asyncpg.Pool:
        return self.recorder.runtime.pool

    @property
    def _lock_timeout(self) -> float:
        return lock_timeout(self.recorder)

    # ---- VEX in -----------------------------------------------------------------------------
    async def vex_import(self, request: VexImportRequest, ctx: CallContext) -> VexImportSummary:
        if not VEX_IMPORTERS & set(ctx.roles):
            raise Forbidden(
                "importing VEX needs the POLICY_AUTHOR or ADMIN role", code="vex_role_forbidden"
            )
        settings = self.recorder.runtime.settings
        limit = min(settings.max_upload_bytes, settings.max_sbom_bytes)
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
            # CPU work (every statement against every finding): off the event loop.
            plan = await asyncio.to_thread(
                plan_vex_import,
                findings,
                document.statements,
                roles=ctx.roles,
                product_version=latest.label,
            )
            unmatched = await asyncio.to_thread(
                unmatched_statements,
                findings,
                document.statements,
                product_version=latest.label,
            )
            by_id = {f.id: f for f in findings}
            changes = [
                Change(
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
            await self.recorder.record(changes, ctx=ctx)
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


def _no_snapshot() -> NoSnapshot:
    return NoSnapshot("the project has no snapshot yet: upload an SBOM or a source archive first")
