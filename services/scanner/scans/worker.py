"""The scan worker: runs one ``scan`` job (a queued scan) or one ``rematch`` job (a project's
latest snapshot after a vulnerability-database import).

Every event it publishes has a deterministic id (``ids.scan_event_id`` / ``job_event_id``),
so a job run again after a crash re-publishes the same events, which JetStream drops within
its duplicate window and the projection ignores anyway (terminal states are final, findings
are keyed by id). Before acting it reads the read model: a scan that is finished, cancelled
or deleted is left alone, and between stages a cancel stops the work.

Order of a scan's events: ``scan.started``, a few ``scan.progressed``, the ``finding.*``
events of the differences to the previous snapshot, and ``scan.completed`` last, so that the
event finishing the job comes after everything else the job says.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import asyncpg

from contracts.envelope import EventPayload
from contracts.events.scans import (
    FindingCreated,
    FindingResolved,
    FindingThresholdExceeded,
    ScanCompleted,
    ScanFailed,
    ScanProgressed,
    ScanRematched,
    ScanStarted,
)
from services.scanner.domain.errors import IngestError
from services.scanner.scans import store
from services.scanner.scans.analysis import (
    PriorFinding,
    build_findings,
    component_records,
    cyclonedx_for,
    is_effective,
    matchable,
    snapshot_diff,
    summarize,
)
from services.scanner.scans.ids import job_event_id, scan_event_id
from services.scanner.scans.ingest import Parsed, read_upload
from services.scanner.scans.lifecycle import TERMINAL
from services.scanner.scans.result import (
    ComponentRecord,
    FindingRecord,
    RematchResult,
    Resolution,
    ScanResult,
    encode_rematch,
    encode_result,
)
from services.scanner.scans.sources import (
    LicenseVerdicts,
    VulnDbView,
    advisory_ratings,
    epss_scores,
    license_policy_of,
    vulndb_of,
    withdrawn_advisories,
)
from shared import jobs
from shared.blobs import BlobStore
from shared.bus import Bus
from shared.errors import NotFound, UpstreamTimeout
from shared.logging import get_logger
from shared.service import Runtime

log = get_logger(__name__)

# Events published at once when a scan announces many findings (acks are awaited per chunk).
PUBLISH_CHUNK = 256
SYSTEM = "system"


class _Stop(Exception):
    """The scan was cancelled or deleted meanwhile: stop quietly."""


@dataclass
class ScanWorker:
    runtime: Runtime
    blobs: BlobStore

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    @property
    def bus(self) -> Bus:
        return self.runtime.bus

    # ---- scan jobs ------------------------------------------------------------------------
    async def run_scan(self, job: jobs.Job) -> None:
        scan = await store.scan_row(self.pool, str(job.payload["scan_id"]))
        if scan is None or scan.deleted or scan.status in TERMINAL:
            return
        try:
            await self._scan(scan)
        except _Stop:
            log.info("scan_stopped", scan_id=scan.id)

    async def give_up_scan(self, job: jobs.Job) -> None:
        """The job crashed its worker too often: fail the scan instead of trying again."""
        scan = await store.scan_row(self.pool, str(job.payload["scan_id"]))
        if scan is None or scan.deleted or scan.status in TERMINAL:
            return
        await self._publish_scan(
            scan,
            ScanFailed(
                scan_id=scan.id,
                project_id=scan.project_id,
                code="scan_crashed",
                message=f"the scan stopped its worker {job.attempts - 1} times; not retried",
            ),
            step="failed",
        )

    async def _scan(self, scan: store.ScanRow) -> None:
        settings = self.runtime.settings
        laps = _Laps()
        if scan.status == "queued":
            await self._publish_scan(
                scan, ScanStarted(scan_id=scan.id, project_id=scan.project_id), step="started"
            )
        try:
            data = await self.blobs.get(scan.source_digest)
        except NotFound:
            await self._fail(scan, "source_missing", "the uploaded file is no longer stored")
            return
        laps.lap("source")
        now = scan.created_at
        classify = LicenseVerdicts(
            await license_policy_of(self.runtime).classifier_for(scan.project_id),
            now=dt.datetime.now(dt.UTC),
        )
        try:
            parsed, records = await asyncio.to_thread(_read, scan.kind, data, classify)
        except IngestError as exc:
            await self._fail(scan, exc.code, exc.detail, location=exc.location)
            return
        del data
        laps.lap("read")
        count = len(records)
        await self._progress(
            scan,
            "parse",
            count,
            count,
            f"read {count} components ({_describe(parsed)})" + _notes(parsed),
        )

        vulndb = vulndb_of(self.runtime)
        await vulndb.wait_loaded()
        # On the event loop's thread: the index is only ever changed there, between awaits.
        laps.lap("progress")
        matches = vulndb.index.match(matchable(records))
        laps.lap("match")
        affected = sum(1 for m in matches if m.verdict.status == "affected")
        await self._progress(
            scan,
            "match",
            count,
            count,
            f"matched against {len(vulndb.index)} advisories: {affected} affected "
            f"(component, vulnerability) pairs, {len(matches) - affected} not evaluated",
        )

        laps.lap("progress")
        advisory_ids = sorted({a for m in matches for a in m.advisory_ids})
        ratings = await advisory_ratings(self.pool, advisory_ids)
        members = vulndb.index.group_members
        epss = epss_scores(vulndb, {x for a in advisory_ids for x in members(a)})
        prior_scan, prior = await store.previous_snapshot(
            self.pool, scan.project_id, before_scan=scan.id
        )
        findings = build_findings(
            scan_id=scan.id,
            components=records,
            matches=matches,
            ratings=ratings,
            members=members,
            epss=epss,
            triage=await store.triage_memory(self.pool, scan.project_id),
            prior={(p.package, p.vulnerability_id): p for p in prior},
            now=now,
        )
        threshold = settings.epss_threshold
        summary = summarize(records, findings, threshold=threshold)
        laps.lap("evaluate")
        await self._progress(
            scan,
            "evaluate",
            len(findings),
            len(findings),
            f"{summary.finding_count} effective findings, {summary.blocking_finding_total} "
            f"blocking, {summary.forbidden_license_count} forbidden licenses",
        )

        laps.lap("progress")
        created, resolved = snapshot_diff(findings, prior)
        result = ScanResult(
            scan_id=scan.id,
            project_id=scan.project_id,
            format=parsed.format,
            spec_version=parsed.spec_version,
            components=tuple(records),
            dependencies=parsed.dependencies,
            findings=tuple(findings),
            warnings=parsed.warnings,
            lockfiles=parsed.lockfiles,
            resolved=tuple(
                Resolution(finding_id=gone.id, reason="not_in_new_snapshot") for gone in resolved
            ),
        )
        result_digest = await self.blobs.put(encode_result(result))
        if scan.kind == "sbom":
            sbom_digest = scan.source_digest
        else:
            sbom_digest = await self.blobs.put(cyclonedx_for(records, parsed.dependencies))
        await self._check_active(scan.id)
        laps.lap("store")

        events: list[tuple[EventPayload, str]] = []
        for finding in created:
            events.append((_created(finding, scan.id, scan.project_id, "scan"), finding.id))
        for gone in resolved:
            events.append(
                (
                    FindingResolved(
                        finding_id=gone.id,
                        scan_id=gone.scan_id,
                        project_id=scan.project_id,
                        vulnerability_id=gone.vulnerability_id,
                        package=gone.package,
                        reason="not_in_new_snapshot",
                        resolved_by_scan_id=scan.id,
                    ),
                    gone.id,
                )
            )
        events += _threshold_events(created, scan.id, scan.project_id, threshold)
        await self._publish_many(
            [
                (payload, scan_event_id(scan.id, f"{payload.event_type}:{key}"))
                for payload, key in events
            ],
            aggregate=f"scan:{scan.id}",
            correlation_id=scan.correlation_id,
            causation_id=scan.queued_event_id,
        )
        laps.lap("finding_events")
        await self._check_active(scan.id)
        await self._publish_scan(
            scan,
            ScanCompleted(
                scan_id=scan.id,
                project_id=scan.project_id,
                kind=scan.kind,  # type: ignore[arg-type]
                repo=scan.repo,
                commit=scan.commit,
                label=scan.label,
                sbom_digest=sbom_digest,
                result_digest=result_digest,
                format=parsed.format,
                spec_version=parsed.spec_version,
                component_count=summary.component_count,
                finding_count=summary.finding_count,
                severity_counts=summary.severity_counts,
                highest_epss=summary.highest_epss,
                epss_threshold=threshold,
                epss_over_threshold_count=summary.epss_over_threshold_count,
                forbidden_license_count=summary.forbidden_license_count,
                blocking_finding_ids=summary.blocking_finding_ids,
                blocking_finding_total=summary.blocking_finding_total,
                not_evaluated_count=summary.not_evaluated_count,
                warning_count=len(parsed.warnings),
                vulndb_advisories=len(vulndb.index),
                epss_as_of=vulndb.epss_as_of,
            ),
            step="completed",
        )
        laps.lap("completed")
        log.info(
            "scan_completed",
            scan_id=scan.id,
            components=count,
            findings=len(findings),
            previous=prior_scan,
            created=len(created),
            resolved=len(resolved),
            seconds=laps.seconds,
        )

    async def _fail(
        self, scan: store.ScanRow, code: str, message: str, *, location: str | None = None
    ) -> None:
        await self._publish_scan(
            scan,
            ScanFailed(
                scan_id=scan.id,
                project_id=scan.project_id,
                code=code,
                message=message,
                location=location,
            ),
            step="failed",
        )

    async def _progress(
        self, scan: store.ScanRow, stage: str, done: int, total: int, message: str
    ) -> None:
        await self._check_active(scan.id)
        await self._publish_scan(
            scan,
            ScanProgressed(
                scan_id=scan.id,
                project_id=scan.project_id,
                stage=stage,  # type: ignore[arg-type]
                done=done,
                total=total,
                message=message,
            ),
            step=f"progress:{stage}",
        )
        pause = self.runtime.settings.scan_stage_pause_seconds
        if pause:
            await asyncio.sleep(pause)

    async def _check_active(self, scan_id: str) -> None:
        status = await self.pool.fetchrow(
            "SELECT status, deleted_at IS NOT NULL AS deleted FROM scanner.scans WHERE id = $1",
            scan_id,
        )
        if status is None or status["deleted"] or status["status"] in TERMINAL:
            raise _Stop

    async def _publish_scan(self, scan: store.ScanRow, payload: EventPayload, *, step: str) -> None:
        await self.bus.publish(
            payload,
            aggregate=f"scan:{scan.id}",
            actor=SYSTEM,
            correlation_id=scan.correlation_id,
            causation_id=scan.queued_event_id,
            event_id=scan_event_id(scan.id, step),
        )

    async def _publish_many(
        self,
        events: Sequence[tuple[EventPayload, str]],
        *,
        aggregate: str,
        correlation_id: str | None,
        causation_id: str | None,
    ) -> None:
        """Publish with up to PUBLISH_CHUNK acks outstanding (their relative order is free).

        The cyclic collector is paused meanwhile: thousands of publishes allocate futures by
        the thousand, and each collection would walk the scan's live components and findings.
        """
        with _gc_paused():
            for start in range(0, len(events), PUBLISH_CHUNK):
                await asyncio.gather(
                    *(
                        self.bus.publish(
                            payload,
                            aggregate=aggregate,
                            actor=SYSTEM,
                            correlation_id=correlation_id,
                            causation_id=causation_id,
                            event_id=event_id,
                        )
                        for payload, event_id in events[start : start + PUBLISH_CHUNK]
                    )
                )

    # ---- re-match jobs ----------------------------------------------------------------------
    async def run_rematch(self, job: jobs.Job) -> None:
        payload = job.payload
        scan_id, project_id = str(payload["scan_id"]), str(payload["project_id"])
        import_id, import_sequence = str(payload["import_id"]), int(payload["import_sequence"])
        vulndb = vulndb_of(self.runtime)
        try:
            await vulndb.wait_for(
                import_sequence, timeout=self.runtime.settings.rpc_timeout_seconds
            )
        except TimeoutError:
            raise UpstreamTimeout(
                f"the vulnerability database has not loaded import {import_id} yet"
            ) from None
        created: list[FindingRecord] = []
        resolved: list[tuple[PriorFinding, str]] = []
        latest, _ = await store.previous_snapshot(self.pool, project_id, before_scan="")
        if latest == scan_id:  # a newer snapshot was matched against the new database anyway
            created, resolved = await self._rematch(scan_id, project_id, vulndb, job)
        events: list[tuple[EventPayload, str]] = [
            (_created(f, scan_id, project_id, "rematch"), f"created:{f.id}") for f in created
        ]
        events += [
            (
                FindingResolved(
                    finding_id=gone.id,
                    scan_id=scan_id,
                    project_id=project_id,
                    vulnerability_id=gone.vulnerability_id,
                    package=gone.package,
                    reason=reason,  # type: ignore[arg-type]
                ),
                f"resolved:{gone.id}",
            )
            for gone, reason in resolved
        ]
        events += [
            (payload_, f"threshold:{key}")
            for payload_, key in _threshold_events(
                created, scan_id, project_id, self.runtime.settings.epss_threshold
            )
        ]
        aggregate = f"scan:{scan_id}"
        await self._publish_many(
            [(p, job_event_id(job.id, step)) for p, step in events],
            aggregate=aggregate,
            correlation_id=None,
            causation_id=None,
        )
        digest = None
        if created or resolved:
            digest = await self.blobs.put(
                encode_rematch(
                    RematchResult(
                        scan_id=scan_id,
                        job_id=job.id,
                        created=tuple(created),
                        resolved=tuple(
                            Resolution(finding_id=gone.id, reason=reason)
                            for gone, reason in resolved
                        ),
                    )
                )
            )
        await self._rematched(
            job, created=len(created), resolved=len(resolved), result_digest=digest
        )

    async def give_up_rematch(self, job: jobs.Job) -> None:
        """Finish a re-match that keeps crashing its worker, announcing nothing changed."""
        log.error("rematch_given_up", job_id=job.id, attempts=job.attempts - 1)
        await self._rematched(job, created=0, resolved=0)

    async def _rematched(
        self, job: jobs.Job, *, created: int, resolved: int, result_digest: str | None = None
    ) -> None:
        payload = job.payload
        await self.bus.publish(
            ScanRematched(
                scan_id=str(payload["scan_id"]),
                project_id=str(payload["project_id"]),
                job_id=job.id,
                import_id=str(payload["import_id"]),
                created=created,
                resolved=resolved,
                result_digest=result_digest,
            ),
            aggregate=f"scan:{payload['scan_id']}",
            actor=SYSTEM,
            event_id=job_event_id(job.id, "rematched"),
        )

    async def _rematch(
        self, scan_id: str, project_id: str, db: VulnDbView, job: jobs.Job
    ) -> tuple[list[FindingRecord], list[tuple[PriorFinding, str]]]:
        records = await store.snapshot_components(self.pool, scan_id)
        matches = [m for m in db.index.match(matchable(records)) if m.verdict.status == "affected"]
        advisory_ids = sorted({a for m in matches for a in m.advisory_ids})
        members = db.index.group_members
        open_now = await store.open_findings(self.pool, scan_id)
        open_ids = {f.id for f in open_now if f.affected}
        at = dt.datetime.fromisoformat(str(job.payload["import_at"]))
        findings = build_findings(
            scan_id=scan_id,
            components=records,
            matches=matches,
            ratings=await advisory_ratings(self.pool, advisory_ids),
            members=members,
            epss=epss_scores(db, {x for a in advisory_ids for x in members(a)}),
            triage=await store.triage_memory(self.pool, project_id),
            prior={},
            now=at,
        )
        matched_ids = {f.id for f in findings}
        created = [f for f in findings if f.id not in open_ids]
        gone = [f for f in open_now if f.affected and f.id not in matched_ids]
        withdrawn = await withdrawn_advisories(
            self.pool, await _advisories_of(self.pool, [f.id for f in gone])
        )
        by_id = await _advisories_by_finding(self.pool, [f.id for f in gone])
        resolved = [
            (
                f,
                "advisory_withdrawn"
                if by_id.get(f.id) and set(by_id[f.id]) <= withdrawn
                else "no_longer_in_range",
            )
            for f in gone
        ]
        return created, resolved


class _Laps:
    """Seconds spent per step of a scan (repeated steps add up), for the completion log."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._last, 4)
        self._last = now


def _read(
    kind: str, data: bytes, classify: LicenseVerdicts
) -> tuple[Parsed, list[ComponentRecord]]:
    # Reading allocates hundreds of thousands of small acyclic objects; the cyclic collector's
    # passes over them would cost more than the read (as in AdvisoryIndex.upsert_many).
    with _gc_paused():
        parsed = read_upload(kind, data)
        return parsed, component_records(parsed.components, classify=classify)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic collector (process-wide, for a fraction of a second)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _describe(parsed: Parsed) -> str:
    if parsed.lockfiles:
        read = sum(1 for note in parsed.lockfiles if note.code is None)
        return f"{read} lockfiles"
    return f"{parsed.format} {parsed.spec_version}"


# Warnings and unreadable lockfiles named in the parse log line (all are in the result blob).
NOTES_IN_LOG = 5


def _notes(parsed: Parsed) -> str:
    """What the readers kept going past, with where: for the scan's log."""
    notes = [f"{w.code} at {w.location}" if w.location else w.code for w in parsed.warnings] + [
        f"{n.path}: {n.code}" + (f" at {n.location}" if n.location else "")
        for n in parsed.lockfiles
        if n.code is not None
    ]
    if not notes:
        return ""
    more = f", and {len(notes) - NOTES_IN_LOG} more" if len(notes) > NOTES_IN_LOG else ""
    return f"; {len(notes)} skipped or noted: {'; '.join(notes[:NOTES_IN_LOG])}{more}"


def _created(finding: FindingRecord, scan_id: str, project_id: str, cause: str) -> FindingCreated:
    return FindingCreated(
        finding_id=finding.id,
        scan_id=scan_id,
        project_id=project_id,
        component_ref=finding.component_ref,
        component_name=finding.component_name,
        purl=finding.purl,
        package=finding.package,
        version=finding.component_version,
        ecosystem=finding.ecosystem,
        vulnerability_id=finding.vulnerability_id,
        advisory_ids=list(finding.advisory_ids),
        aliases=list(finding.aliases),
        severity=finding.severity,  # type: ignore[arg-type]
        cvss_score=finding.cvss_score,
        epss=finding.epss,
        epss_percentile=finding.epss_percentile,
        state=finding.state,  # type: ignore[arg-type]
        justification=finding.justification,
        discovered_at=finding.discovered_at,
        cause=cause,  # type: ignore[arg-type]
    )


def _threshold_events(
    created: Iterable[FindingRecord], scan_id: str, project_id: str, threshold: float
) -> list[tuple[EventPayload, str]]:
    return [
        (
            FindingThresholdExceeded(
                finding_id=f.id,
                scan_id=scan_id,
                project_id=project_id,
                vulnerability_id=f.vulnerability_id,
                epss=f.epss,
                threshold=threshold,
            ),
            f.id,
        )
        for f in created
        if is_effective(f) and f.epss is not None and f.epss >= threshold
    ]


async def _advisories_of(pool: asyncpg.Pool, finding_ids: Sequence[str]) -> list[str]:
    found = await _advisories_by_finding(pool, finding_ids)
    return sorted({a for ids in found.values() for a in ids})


async def _advisories_by_finding(
    pool: asyncpg.Pool, finding_ids: Sequence[str]
) -> dict[str, list[str]]:
    if not finding_ids:
        return {}
    rows = await pool.fetch(
        "SELECT id, advisory_ids FROM scanner.findings WHERE id = ANY($1::text[])",
        list(finding_ids),
    )
    return {row["id"]: list(row["advisory_ids"]) for row in rows}
