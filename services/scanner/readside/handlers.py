"""``svc.scanner.licenses``, ``policy_gate``, ``snapshot_diff``, ``sbom_export``, ``notice``:
reports on a project's latest snapshot or the one pinned by ``scan_id``.

Pure domain functions do the work (``domain/gate.py``, ``diff.py``, ``export_*.py``,
``notice.py``); this module reads their inputs and, for documents, stores the rendered bytes
as a blob the gateway serves (a large project's SBOM exceeds a NATS message). CPU-heavy
rendering runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

from contracts.rpc.scanner_licensing import LicensesPage, LicensesRequest, PolicyInForce
from contracts.rpc.scanner_reads import (
    ComponentChangeView,
    DiffCounts,
    DiffRequest,
    DocumentExported,
    NoticeRequest,
    PolicyGateRequest,
    PolicyGateView,
    SbomRequest,
    SnapshotDiffPage,
    VulnerabilityChangeView,
)
from contracts.rpc.scanner_scans import ScanView
from services.scanner.domain.diff import ComponentChange, VulnerabilityChange, diff_snapshots
from services.scanner.domain.export_cyclonedx import (
    build_cyclonedx_json,
    export_serial,
    timestamp_text,
)
from services.scanner.domain.export_cyclonedx_xml import build_cyclonedx_xml
from services.scanner.domain.export_spdx import build_spdx_json
from services.scanner.domain.gate import evaluate_gate
from services.scanner.domain.license_policy import LicenseResult
from services.scanner.domain.licenses import LicenseVerdict
from services.scanner.domain.model import Component
from services.scanner.domain.notice import render_notice
from services.scanner.licensing import store as licensing
from services.scanner.readside import licenses, snapshot
from shared.blobs import BlobStore
from shared.errors import Conflict
from shared.pagination import decode_cursor, encode_cursor
from shared.rpc import CallContext
from shared.service import VERSION
from shared.settings import Settings

_SBOM = {
    "cyclonedx-json": ("application/vnd.cyclonedx+json; version={spec}", ".cdx.json"),
    "cyclonedx-xml": ("application/vnd.cyclonedx+xml; version={spec}", ".cdx.xml"),
    "spdx-json": ("application/spdx+json", ".spdx.json"),
}
_NOTICE = {
    "text": ("text/plain; charset=utf-8", ".txt"),
    "markdown": ("text/markdown; charset=utf-8", ".md"),
    "html": ("text/html; charset=utf-8", ".html"),
}


class NoBaseSnapshot(Conflict):
    code, title = "no_base_snapshot", "There is no snapshot to compare with"


def _cursor(cursor: str | None, types: tuple[type, ...]) -> tuple[Any, ...] | None:
    return decode_cursor(cursor, kinds=types) if cursor else None


@dataclass
class ReadHandlers:
    pool: asyncpg.Pool
    blobs: BlobStore
    settings: Settings

    # ---- licenses ---------------------------------------------------------------------------
    async def licenses(self, request: LicensesRequest, _ctx: CallContext) -> LicensesPage:
        query = request.query
        after = _cursor(query.cursor, (int, int, str, str))
        scan = await snapshot.latest_or_none(self.pool, request.project_id, query.scan_id)
        if scan is None:
            return LicensesPage(scan_id=None, policy=None, items=[], next_cursor=None)
        found = await licensing.license_scan(self.pool, scan.id)
        if found is not None and found.evaluated_at is not None:
            context = await licensing.context_at(
                self.pool,
                scan.project_id,
                org_version=found.org_policy_version or 0,
                project_version=found.project_policy_version or 0,
                project_override=bool(found.project_override),
                waiver_ids=found.waiver_ids or [],
                now=found.evaluated_at,
            )
            source = found.evaluation_source or "scan"
        else:  # the licensing projection has not seen the scan (yet): explain with today's
            assert scan.finished_at is not None
            context = await licensing.current_context(
                self.pool, scan.project_id, now=scan.finished_at
            )
            source = "scan"
        rows = [
            dict(row)
            for row in await self.pool.fetch(
                "SELECT licenses, purl, license_expression, license_category "
                "FROM scanner.components WHERE scan_id = $1",
                scan.id,
            )
        ]
        usages = await asyncio.to_thread(
            licenses.summarize, rows, context.classifier(), now=context.now
        )
        if query.category:
            usages = [u for u in usages if u.category in query.category]
        items, last = licenses.page(usages, after=after, limit=query.limit)
        return LicensesPage(
            scan_id=scan.id,
            policy=PolicyInForce(
                org_policy_version=context.org_version,
                project_policy_version=context.project_version,
                project_override=context.project_override,
                waiver_ids=context.waiver_ids,
                evaluated_at=context.now,
                source=source,  # type: ignore[arg-type]
            ),
            items=items,
            next_cursor=encode_cursor(last) if last is not None else None,
        )

    # ---- policy gate ------------------------------------------------------------------------
    async def policy_gate(self, request: PolicyGateRequest, _ctx: CallContext) -> PolicyGateView:
        now = dt.datetime.now(dt.UTC)
        threshold = self.settings.epss_threshold
        scan = await snapshot.latest_or_none(self.pool, request.project_id, request.query.scan_id)
        if scan is None:
            reason = "the project has no snapshot: nothing was scanned, nothing can pass"
            return PolicyGateView(
                gate="fail",
                critical_cve_count=0,
                high_cve_count=0,
                forbidden_license_count=0,
                conditional_license_count=0,
                unknown_license_count=0,
                epss_gate_count=0,
                epss_threshold=threshold,
                not_evaluated_count=0,
                reason=reason,
                reasons=[reason],
                blocking_finding_ids=[],
                scan_id=None,
                evaluated_at=now,
            )
        findings, not_evaluated = await snapshot.findings(self.pool, scan.id)
        rows = await self.pool.fetch(
            "SELECT ref, name, version, purl, license_expression, license_category "
            "FROM scanner.components WHERE scan_id = $1 AND license_category <> 'allowed' "
            "ORDER BY name, ref",
            scan.id,
        )
        results = [
            LicenseResult(
                component_ref=row["ref"],
                name=row["name"],
                version=row["version"],
                purl=row["purl"],
                verdict=LicenseVerdict(
                    category=row["license_category"],
                    expression=row["license_expression"],
                    reason="",
                ),
            )
            for row in rows
        ]
        verdict = evaluate_gate(
            findings,
            results,
            epss_threshold=threshold,
            not_evaluated_count=not_evaluated,
            scan_id=scan.id,
            evaluated_at=now,
        )
        evaluated = await licensing.license_scan(self.pool, scan.id)
        return PolicyGateView(
            gate=verdict.gate,
            critical_cve_count=verdict.critical_cve_count,
            high_cve_count=verdict.high_cve_count,
            forbidden_license_count=verdict.forbidden_license_count,
            conditional_license_count=verdict.conditional_license_count,
            unknown_license_count=verdict.unknown_license_count,
            epss_gate_count=verdict.epss_gate_count,
            epss_threshold=verdict.epss_threshold,
            not_evaluated_count=verdict.not_evaluated_count,
            reason=verdict.reason,
            reasons=verdict.reasons,
            blocking_finding_ids=verdict.blocking_finding_ids,
            scan_id=scan.id,
            evaluated_at=now,
            licenses_evaluated_at=evaluated.evaluated_at if evaluated else scan.finished_at,
        )

    # ---- diff -------------------------------------------------------------------------------
    async def diff(self, request: DiffRequest, _ctx: CallContext) -> SnapshotDiffPage:
        query = request.query
        after = _cursor(query.cursor, (int,))
        target = await snapshot.resolve(self.pool, request.project_id, query.target, field="target")
        if query.base is not None:
            base = await snapshot.resolve(self.pool, request.project_id, query.base, field="base")
        else:
            previous = await snapshot.previous(self.pool, target)
            if previous is None:
                raise NoBaseSnapshot(
                    f"the project has no snapshot before {target.id}; name one with base="
                )
            base = await snapshot.resolve(self.pool, request.project_id, previous, field="base")
        (
            (base_components, (base_findings, _)),
            (target_components, (target_findings, _)),
        ) = await asyncio.gather(self._diff_side(base), self._diff_side(target))
        result = await asyncio.to_thread(
            diff_snapshots, base_components, target_components, base_findings, target_findings
        )
        sections: list[tuple[str, list[Any]]] = [
            ("components_added", result.components_added),
            ("components_removed", result.components_removed),
            ("components_changed", result.components_changed),
            ("vulnerabilities_new", result.vulnerabilities_new),
            ("vulnerabilities_resolved", result.vulnerabilities_resolved),
        ]
        start = int(after[0]) if after else 0
        stop = start + query.limit
        pages: dict[str, list[Any]] = {}
        position = 0
        for name, items in sections:
            low, high = max(start - position, 0), max(min(stop - position, len(items)), 0)
            pages[name] = items[low:high]
            position += len(items)
        return SnapshotDiffPage(
            base_scan_id=base.id,
            target_scan_id=target.id,
            counts=DiffCounts(**{name: len(items) for name, items in sections}),
            components_added=[_component(c) for c in pages["components_added"]],
            components_removed=[_component(c) for c in pages["components_removed"]],
            components_changed=[_component(c) for c in pages["components_changed"]],
            vulnerabilities_new=[_vulnerability(v) for v in pages["vulnerabilities_new"]],
            vulnerabilities_resolved=[_vulnerability(v) for v in pages["vulnerabilities_resolved"]],
            next_cursor=encode_cursor([stop]) if stop < position else None,
        )

    async def _diff_side(self, scan: ScanView) -> tuple[list[Component], Any]:
        return await asyncio.gather(
            snapshot.table_components(self.pool, scan.id), snapshot.findings(self.pool, scan.id)
        )

    # ---- documents --------------------------------------------------------------------------
    async def sbom(self, request: SbomRequest, _ctx: CallContext) -> DocumentExported:
        query = request.query
        scan = await snapshot.resolve(self.pool, request.project_id, query.scan_id, field="scan_id")
        result, (findings, _), timestamp = await asyncio.gather(
            snapshot.result_of(self.blobs, scan),
            snapshot.findings(self.pool, scan.id),
            snapshot.export_timestamp(self.pool, scan),
        )
        components = [snapshot.component_of(record) for record in result.components]
        root = snapshot.subject_ref(components, result.dependencies)
        subject = (
            Component(ref=root, name=request.product_name or "product", type="application")
            if root is not None
            else None
        )
        serial = export_serial(scan.project_id, scan.id, "sbom", timestamp_text(timestamp))
        media, extension = _SBOM[query.format]
        if query.format == "spdx-json":
            render: Any = build_spdx_json
            options: dict[str, Any] = {"name": request.product_name or scan.id}
        else:
            render = (
                build_cyclonedx_json if query.format == "cyclonedx-json" else build_cyclonedx_xml
            )
            options = {"spec_version": query.spec_version}
        data: bytes = await asyncio.to_thread(
            render,
            components,
            dependencies=result.dependencies,
            findings=findings,
            subject=subject,
            serial_number=serial,
            timestamp=timestamp,
            tool_version=VERSION,
            **options,
        )
        return DocumentExported(
            scan_id=scan.id,
            format=query.format,
            media_type=media.format(spec=query.spec_version),
            extension=extension,
            digest=await self.blobs.put(data),
            size=len(data),
            components=len(components),
        )

    async def notice(self, request: NoticeRequest, _ctx: CallContext) -> DocumentExported:
        query = request.query
        scan = await snapshot.resolve(self.pool, request.project_id, query.scan_id, field="scan_id")
        result = await snapshot.result_of(self.blobs, scan)
        components = snapshot.third_party(
            [snapshot.component_of(record) for record in result.components], result.dependencies
        )
        text: str = await asyncio.to_thread(
            render_notice,
            components,
            format=query.format,
            title=request.title or "Third-party notices",
        )
        data = text.encode()
        media, extension = _NOTICE[query.format]
        return DocumentExported(
            scan_id=scan.id,
            format=query.format,
            media_type=media,
            extension=extension,
            digest=await self.blobs.put(data),
            size=len(data),
            components=len(components),
        )


def _component(change: ComponentChange) -> ComponentChangeView:
    return ComponentChangeView(
        ecosystem=change.ecosystem,
        package=change.package,
        name=change.name,
        base_versions=list(change.base_versions),
        target_versions=list(change.target_versions),
    )


def _vulnerability(change: VulnerabilityChange) -> VulnerabilityChangeView:
    return VulnerabilityChangeView(
        ecosystem=change.ecosystem,
        package=change.package,
        vulnerability_id=change.vulnerability_id,
        aliases=list(change.aliases),
        severity="LOW" if change.severity == "NONE" else change.severity,
        state=change.state,
        finding_ids=list(change.finding_ids),
    )
