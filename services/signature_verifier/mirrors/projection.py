"""The ``mirrors`` projection: ``mirror.*`` → ``mirrors`` rows, and the fetch jobs.

* ``mirror.configured`` stores (or replaces) the configuration and queues a fetch;
  ``mirror.removed`` drops it and finishes the repo's open fetches.
* ``mirror.sync-requested`` and ``commit.pushed`` of a mirrored repo (from a webhook, not
  the ``git`` announcements a fetch itself publishes: that would loop) queue a fetch.

Job ids are the causing event's, so a replay rebuilds the same jobs. A fetch has no outcome
event (how it went is operational state, ``mirror_status``): after a replay the rebuilt
jobs run again, and each fetch finishes every older fetch of its repo (one fetch covers
many requests), so that costs one fetch per mirror, which finds nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from contracts.envelope import Event
from contracts.events.commits import CommitPushed
from contracts.events.signatures import MirrorConfigured, MirrorRemoved, MirrorSyncRequested
from services.signature_verifier.mirrors import store
from shared import jobs

SUBJECTS = ("mirror.>", "commit.pushed")
FETCH_JOB = "fetch"


def fetch_job_id(cause_event_id: str) -> str:
    return f"fetch:{cause_event_id}"


@dataclass(eq=False)
class MirrorsProjection:
    name: str = "mirrors"
    schema: str = store.SCHEMA
    subjects: Sequence[str] | None = SUBJECTS
    tables: Sequence[str] = field(default=store.PROJECTION_TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            await self._apply(conn, event)

    async def _apply(self, conn: asyncpg.Connection, event: Event) -> None:
        payload, seq = event.payload, event.sequence
        if isinstance(payload, MirrorConfigured):
            await store.upsert_mirror(conn, payload, seq=seq)
            await self._fetch(conn, event, payload.repo)
        elif isinstance(payload, MirrorRemoved):
            await store.delete_mirror(conn, payload.repo.lower(), seq=seq)
        elif isinstance(payload, MirrorSyncRequested):
            await self._fetch(conn, event, payload.repo)
        elif isinstance(payload, CommitPushed) and payload.source != "git":
            await self._fetch(conn, event, payload.repo)

    async def _fetch(self, conn: asyncpg.Connection, event: Event, repo: str) -> None:
        if await store.mirror(conn, repo.lower()) is None:
            return
        await jobs.enqueue(
            conn,
            store.JOBS_TABLE,
            job_id=fetch_job_id(event.id),
            kind=FETCH_JOB,
            payload={"repo_key": repo.lower()},
            sequence=event.sequence,
        )
