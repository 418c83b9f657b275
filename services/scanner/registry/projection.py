"""``repository.*``, ``artifact.*`` and ``block.*`` → the registry read model.

* ``repository.created`` / ``updated`` / ``deleted``: the repository row (deleted with its
  artifacts: the event says every artifact went with it).
* ``artifact.uploaded`` counts the artifact in its repository's usage; ``artifact.deleted``
  leaves a tombstone (PyPI never takes a file name twice) and uncounts it;
  ``artifact.quarantine-released`` and ``artifact.scanned`` change its state;
  ``artifact.promoted`` copies the source's metadata into the target repository.
* ``block.created`` / ``updated`` / ``deleted`` keep the blocks; ``block.hit`` (published by
  the gateway when it refused a download) counts a hit.

The registry's jobs (``scanning.py``) come from here too, in the same transaction:
``artifact.uploaded`` enqueues its scan, finished by its ``artifact.scanned`` (or its
deletion); each block event enqueues the reconciliation of the artifacts it may name (and,
with a ``blocked_until``, another for that time), an OSV ``vulndb.updated`` bringing
``MAL-`` advisories enqueues a sweep of the stored artifacts; ``block.applied`` finishes
those. ``artifact.blocked`` / ``artifact.unblocked`` record which block applies to an
artifact as last said; the blocks malicious-package advisories made are remembered
(``registry_advisory_blocks``), lifted ones too.

Every row takes its times, actors and sequences from the envelope, so a replay from
sequence 0 gives identical tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
import msgspec

from contracts.envelope import Event
from contracts.events.registry import (
    ArtifactBlocked,
    ArtifactDeleted,
    ArtifactPromoted,
    ArtifactQuarantineReleased,
    ArtifactScanned,
    ArtifactUnblocked,
    ArtifactUploaded,
    BlockApplied,
    BlockCreated,
    BlockDeleted,
    BlockHit,
    BlockUpdated,
    RepositoryCreated,
    RepositoryDeleted,
    RepositoryUpdated,
)
from contracts.events.vulndb import VulnDbUpdated
from services.scanner.registry import gate_store, store
from services.scanner.registry.malware import is_malicious
from services.scanner.registry.scanning import (
    BLOCKS_JOB,
    EXPIRY_JOB,
    SCAN_JOB,
    SWEEP_JOB,
    blocks_job_id,
    expiry_job_id,
    scan_job_id,
    sweep_job_id,
)
from shared import jobs

NAME = "registry"
SUBJECTS = ("repository.>", "artifact.>", "block.>", "vulndb.updated")
JOBS = store.JOBS_TABLE


@dataclass(eq=False)
class RegistryProjection:
    name: str = NAME
    schema: str = "scanner"
    subjects: Sequence[str] | None = SUBJECTS
    tables: Sequence[str] = field(default=store.PROJECTION_TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            await self._apply(conn, event)

    async def _apply(self, conn: asyncpg.Connection, event: Event) -> None:
        payload, seq = event.payload, event.sequence
        at, actor = event.envelope.occurred_at, event.envelope.actor
        if isinstance(payload, RepositoryCreated):
            await store.insert_repository(conn, payload, at=at, actor=actor, seq=seq)
        elif isinstance(payload, RepositoryUpdated):
            await store.update_repository(conn, payload, at=at, seq=seq)
        elif isinstance(payload, RepositoryDeleted):
            for artifact_id in await gate_store.artifact_ids_of_repo(conn, payload.id):
                await jobs.finish(conn, JOBS, scan_job_id(artifact_id), sequence=seq)
            await store.delete_repository(conn, payload.id)
        elif isinstance(payload, ArtifactUploaded):
            if await store.insert_artifact(conn, payload, at=at, seq=seq):
                await jobs.enqueue(
                    conn,
                    JOBS,
                    job_id=scan_job_id(payload.id),
                    kind=SCAN_JOB,
                    payload={"artifact_id": payload.id},
                    sequence=seq,
                )
        elif isinstance(payload, ArtifactDeleted):
            await store.delete_artifact(conn, payload.id, reason=payload.reason, seq=seq)
            await jobs.finish(conn, JOBS, scan_job_id(payload.id), sequence=seq)
        elif isinstance(payload, ArtifactQuarantineReleased):
            await store.release_artifact(conn, payload.id, seq=seq)
        elif isinstance(payload, ArtifactScanned):
            await gate_store.record_scan(conn, payload, seq=seq)
            await jobs.finish(conn, JOBS, scan_job_id(payload.id), sequence=seq)
        elif isinstance(payload, ArtifactPromoted):
            await store.insert_promoted(conn, payload, at=at, actor=actor, seq=seq)
        elif isinstance(payload, ArtifactBlocked):
            await gate_store.set_block_state(conn, payload.id, payload.block_id, seq=seq)
        elif isinstance(payload, ArtifactUnblocked):
            await gate_store.set_block_state(conn, payload.id, None, seq=seq)
        elif isinstance(payload, BlockCreated):
            await store.insert_block(conn, payload, at=at, actor=actor, seq=seq)
            if payload.source == "malicious_advisory" and payload.advisory_id and payload.purl:
                await gate_store.record_advisory_block(
                    conn,
                    block_id=payload.id,
                    advisory_id=payload.advisory_id,
                    purl_key=store.purl_key_of(payload.purl) or payload.purl,
                    seq=seq,
                )
            await self._block_changed(conn, payload.id, seq, until=payload.blocked_until)
        elif isinstance(payload, BlockUpdated):
            await store.update_block(conn, payload, at=at, seq=seq)
            until = payload.blocked_until
            await self._block_changed(
                conn, payload.id, seq, until=None if until is msgspec.UNSET else until
            )
        elif isinstance(payload, BlockDeleted):
            await store.delete_block(conn, payload.id, seq=seq)
            await gate_store.lift_advisory_block(conn, payload.id, seq=seq)
            await self._block_changed(conn, payload.id, seq, until=None)
        elif isinstance(payload, BlockApplied):
            await jobs.finish(conn, JOBS, payload.job_id, sequence=seq)
        elif isinstance(payload, BlockHit):
            await store.count_hit(conn, payload.block_id)
        elif isinstance(payload, VulnDbUpdated):
            if payload.source == "osv" and (
                payload.rematch_all or any(is_malicious(a) for a in payload.changed_advisory_ids)
            ):
                await jobs.enqueue(
                    conn,
                    JOBS,
                    job_id=sweep_job_id(payload.import_id),
                    kind=SWEEP_JOB,
                    payload={"import_id": payload.import_id, "import_sequence": seq},
                    sequence=seq,
                )

    async def _block_changed(
        self, conn: asyncpg.Connection, block_id: str, seq: int, *, until: dt.datetime | None
    ) -> None:
        """The artifacts the block may name are reconciled now, and again when it expires."""
        await jobs.enqueue(
            conn,
            JOBS,
            job_id=blocks_job_id(seq),
            kind=BLOCKS_JOB,
            payload={"block_id": block_id},
            sequence=seq,
        )
        if until is not None:
            await jobs.enqueue(
                conn,
                JOBS,
                job_id=expiry_job_id(block_id, until.isoformat()),
                kind=EXPIRY_JOB,
                payload={"block_id": block_id},
                sequence=seq,
                not_before=until,
            )
