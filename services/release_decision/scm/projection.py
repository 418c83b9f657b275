"""The ``scm`` projection: webhook deliveries, pull requests, decisions and what was posted
to GitHub → ``release_decision.scm_*``, and the posting jobs.

* ``scm.delivery-received`` records a delivery id (a redelivery is then a duplicate).
* ``scm.pull-request-updated`` keeps each pull / merge request's state and head (unless
  GitHub says the change is older than the one kept: deliveries may arrive out of order);
  a GitHub pull request opened, pushed to or reopened gets a ``post`` job for its head.
* ``release.decided`` keeps each commit's newest decision; every open GitHub pull request
  headed by that commit gets a ``post`` job.
* ``scm.check-rerequested`` gets a ``post`` job that creates a new check run, and one per
  pull request it names (their comments).
* ``scm.decision-posted`` stores the check run and comment ids and finishes its job.

Job ids are derived from the causing event, so a replay rebuilds the same jobs and finishes
them with the same ``scm.decision-posted``: a replay never posts anything again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from contracts.envelope import Event
from contracts.events.releases import ReleaseDecided
from contracts.events.scm import (
    CheckRerequested,
    DecisionPosted,
    DeliveryReceived,
    PullRequestUpdated,
)
from services.release_decision.repos import keyed
from services.release_decision.scm import store
from shared import jobs

SUBJECTS = ("scm.>", "release.decided")
POST_JOB = "post"
# Pull request actions after which the head commit's decision is posted.
POSTING_ACTIONS = frozenset({"opened", "synchronize", "reopened"})


def post_job_id(cause_event_id: str, number: int | None) -> str:
    return f"post:{cause_event_id}:{number if number is not None else 'check'}"


@dataclass(eq=False)
class ScmProjection:
    name: str = "scm"
    schema: str = store.SCHEMA
    subjects: Sequence[str] | None = SUBJECTS
    tables: Sequence[str] = field(default=store.PROJECTION_TABLES)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            await self._apply(conn, event)

    async def _apply(self, conn: asyncpg.Connection, event: Event) -> None:
        payload, seq = keyed(event.payload), event.sequence
        if isinstance(payload, DeliveryReceived):
            await store.record_delivery(conn, payload, event_id=event.id, seq=seq)
        elif isinstance(payload, PullRequestUpdated):
            applied = await store.record_pull_request(conn, payload, seq=seq)
            if (
                applied
                and payload.provider == "github"
                and payload.state == "open"
                and payload.action in POSTING_ACTIONS
            ):
                await self._post(conn, event, payload.repo, payload.head_sha, [payload.number])
        elif isinstance(payload, ReleaseDecided):
            if await store.record_decision(conn, payload, event_id=event.id, seq=seq):
                numbers = await store.open_pull_numbers(conn, payload.repo, payload.commit)
                await self._post(conn, event, payload.repo, payload.commit, numbers)
        elif isinstance(payload, CheckRerequested):
            await self._post(conn, event, payload.repo, payload.commit, [None], new_check_run=True)
            await self._post(conn, event, payload.repo, payload.commit, payload.pull_numbers)
        elif isinstance(payload, DecisionPosted):
            await store.record_posted(conn, payload, seq=seq)
            await jobs.finish(conn, store.JOBS_TABLE, payload.job_id, sequence=seq)

    async def _post(
        self,
        conn: asyncpg.Connection,
        event: Event,
        repo: str,
        commit: str,
        numbers: Sequence[int | None],
        *,
        new_check_run: bool = False,
    ) -> None:
        for number in numbers:
            await jobs.enqueue(
                conn,
                store.JOBS_TABLE,
                job_id=post_job_id(event.id, number),
                kind=POST_JOB,
                payload={
                    "repo": repo,
                    "commit": commit,
                    "number": number,
                    "new_check_run": new_check_run,
                },
                sequence=event.sequence,
            )
