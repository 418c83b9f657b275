"""backup.* events → ``gateway.backups``, and the reads behind ``/health/backup``.

Every value comes from the event, so a replay rebuilds the same rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from contracts.envelope import Event
from contracts.events.operations import BackupCompleted, BackupFailed, BackupRestored
from services.gateway.domain.backups import BackupOutcome

PROJECTION_TABLES = ("backups",)

_INSERT = (
    "INSERT INTO gateway.backups (backup_id, kind, archive, sha256, size_bytes, last_sequence, "
    "events, blobs, tables, error, started_at, finished_at, stream_sequence) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
    "ON CONFLICT (backup_id, kind) DO NOTHING"
)


async def _record(conn: asyncpg.Connection, event: Event) -> None:
    p = event.payload
    if isinstance(p, BackupCompleted):
        values: tuple[Any, ...] = (
            p.backup_id, "completed", p.archive, p.sha256, p.size_bytes, p.last_sequence,
            p.events, p.blobs, list(p.tables), None, p.started_at, p.finished_at,
        )  # fmt: skip
    elif isinstance(p, BackupFailed):
        values = (
            p.backup_id, "failed", p.archive, None, None, None,
            None, None, [], p.error, p.started_at, p.failed_at,
        )  # fmt: skip
    elif isinstance(p, BackupRestored):
        values = (
            p.backup_id, "restored", None, p.sha256, None, p.last_sequence,
            p.events, p.blobs, [], None, None, event.envelope.occurred_at,
        )  # fmt: skip
    else:  # a newer backup.* event: not modelled here
        return
    await conn.execute(_INSERT, *values, event.sequence)


@dataclass(eq=False)
class BackupsProjection:
    name: str = "backups"
    schema: str = "gateway"
    subjects: Sequence[str] | None = ("backup.>",)
    tables: Sequence[str] = PROJECTION_TABLES

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            await _record(conn, event)


async def latest(pool: asyncpg.Pool, *kinds: str) -> asyncpg.Record | None:
    """The newest row of one of ``kinds`` (by when it finished)."""
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT * FROM gateway.backups WHERE kind = ANY($1::text[]) "
        "ORDER BY finished_at DESC, stream_sequence DESC LIMIT 1",
        list(kinds),
    )
    return row


def outcome(row: asyncpg.Record | None) -> BackupOutcome | None:
    if row is None:
        return None
    return BackupOutcome(
        backup_id=row["backup_id"],
        succeeded=row["kind"] == "completed",
        finished_at=row["finished_at"],
    )
