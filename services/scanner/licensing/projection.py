"""``policy.changed``, ``license.*`` and the scan events licensing needs → its read model.

* ``policy.changed`` (kind ``license``) stores the new version of the org policy or of a
  project's override; waiver events grant, revoke and expire waivers. Each change enqueues a
  ``relicense`` job for the latest snapshot of every project it affects (every project for
  the org policy), in the same transaction: the job evaluates that snapshot's licenses
  again, off the request path.
* ``scan.queued`` / ``scan.completed`` / ``scan.deleted`` keep the latest snapshot of each
  project and the policy versions its categories came from. A scan reads the policy after
  it was queued (the scan-time source waits for this projection first), so when the policy
  or a waiver of the project changed after ``scan.queued`` the scan may have used the older
  one: its snapshot is evaluated again too (``scan_raced_change``).
* ``scan.relicensed`` finishes its job and records the versions the categories now come
  from (the scans projection applies the categories themselves).

Job ids are derived from the causing event, so a replay rebuilds the same jobs and finishes
them with the same ``scan.relicensed``: a replay never re-runs finished work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from contracts.envelope import Event
from contracts.events.licensing import (
    LicenseWaiverExpired,
    LicenseWaiverGranted,
    LicenseWaiverRevoked,
    PolicyChanged,
    RelicenseCause,
    ScanRelicensed,
)
from contracts.events.scans import ScanCompleted, ScanDeleted, ScanQueued
from services.scanner.licensing import store
from shared import jobs
from shared.logging import get_logger

log = get_logger(__name__)

SUBJECTS = (
    "policy.changed",
    "license.>",
    "scan.queued",
    "scan.completed",
    "scan.deleted",
    "scan.relicensed",
)
RELICENSE_JOB = "relicense"


def relicense_job_id(cause_event_id: str, project_id: str) -> str:
    return f"relicense:{cause_event_id}:{project_id}"


@dataclass(eq=False)
class LicensingProjection:
    name: str = "licensing"
    schema: str = "scanner"
    subjects: Sequence[str] | None = SUBJECTS
    tables: Sequence[str] = field(default=store.PROJECTION_TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            await self._apply(conn, event)

    async def _apply(self, conn: asyncpg.Connection, event: Event) -> None:
        payload = event.payload
        at, seq, actor = event.envelope.occurred_at, event.sequence, event.envelope.actor
        if isinstance(payload, PolicyChanged):
            if payload.kind != "license":
                return
            if await store.apply_policy_changed(conn, payload, at=at, actor=actor, seq=seq):
                project = payload.project_id if payload.scope == "project" else None
                await self._relicense(conn, event, "policy_changed", project_id=project)
            return
        if isinstance(payload, LicenseWaiverGranted):
            if await store.insert_waiver(conn, payload, at=at, actor=actor, seq=seq):
                await self._relicense(conn, event, "waiver_granted", project_id=payload.project_id)
            return
        if isinstance(payload, LicenseWaiverRevoked):
            if await store.revoke_waiver(conn, payload, at=at, actor=actor, seq=seq):
                await self._relicense(conn, event, "waiver_revoked", project_id=payload.project_id)
            return
        if isinstance(payload, LicenseWaiverExpired):
            if await store.expire_waiver(conn, payload, seq=seq):
                await self._relicense(conn, event, "waiver_expired", project_id=payload.project_id)
            return
        if isinstance(payload, ScanQueued):
            await store.scan_queued(conn, payload.scan_id, payload.project_id, seq=seq)
            return
        if isinstance(payload, ScanCompleted):
            await self._completed(conn, event, payload, at=at)
            return
        if isinstance(payload, ScanDeleted):
            await store.scan_deleted(conn, payload.scan_id)
            for job_id in await store.open_jobs_of_scan(conn, payload.scan_id):
                await jobs.finish(conn, store.JOBS_TABLE, job_id, sequence=seq)
            return
        if isinstance(payload, ScanRelicensed):
            await jobs.finish(conn, store.JOBS_TABLE, payload.job_id, sequence=seq)
            if payload.result_digest is not None and not payload.given_up:
                await store.record_relicensed(conn, payload, seq=seq)

    async def _completed(
        self, conn: asyncpg.Connection, event: Event, payload: ScanCompleted, *, at: dt.datetime
    ) -> None:
        # The policy in force at this point of the stream: what the scan should have used.
        context = await store.current_context(conn, payload.project_id, now=at)
        queued = await store.scan_completed(
            conn, payload.scan_id, payload.project_id, context=context, seq=event.sequence
        )
        if queued < 0:
            return  # a repeat
        if await store.last_change_seq(conn, payload.project_id) > queued:
            await self._enqueue(
                conn,
                job_id=relicense_job_id(event.id, payload.project_id),
                scan_id=payload.scan_id,
                project_id=payload.project_id,
                cause="scan_raced_change",
                sequence=event.sequence,
            )

    async def _relicense(
        self,
        conn: asyncpg.Connection,
        event: Event,
        cause: RelicenseCause,
        *,
        project_id: str | None,
    ) -> None:
        """A job for the latest snapshot of ``project_id`` (every project when None)."""
        for project, scan_id in await store.latest_snapshots(conn, project_id=project_id):
            await self._enqueue(
                conn,
                job_id=relicense_job_id(event.id, project),
                scan_id=scan_id,
                project_id=project,
                cause=cause,
                sequence=event.sequence,
            )

    async def _enqueue(
        self,
        conn: asyncpg.Connection,
        *,
        job_id: str,
        scan_id: str,
        project_id: str,
        cause: RelicenseCause,
        sequence: int,
    ) -> None:
        await jobs.enqueue(
            conn,
            store.JOBS_TABLE,
            job_id=job_id,
            kind=RELICENSE_JOB,
            payload={"scan_id": scan_id, "project_id": project_id, "cause": cause},
            sequence=sequence,
        )
