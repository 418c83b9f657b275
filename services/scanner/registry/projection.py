"""``repository.*``, ``artifact.*`` and ``block.*`` → the registry read model.

* ``repository.created`` / ``updated`` / ``deleted``: the repository row (deleted with its
  artifacts: the event says every artifact went with it).
* ``artifact.uploaded`` counts the artifact in its repository's usage; ``artifact.deleted``
  leaves a tombstone (PyPI never takes a file name twice) and uncounts it;
  ``artifact.quarantine-released`` and ``artifact.scanned`` change its state;
  ``artifact.promoted`` copies the source's metadata into the target repository.
* ``block.created`` / ``updated`` / ``deleted`` keep the blocks; ``block.hit`` (published by
  the gateway when it refused a download) counts a hit.

Every row takes its times, actors and sequences from the envelope, so a replay from
sequence 0 gives identical tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from contracts.envelope import Event
from contracts.events.registry import (
    ArtifactDeleted,
    ArtifactPromoted,
    ArtifactQuarantineReleased,
    ArtifactScanned,
    ArtifactUploaded,
    BlockCreated,
    BlockDeleted,
    BlockHit,
    BlockUpdated,
    RepositoryCreated,
    RepositoryDeleted,
    RepositoryUpdated,
)
from services.scanner.registry import store

NAME = "registry"
SUBJECTS = ("repository.>", "artifact.>", "block.>")


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
            await store.delete_repository(conn, payload.id)
        elif isinstance(payload, ArtifactUploaded):
            await store.insert_artifact(conn, payload, at=at, seq=seq)
        elif isinstance(payload, ArtifactDeleted):
            await store.delete_artifact(conn, payload.id, reason=payload.reason, seq=seq)
        elif isinstance(payload, ArtifactQuarantineReleased):
            await store.release_artifact(conn, payload.id, seq=seq)
        elif isinstance(payload, ArtifactScanned):
            await store.set_scan_status(conn, payload.id, payload.verdict, seq=seq)
        elif isinstance(payload, ArtifactPromoted):
            await store.insert_promoted(conn, payload, at=at, actor=actor, seq=seq)
        elif isinstance(payload, BlockCreated):
            await store.insert_block(conn, payload, at=at, actor=actor, seq=seq)
        elif isinstance(payload, BlockUpdated):
            await store.update_block(conn, payload, at=at, seq=seq)
        elif isinstance(payload, BlockDeleted):
            await store.delete_block(conn, payload.id, seq=seq)
        elif isinstance(payload, BlockHit):
            await store.count_hit(conn, payload.block_id)
