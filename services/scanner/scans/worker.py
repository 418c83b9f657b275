"""The scan worker: runs one ``scan`` job (a queued scan); ``rematch`` jobs are in
``rematch.py``.

Every event it publishes has a deterministic id (``ids.scan_event_id``),
so a job run again after a crash re-publishes the same events, which JetStream drops within
its duplicate window and the projection ignores anyway (terminal states are final, findings
are keyed by id). Before acting it reads the read model: a scan that is finished, cancelled
or deleted is left alone, and between stages a cancel stops the work.

Order of a scan's events: ``scan.started``, a few ``scan.progressed``, ``scan.completed`` as
soon as the result is stored (a release decision needs nothing more), then the ``finding.*``
events of the differences to the previous snapshot, and ``scan.findings-announced`` last:
the event that finishes the job comes after everything else the job says. The announcements
are derived from the result blob alone, so a worker that takes a job over after a crash
between ``scan.completed`` and ``scan.findings-announced`` announces exactly the same events.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass

import asyncpg

from contracts.envelope import EventPayload
from contracts.events.scans import (
    ScanCompleted,
    ScanFailed,
    ScanFindingsAnnounced,
    ScanProgressed,
    ScanStarted,
)
from services.scanner.domain.errors import IngestError, LockfileError, MalformedDocument
from services.scanner.domain.licenses import LicenseClassifier
from services.scanner.domain.limits import TooLarge
from services.scanner.scans import store
from services.scanner.scans.analysis import (
    build_findings,
    cyclonedx_for,
    matchable,
    snapshot_diff,
    summarize,
)
from services.scanner.scans.announce import (
    SYSTEM,
    publish_many,
    scan_announcements,
)
from services.scanner.scans.ids import scan_event_id
from services.scanner.scans.ingest import Parsed
from services.scanner.scans.lifecycle import TERMINAL
from services.scanner.scans.reading import decode_read, read, read_encoded
from services.scanner.scans.result import (
    ComponentRecord,
    Resolution,
    ScanResult,
    decode_result,
    encode_result,
)
from services.scanner.scans.sources import (
    LicenseVerdicts,
    advisory_ratings,
    epss_scores,
    license_policy_of,
    vulndb_of,
)
from shared import jobs
from shared.blobs import BlobStore
from shared.bounded import BoundedRunner, BoundExceeded, Bounds
from shared.bus import Bus
from shared.errors import NotFound
from shared.logging import get_logger
from shared.service import Runtime
from shared.settings import Settings
from shared.storable import find_unstorable, storable_text

log = get_logger(__name__)


class _Stop(Exception):
    """The scan was cancelled or deleted meanwhile: stop quietly."""


@dataclass
class ScanWorker:
    runtime: Runtime
    blobs: BlobStore
    # Where uploads are read (``reader_for``); None: in a thread of this process.
    reader: BoundedRunner | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    @property
    def bus(self) -> Bus:
        return self.runtime.bus

    # ---- scan jobs ------------------------------------------------------------------------
    async def run_scan(self, job: jobs.Job) -> None:
        scan = await store.scan_row(self.pool, str(job.payload["scan_id"]))
        if scan is None or scan.deleted or scan.status in ("failed", "cancelled"):
            return
        if scan.status == "succeeded":  # taken over after scan.completed: announce
            assert scan.result_digest is not None
            await self._announce(scan, decode_result(await self.blobs.get(scan.result_digest)))
            return
        try:
            await self._scan(scan)
        except _Stop:
            log.info("scan_stopped", scan_id=scan.id)

    async def give_up_scan(self, job: jobs.Job) -> None:
        """The job crashed its worker too often: fail the scan instead of trying again (or,
        once it has succeeded, give up announcing its findings)."""
        scan = await store.scan_row(self.pool, str(job.payload["scan_id"]))
        if scan is None or scan.deleted or scan.status in ("failed", "cancelled"):
            return
        if scan.status == "succeeded":
            await self._publish_scan(
                scan,
                ScanFindingsAnnounced(scan_id=scan.id, project_id=scan.project_id, given_up=True),
                step="announced",
            )
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
        classifier = await license_policy_of(self.runtime).classifier_for(scan.project_id)
        try:
            parsed, records = await self._read(scan.kind, data, classifier)
        except IngestError as exc:
            await self._fail(scan, exc.code, exc.detail, location=exc.location)
            return
        except BoundExceeded as exc:
            log.warning("scan_read_bounded", scan_id=scan.id, limit=exc.limit, error=str(exc))
            await self._fail(scan, TooLarge.code, _bound_message(scan.kind, exc))
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
        ratings, (prior_scan, prior), triage = await asyncio.gather(
            # The group members too: an advisory without CVSS takes its aliases' rating.
            advisory_ratings(
                self.pool, sorted({x for a in advisory_ids for x in vulndb.index.group_members(a)})
            ),
            store.previous_snapshot(self.pool, scan.project_id, before_scan=scan.id),
            store.triage_memory(self.pool, scan.project_id),
        )
        members = vulndb.index.group_members
        findings = build_findings(
            scan_id=scan.id,
            components=records,
            matches=matches,
            ratings=ratings,
            members=members,
            epss=epss_scores(vulndb, {x for a in advisory_ids for x in members(a)}),
            triage=triage,
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
                Resolution(
                    finding_id=gone.id,
                    reason="not_in_new_snapshot",
                    scan_id=gone.scan_id,
                    vulnerability_id=gone.vulnerability_id,
                    package=gone.package,
                )
                for gone in resolved
            ),
            created=tuple(f.id for f in created),
            epss_threshold=threshold,
        )
        try:
            blob = storable_result(scan.kind, result)
        except IngestError as exc:
            await self._fail(scan, exc.code, exc.detail, location=exc.location)
            return
        result_digest, sbom_digest = await self._store(scan, result, blob)
        laps.lap("store")
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
                vulndb_version=vulndb.version,
                epss_as_of=vulndb.epss_as_of,
            ),
            step="completed",
        )
        laps.lap("completed")
        await self._pause()
        await self._announce(scan, result)
        laps.lap("announce")
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

    async def _read(
        self, kind: str, data: bytes, classifier: LicenseClassifier
    ) -> tuple[Parsed, list[ComponentRecord]]:
        """The upload's components, read in the bounded child process (the scanner's own
        memory and time are never at stake), or in a thread when the bounds are off."""
        now = dt.datetime.now(dt.UTC)
        if self.reader is None:
            return await asyncio.to_thread(read, kind, data, LicenseVerdicts(classifier, now=now))
        encoded = await self.reader.run(read_encoded, kind, data, classifier, now)
        return await asyncio.to_thread(decode_read, encoded)

    async def _store(self, scan: store.ScanRow, result: ScanResult, blob: bytes) -> tuple[str, str]:
        """The result blob's digest, and the SBOM's (made for a source scan)."""
        result_digest = await self.blobs.put(blob)
        if scan.kind == "sbom":
            return result_digest, scan.source_digest
        sbom = cyclonedx_for(result.components, result.dependencies)
        return result_digest, await self.blobs.put(sbom)

    async def _announce(self, scan: store.ScanRow, result: ScanResult) -> None:
        """The scan's finding.* events, then scan.findings-announced (ends the job)."""
        threshold = result.epss_threshold
        if threshold is None:
            threshold = self.runtime.settings.epss_threshold
        events = scan_announcements(result, threshold=threshold)
        await publish_many(
            self.bus,
            [(payload, scan_event_id(scan.id, step)) for payload, step in events],
            aggregate=f"scan:{scan.id}",
            correlation_id=scan.correlation_id,
            causation_id=scan.queued_event_id,
        )
        await self._publish_scan(
            scan,
            ScanFindingsAnnounced(
                scan_id=scan.id,
                project_id=scan.project_id,
                created=len(result.created),
                resolved=len(result.resolved),
                threshold_exceeded=sum(
                    1 for payload, _ in events if payload.event_type == "finding.threshold-exceeded"
                ),
            ),
            step="announced",
        )

    async def _fail(
        self, scan: store.ScanRow, code: str, message: str, *, location: str | None = None
    ) -> None:
        # The message and location may quote the document: made storable and bounded, so
        # the failure itself can always be applied.
        await self._publish_scan(
            scan,
            ScanFailed(
                scan_id=scan.id,
                project_id=scan.project_id,
                code=code,
                message=storable_text(message, max_chars=MESSAGE_MAX_CHARS),
                location=storable_text(location, max_chars=LOCATION_MAX_CHARS)
                if location is not None
                else None,
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
        await self._pause()

    async def _pause(self) -> None:
        """GATEHOUSE_SCAN_STAGE_PAUSE_SECONDS after each stage (tests, diagnostics)."""
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


class _Laps:
    """Seconds spent per step of a scan (repeated steps add up), for the completion log."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._last, 4)
        self._last = now


# Bounds of a failure's text (the location of a component 32 levels deep is ~1 KB).
MESSAGE_MAX_CHARS, LOCATION_MAX_CHARS = 2000, 2000


def storable_result(kind: str, result: ScanResult) -> bytes:
    """The result blob, or the ``IngestError`` that fails the scan when a value in it could
    not be stored by the projection that reads it (the readers refuse NUL characters where
    they can name the document's location; this catches whatever else would slip through,
    e.g. from a reader added later). Cheap: one search of the encoded bytes, and the walk
    that finds the path only when the search hits."""
    try:
        blob: bytes | None = encode_result(result)
    except UnicodeEncodeError:  # a lone surrogate
        blob = None
    if blob is not None and b"\\u0000" not in blob:
        return blob
    problem = find_unstorable(result, path="result")
    if problem is None:  # the text "\\u0000" itself, escaped: harmless
        assert blob is not None
        return blob
    error = MalformedDocument if kind == "sbom" else LockfileError
    raise error(
        f"a value read from the upload cannot be stored: {problem.path} {problem.reason}",
        location=problem.path,
    )


def _bound_message(kind: str, exc: BoundExceeded) -> str:
    what = "the SBOM" if kind == "sbom" else "the source archive"
    setting = (
        "GATEHOUSE_SCAN_READ_SECONDS" if exc.limit == "time" else "GATEHOUSE_SCAN_READ_MEMORY_BYTES"
    )
    return f"reading {what} {exc}; the scanner's limit is {setting}"


def reader_for(settings: Settings) -> BoundedRunner | None:
    """The bounded child process scans read their uploads in (None: bounds off)."""
    if not settings.scan_read_memory_bytes:
        return None
    bounds = Bounds(
        memory_bytes=settings.scan_read_memory_bytes, seconds=settings.scan_read_seconds
    )
    return BoundedRunner(bounds, preload=(read_encoded.__module__,))


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
