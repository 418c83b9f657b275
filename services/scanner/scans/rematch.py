"""Re-match jobs: a project's latest snapshot matched again after a vulnerability-database
import (the scans projection enqueues one per project the import may change).

The job waits until the in-memory database holds the import, matches the snapshot's
components, and announces the differences to the snapshot's open findings:
``finding.created`` (``cause: rematch``), ``finding.resolved`` (``advisory_withdrawn`` when
every advisory of the finding is withdrawn, else ``no_longer_in_range``),
``finding.threshold-exceeded``, then ``scan.rematched`` last, carrying a blob of the
changes that the projection applies (and that finishes the job). Event ids are UUIDv5 of the
job and the step: a re-run publishes the same ids.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from contracts.envelope import EventPayload
from contracts.events.scans import FindingResolved, ScanRematched
from services.scanner.scans import store
from services.scanner.scans.analysis import PriorFinding, build_findings, matchable
from services.scanner.scans.announce import (
    SYSTEM,
    finding_created,
    publish_many,
    threshold_exceeded,
)
from services.scanner.scans.ids import job_event_id
from services.scanner.scans.result import FindingRecord, RematchResult, Resolution, encode_rematch
from services.scanner.scans.sources import (
    VulnDbView,
    advisory_ratings,
    epss_scores,
    vulndb_of,
    withdrawn_advisories,
)
from shared import jobs
from shared.blobs import BlobStore
from shared.errors import UpstreamTimeout
from shared.logging import get_logger
from shared.service import Runtime

log = get_logger(__name__)


@dataclass
class RematchWorker:
    runtime: Runtime
    blobs: BlobStore

    @property
    def pool(self) -> asyncpg.Pool:
        return self.runtime.pool

    async def run(self, job: jobs.Job) -> None:
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
        rerated: list[FindingRecord] = []
        latest, _ = await store.previous_snapshot(self.pool, project_id, before_scan="")
        if latest == scan_id:  # a newer snapshot was matched against the new database anyway
            created, resolved, rerated = await self._differences(scan_id, project_id, vulndb, job)
        events: list[tuple[EventPayload, str]] = [
            (
                finding_created(f, scan_id=scan_id, project_id=project_id, cause="rematch"),
                f"created:{f.id}",
            )
            for f in created
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
            (event, f"threshold:{event.finding_id}")
            for event in threshold_exceeded(
                created,
                scan_id=scan_id,
                project_id=project_id,
                threshold=self.runtime.settings.epss_threshold,
            )
        ]
        await publish_many(
            self.runtime.bus,
            [(p, job_event_id(job.id, step)) for p, step in events],
            aggregate=f"scan:{scan_id}",
        )
        digest = None
        if created or resolved or rerated:
            digest = await self.blobs.put(
                encode_rematch(
                    RematchResult(
                        scan_id=scan_id,
                        job_id=job.id,
                        created=tuple(created),
                        resolved=tuple(
                            Resolution(
                                finding_id=gone.id,
                                reason=reason,
                                scan_id=scan_id,
                                vulnerability_id=gone.vulnerability_id,
                                package=gone.package,
                            )
                            for gone, reason in resolved
                        ),
                        rerated=tuple(rerated),
                    )
                )
            )
        await self._rematched(
            job,
            created=len(created),
            resolved=len(resolved),
            rerated=len(rerated),
            result_digest=digest,
            vulndb=vulndb,
        )

    async def give_up(self, job: jobs.Job) -> None:
        """Finish a re-match that keeps crashing its worker, announcing nothing changed."""
        log.error("rematch_given_up", job_id=job.id, attempts=job.attempts - 1)
        await self._rematched(job, created=0, resolved=0)

    async def _rematched(
        self,
        job: jobs.Job,
        *,
        created: int,
        resolved: int,
        rerated: int = 0,
        result_digest: str | None = None,
        vulndb: VulnDbView | None = None,
    ) -> None:
        """``vulndb``: the database matched against (None when the job gave up: the scan
        keeps naming the one it had)."""
        payload = job.payload
        await self.runtime.bus.publish(
            ScanRematched(
                scan_id=str(payload["scan_id"]),
                project_id=str(payload["project_id"]),
                job_id=job.id,
                import_id=str(payload["import_id"]),
                created=created,
                resolved=resolved,
                rerated=rerated,
                result_digest=result_digest,
                vulndb_advisories=len(vulndb.index) if vulndb is not None else 0,
                vulndb_version=vulndb.version if vulndb is not None else 0,
            ),
            aggregate=f"scan:{payload['scan_id']}",
            actor=SYSTEM,
            event_id=job_event_id(job.id, "rematched"),
        )

    async def _differences(
        self, scan_id: str, project_id: str, db: VulnDbView, job: jobs.Job
    ) -> tuple[list[FindingRecord], list[tuple[PriorFinding, str]], list[FindingRecord]]:
        records = await store.snapshot_components(self.pool, scan_id)
        matches = [m for m in db.index.match(matchable(records)) if m.verdict.status == "affected"]
        advisory_ids = sorted({a for m in matches for a in m.advisory_ids})
        members = db.index.group_members
        open_now = await store.open_findings(self.pool, scan_id)
        open_ids = {f.id for f in open_now if f.affected}
        open_severity = {f.id: f.severity for f in open_now if f.affected}
        findings = build_findings(
            scan_id=scan_id,
            components=records,
            matches=matches,
            ratings=await advisory_ratings(
                self.pool, sorted({x for a in advisory_ids for x in members(a)})
            ),
            members=members,
            epss=epss_scores(db, {x for a in advisory_ids for x in members(a)}),
            triage=await store.triage_memory(self.pool, project_id),
            prior={},
            now=dt.datetime.fromisoformat(str(job.payload["import_at"])),
        )
        matched_ids = {f.id for f in findings}
        created = [f for f in findings if f.id not in open_ids]
        rerated = [f for f in findings if open_severity.get(f.id, f.severity) != f.severity]
        gone = [f for f in open_now if f.affected and f.id not in matched_ids]
        by_finding = await _advisories_by_finding(self.pool, [f.id for f in gone])
        withdrawn = await withdrawn_advisories(
            self.pool, sorted({a for ids in by_finding.values() for a in ids})
        )
        resolved = [
            (
                f,
                "advisory_withdrawn"
                if by_finding.get(f.id) and set(by_finding[f.id]) <= withdrawn
                else "no_longer_in_range",
            )
            for f in gone
        ]
        return created, resolved, rerated


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
