"""``scan.*`` and ``finding.*`` (and ``vulndb.updated``) → the scans read model.

* ``scan.queued`` creates the scan and its job; the events that end the job's work
  (``scan.findings-announced`` after a success, ``scan.failed``, ``scan.cancelled``,
  ``scan.deleted``, and ``scan.rematched`` for a re-match job) finish it, in the same
  transaction, so a replay never re-runs work whose outcome is on the stream.
* ``scan.completed`` reads the result blob it names and writes the snapshot's components
  and findings, and resolves the previous snapshot's findings it no longer has; the
  project's triage memory, as of that point of the stream, sets their state (triage carries
  forward). ``scan.rematched`` applies a re-match's blob the same way. The ``finding.created``
  / ``finding.resolved`` events announce those facts to subscribers and are not read here
  (a first scan announces thousands: reading them back would only cost time);
  ``finding.triaged`` is.
* Terminal states are final (``lifecycle.next_status``): a late or repeated event for a
  finished scan changes nothing, so redelivery and duplicates are harmless.
* ``vulndb.updated`` (OSV) enqueues a re-match job for every project whose latest snapshot
  has a package the import changed (every project's, when the import says ``rematch_all``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from contracts.envelope import Event
from contracts.events.licensing import ScanRelicensed
from contracts.events.scans import (
    FindingTriaged,
    ScanCancelled,
    ScanCompleted,
    ScanDeleted,
    ScanFailed,
    ScanFindingsAnnounced,
    ScanProgressed,
    ScanQueued,
    ScanRematched,
    ScanStarted,
)
from contracts.events.vulndb import VulnDbUpdated
from services.scanner.licensing.categories import apply_relicensed
from services.scanner.scans import store
from services.scanner.scans.ids import rematch_job_id, scan_job_id
from services.scanner.scans.lifecycle import next_status
from services.scanner.scans.result import decode_rematch, decode_result
from shared import jobs
from shared.blobs import BlobStore
from shared.errors import PermanentEventError
from shared.logging import get_logger

log = get_logger(__name__)

SUBJECTS = ("scan.>", "finding.triaged", "vulndb.updated")
SCAN_JOB = "scan"
REMATCH_JOB = "rematch"


@dataclass(eq=False)
class ScansProjection:
    blobs: BlobStore
    name: str = "scans"
    schema: str = store.SCHEMA
    subjects: Sequence[str] | None = SUBJECTS
    tables: Sequence[str] = field(default=store.PROJECTION_TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            await self._apply(conn, event)

    async def _apply(self, conn: asyncpg.Connection, event: Event) -> None:
        payload = event.payload
        at = event.envelope.occurred_at
        seq = event.sequence
        if isinstance(payload, ScanQueued):
            inserted = await store.insert_scan(
                conn,
                payload,
                at=at,
                actor=event.envelope.actor,
                correlation_id=event.envelope.correlation_id,
                event_id=event.id,
                sequence=seq,
            )
            if inserted:
                await store.log_line(
                    conn,
                    payload.scan_id,
                    sequence=seq,
                    at=at,
                    event=event.type,
                    stage=None,
                    message=f"queued: {payload.kind} {payload.format}, {payload.size} bytes",
                )
                await jobs.enqueue(
                    conn,
                    store.JOBS_TABLE,
                    job_id=scan_job_id(payload.scan_id),
                    kind=SCAN_JOB,
                    payload={"scan_id": payload.scan_id},
                    sequence=seq,
                )
            return
        if isinstance(payload, ScanDeleted):
            await store.set_deleted(
                conn, payload.scan_id, at=at, forced=payload.forced, sequence=seq
            )
            await jobs.finish(conn, store.JOBS_TABLE, scan_job_id(payload.scan_id), sequence=seq)
            return
        if isinstance(
            payload, ScanStarted | ScanProgressed | ScanCompleted | ScanFailed | ScanCancelled
        ):
            await self._lifecycle(conn, event)
            return
        if isinstance(payload, ScanFindingsAnnounced):
            await jobs.finish(conn, store.JOBS_TABLE, scan_job_id(payload.scan_id), sequence=seq)
            if await store.scan_status(conn, payload.scan_id) == ("succeeded", False):
                given_up = " (given up)" if payload.given_up else ""
                await store.log_line(
                    conn,
                    payload.scan_id,
                    sequence=seq,
                    at=at,
                    event=event.type,
                    stage="store",
                    message=f"announced{given_up}: {payload.created} new findings, "
                    f"{payload.resolved} resolved, {payload.threshold_exceeded} over the EPSS "
                    "threshold",
                )
            return
        if isinstance(payload, ScanRematched):
            await jobs.finish(conn, store.JOBS_TABLE, payload.job_id, sequence=seq)
            if payload.vulndb_advisories:
                await conn.execute(
                    "UPDATE scanner.scans SET vulndb_advisories = $2 WHERE id = $1",
                    payload.scan_id,
                    payload.vulndb_advisories,
                )
            if payload.result_digest and await _open_snapshot(conn, payload.scan_id):
                await self._rematched(conn, payload, at=at)
            if await store.scan_status(conn, payload.scan_id) is not None:
                await store.log_line(
                    conn,
                    payload.scan_id,
                    sequence=seq,
                    at=at,
                    event=event.type,
                    stage="match",
                    message=f"re-matched after vulnerability database import "
                    f"{payload.import_id}: {payload.created} new, {payload.resolved} resolved",
                )
            return
        if isinstance(payload, ScanRelicensed):
            # License categories evaluated again (services/scanner/licensing): applied here,
            # in stream order with scan.completed, since this projection owns the rows.
            await apply_relicensed(
                conn, self.blobs, payload, at=at, sequence=seq, event_type=event.type
            )
            return
        if isinstance(payload, FindingTriaged):
            await store.triage_finding(
                conn,
                finding_id=payload.finding_id,
                project_id=payload.project_id,
                package=payload.package,
                vulnerability_id=payload.vulnerability_id,
                state=payload.to_state,
                justification=payload.justification,
                detail=payload.detail,
                version=payload.version,
                at=at,
                sequence=seq,
            )
            return
        if isinstance(payload, VulnDbUpdated):
            await self._enqueue_rematches(conn, event, payload)

    async def _lifecycle(self, conn: asyncpg.Connection, event: Event) -> None:
        payload = event.payload
        assert isinstance(
            payload, ScanStarted | ScanProgressed | ScanCompleted | ScanFailed | ScanCancelled
        )
        scan_id, at, seq = payload.scan_id, event.envelope.occurred_at, event.sequence
        found = await store.scan_status(conn, scan_id)
        if found is None:
            raise PermanentEventError(f"{event.type} for unknown scan {scan_id}")
        status, deleted = found
        target = next_status(status, event.type)
        if target is None or deleted:
            log.info("scan_event_ignored", scan_id=scan_id, status=status, event_type=event.type)
            return
        if isinstance(payload, ScanStarted):
            await store.set_started(conn, scan_id, status=target, at=at, sequence=seq)
            message, stage, level = "started", None, "info"
        elif isinstance(payload, ScanProgressed):
            progress = {
                "stage": payload.stage,
                "done": payload.done,
                "total": payload.total,
                "message": payload.message,
            }
            await store.set_progress(conn, scan_id, progress=progress, sequence=seq)
            message, stage, level = payload.message, payload.stage, "info"
        elif isinstance(payload, ScanCompleted):
            await self._completed(conn, payload, at=at, sequence=seq)
            message, stage, level = (
                f"succeeded: {payload.component_count} components, {payload.finding_count} "
                f"effective findings",
                "store",
                "info",
            )
        elif isinstance(payload, ScanFailed):
            error = {"code": payload.code, "message": payload.message, "location": payload.location}
            await store.set_finished(
                conn, scan_id, status="failed", at=at, error=error, sequence=seq
            )
            where = f" (at {payload.location})" if payload.location else ""
            message, stage, level = (
                f"failed: {payload.code}: {payload.message}{where}",
                None,
                "error",
            )
        else:
            await store.set_finished(
                conn, scan_id, status="cancelled", at=at, error=None, sequence=seq
            )
            reason = f": {payload.reason}" if payload.reason else ""
            message, stage, level = f"cancelled{reason}", None, "info"
        await store.log_line(
            conn,
            scan_id,
            sequence=seq,
            at=at,
            event=event.type,
            stage=stage,
            message=message,
            level=level,
        )
        if target in ("failed", "cancelled"):
            # A success still has its findings to announce: scan.findings-announced ends it.
            await jobs.finish(conn, store.JOBS_TABLE, scan_job_id(scan_id), sequence=seq)

    async def _completed(
        self, conn: asyncpg.Connection, payload: ScanCompleted, *, at: dt.datetime, sequence: int
    ) -> None:
        result = decode_result(await self.blobs.get(payload.result_digest))
        if result.scan_id != payload.scan_id:
            raise PermanentEventError(
                f"result blob {payload.result_digest} belongs to scan {result.scan_id}"
            )
        await store.insert_components(conn, payload.scan_id, result.components)
        await store.insert_findings(
            conn,
            scan_id=payload.scan_id,
            project_id=payload.project_id,
            findings=result.findings,
            cause="scan",
        )
        await store.resolve_findings(conn, result.resolved, at=at)
        summary = {
            "component_count": payload.component_count,
            "finding_count": payload.finding_count,
            "severity_counts": {
                "CRITICAL": payload.severity_counts.CRITICAL,
                "HIGH": payload.severity_counts.HIGH,
                "MEDIUM": payload.severity_counts.MEDIUM,
                "LOW": payload.severity_counts.LOW,
                "UNKNOWN": payload.severity_counts.UNKNOWN,
            },
            "highest_epss": payload.highest_epss,
            "epss_threshold": payload.epss_threshold,
            "epss_over_threshold_count": payload.epss_over_threshold_count,
            "forbidden_license_count": payload.forbidden_license_count,
            "blocking_finding_ids": payload.blocking_finding_ids,
            "blocking_finding_total": payload.blocking_finding_total,
            "not_evaluated_count": payload.not_evaluated_count,
            "warning_count": payload.warning_count,
        }
        await store.set_succeeded(
            conn,
            payload.scan_id,
            at=at,
            sbom_digest=payload.sbom_digest,
            result_digest=payload.result_digest,
            spec_version=payload.spec_version,
            summary=summary,
            component_count=payload.component_count,
            sequence=sequence,
            vulndb_advisories=payload.vulndb_advisories,
        )

    async def _rematched(
        self, conn: asyncpg.Connection, payload: ScanRematched, *, at: dt.datetime
    ) -> None:
        assert payload.result_digest is not None
        result = decode_rematch(await self.blobs.get(payload.result_digest))
        if (result.scan_id, result.job_id) != (payload.scan_id, payload.job_id):
            raise PermanentEventError(
                f"re-match blob {payload.result_digest} belongs to job {result.job_id}"
            )
        await store.insert_findings(
            conn,
            scan_id=payload.scan_id,
            project_id=payload.project_id,
            findings=result.created,
            cause="rematch",
        )
        await store.resolve_findings(conn, result.resolved, at=at)
        await store.rerate_findings(conn, result.rerated)

    async def _enqueue_rematches(
        self, conn: asyncpg.Connection, event: Event, payload: VulnDbUpdated
    ) -> None:
        if payload.source != "osv":
            return  # EPSS scores change no match
        if not payload.rematch_all and not payload.changed_packages:
            return
        packages = (
            None
            if payload.rematch_all
            else [(p.ecosystem, p.package) for p in payload.changed_packages]
        )
        for project_id, scan_id in await store.latest_snapshots(conn, packages=packages):
            await jobs.enqueue(
                conn,
                store.JOBS_TABLE,
                job_id=rematch_job_id(payload.import_id, project_id),
                kind=REMATCH_JOB,
                payload={
                    "scan_id": scan_id,
                    "project_id": project_id,
                    "import_id": payload.import_id,
                    "import_sequence": event.sequence,
                    "import_at": event.envelope.occurred_at.isoformat(),
                },
                sequence=event.sequence,
            )


async def _open_snapshot(conn: asyncpg.Connection, scan_id: str) -> bool:
    found = await store.scan_status(conn, scan_id)
    return found is not None and found == ("succeeded", False)
