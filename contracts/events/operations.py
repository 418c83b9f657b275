"""Events of operating a Gatehouse installation: backups and restores (`gatehouse backup`,
`gatehouse restore`). The gateway projects them into ``/health/backup``; the audit log keeps
them like every other event."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from contracts.envelope import EventPayload, register

Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


@register
class BackupCompleted(EventPayload, frozen=True, kw_only=True):
    """`gatehouse backup` wrote a complete, verified archive."""

    event_type = "backup.completed"
    backup_id: str
    archive: Annotated[str, msgspec.Meta(description="Where the archive was written (a path)")]
    sha256: Sha256Hex
    size_bytes: Count
    last_sequence: Annotated[
        Count, msgspec.Meta(description="The stream sequence the archive ends at")
    ]
    events: Count
    blobs: Count
    tables: Annotated[
        list[str], msgspec.Meta(description="State that replay cannot rebuild, as schema.table")
    ] = []
    started_at: dt.datetime
    finished_at: dt.datetime


@register
class BackupFailed(EventPayload, frozen=True, kw_only=True):
    """`gatehouse backup` could not write an archive; nothing usable was left behind."""

    event_type = "backup.failed"
    backup_id: str
    archive: str
    error: Annotated[str, msgspec.Meta(max_length=2000)]
    started_at: dt.datetime
    failed_at: dt.datetime


@register
class BackupRestored(EventPayload, frozen=True, kw_only=True):
    """`gatehouse restore` rebuilt this installation from an archive."""

    event_type = "backup.restored"
    backup_id: Annotated[str, msgspec.Meta(description="The id the archive was written with")]
    sha256: Sha256Hex
    last_sequence: Count
    events: Count
    blobs: Count
