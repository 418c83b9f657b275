"""``download.recorded`` → the who-pulled read model (``registry_pulls``, with the per
artifact counts in ``registry_pull_stats``).

A projection of its own, not the registry's: downloads outnumber every other registry event
by far, and a batch of them is written with two statements (see ``store.insert_pulls``)
without holding up the registry's read-your-writes. Every row takes its time from the
envelope (``occurred_at``: when the gateway served the download), so a replay from sequence
0 gives identical tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from contracts.envelope import Event
from contracts.events.registry import DownloadRecorded
from services.scanner.pulls import store

NAME = "registry_pulls"
SUBJECTS = ("download.>",)


@dataclass(eq=False)
class PullsProjection:
    name: str = NAME
    schema: str = "scanner"
    subjects: Sequence[str] | None = SUBJECTS
    tables: Sequence[str] = field(default=store.PROJECTION_TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        rows = [
            store.PullRow(
                seq=event.sequence,
                event_id=event.id,
                artifact_id=payload.artifact_id,
                repo_id=payload.repo_id,
                project_id=payload.project_id,
                digest=payload.digest,
                purl=payload.purl,
                principal=payload.principal,
                address=payload.address,
                at=event.envelope.occurred_at,
            )
            for event in events
            if isinstance(payload := event.payload, DownloadRecorded)
        ]
        await store.insert_pulls(conn, rows)
