"""``retention.*`` (and ``repository.deleted``) → the retention read model.

* ``retention.policy-set`` creates or replaces a policy, ``retention.policy-deleted``
  removes it, and a deleted repository takes its policies with it.
* ``retention.deleted`` records which policy deleted which artifact (a policy's
  ``deleted_count``); the ``artifact.deleted`` that follows it is the registry's.

Times, authors and sequences come from the envelopes, so a replay from sequence 0 gives
identical tables. Runs are not here: they are the scanner's own job state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from contracts.envelope import Event
from contracts.events.registry import (
    RepositoryDeleted,
    RetentionDeleted,
    RetentionPolicyDeleted,
    RetentionPolicySet,
)
from services.scanner.retention import store

NAME = "retention"
SUBJECTS = ("retention.>", "repository.deleted")


@dataclass(eq=False)
class RetentionProjection:
    name: str = NAME
    schema: str = "scanner"
    subjects: Sequence[str] | None = SUBJECTS
    tables: Sequence[str] = field(default=store.PROJECTION_TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            payload, seq = event.payload, event.sequence
            at, actor = event.envelope.occurred_at, event.envelope.actor
            if isinstance(payload, RetentionPolicySet):
                await store.set_policy(conn, payload, at=at, actor=actor, seq=seq)
            elif isinstance(payload, RetentionPolicyDeleted):
                await store.delete_policy(conn, payload.id)
            elif isinstance(payload, RetentionDeleted):
                await store.record_deletion(conn, payload, at=at, seq=seq)
            elif isinstance(payload, RepositoryDeleted):
                await store.delete_policies_of_repo(conn, payload.id)
