"""``release.created``, ``release.candidate-created``, ``environment.updated``,
``deployment.*`` and ``webhook.workflow-triggered`` (see ``workflows``) → the candidates
read model (releases, candidates, environments,
deployments and every status a deployment went through).

Every write is keyed by the event's ids and guarded (``ON CONFLICT DO NOTHING``, updates
only from an older stream sequence), so applying an event twice changes nothing and a
replay from sequence 0 rebuilds identical rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from contracts.envelope import Event
from contracts.events.deployments import (
    DeploymentRequested,
    DeploymentStatusChanged,
    EnvironmentUpdated,
    ReleaseCandidateCreated,
    ReleaseCreated,
)
from contracts.events.webhooks import WebhookWorkflowTriggered
from services.release_decision.candidates import store
from services.release_decision.candidates.workflows import apply_outcome
from shared import jobs

NAME = "candidates"
SUBJECTS = (
    "release.created",
    "release.candidate-created",
    "environment.updated",
    "deployment.>",
    "webhook.workflow-triggered",
)


@dataclass(eq=False)
class CandidatesProjection:
    name: str = NAME
    schema: str = store.SCHEMA
    subjects: Sequence[str] | None = SUBJECTS
    tables: Sequence[str] = field(default=store.PROJECTION_TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            await self._apply(conn, event)

    async def _apply(self, conn: asyncpg.Connection, event: Event) -> None:
        p = event.payload
        at, actor, seq = event.envelope.occurred_at, event.envelope.actor, event.sequence
        if isinstance(p, ReleaseCreated):
            await store.insert_release(conn, p, at=at, actor=actor, seq=seq)
        elif isinstance(p, ReleaseCandidateCreated):
            await store.insert_candidate(conn, p, at=at, actor=actor, seq=seq)
        elif isinstance(p, EnvironmentUpdated):
            await store.upsert_environment(conn, p, at=at, actor=actor, seq=seq)
        elif isinstance(p, DeploymentRequested):
            await store.insert_requested(conn, p, at=at, actor=actor, seq=seq)
        elif isinstance(p, DeploymentStatusChanged):
            await store.apply_status(conn, p, at=at, actor=actor, seq=seq)
            # A workflow's status change finishes the job that published it (same id).
            await jobs.finish(conn, store.JOBS_TABLE, event.envelope.id, sequence=seq)
        elif isinstance(p, WebhookWorkflowTriggered):
            await apply_outcome(conn, p, event_id=event.envelope.id, seq=seq)
