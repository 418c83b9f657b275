"""The retention run job (``registry_retention_jobs``, run by a ``shared.jobs.JobWorker``).

A run plans when it starts (the same pure ``domain.plan`` a dry run answers with), stores
the plan, then works through it one artifact at a time under the repository's lock — the
lock every upload and deletion of the repository takes — looking again before each
deletion: an artifact deleted meanwhile, quarantined, promoted or downloaded since the plan
was made is *skipped*. A deletion publishes ``retention.deleted`` then ``artifact.deleted``
(reason ``retention``) and waits until the registry projection applied it, then counts it.

Idempotent, as a job must be: the events' ids derive from (run, artifact), so a retried
attempt re-publishing them is dropped by JetStream's duplicate window; a planned artifact
already gone with reason ``retention`` counts as deleted; a run's plan is made once.

The blob bytes stay: an artifact's deletion removes its metadata, not the blob (other
artifacts may name the same digest; collecting unreferenced blobs is the blob store's).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from dataclasses import dataclass
from typing import Final

import asyncpg

from contracts.events.registry import ArtifactDeleted, RetentionDeleted
from services.scanner.registry.handlers import repo_lock
from services.scanner.retention import domain, store
from shared import jobs
from shared.bus import Bus
from shared.commands import advisory_locked
from shared.logging import get_logger
from shared.projection import ProjectionRunner

log = get_logger(__name__)

RUN_JOB: Final = "retention_run"
# Fixed forever: the deletions' event ids derive from it.
_EVENTS = uuid.UUID("5b0c7e0e-3f7d-5c39-9a61-2f4e8d1a7b35")
# A run waits this long for the registry projection to apply one deletion before the
# attempt fails (and is retried later).
VISIBLE_TIMEOUT_SECONDS = 60.0
_DETAIL_MAX = 2000


def deletion_event_id(run_id: str, artifact_id: str, event_type: str) -> str:
    return str(uuid.uuid5(_EVENTS, f"{run_id}/{artifact_id}/{event_type}"))


def interval_run_id(policy_id: str, slot: int) -> str:
    """The run of ``policy_id`` in interval ``slot``: replicas queue it once."""
    return "rrun_" + uuid.uuid5(_EVENTS, f"interval/{policy_id}/{slot}").hex


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class RetentionRuns:
    pool: asyncpg.Pool
    bus: Bus
    registry: ProjectionRunner

    async def run(self, job: jobs.Job) -> None:
        run_id = str(job.payload["run_id"])
        state = await store.run_state(self.pool, run_id)
        if state is None or state.status in ("done", "failed"):
            return
        log_ = log.bind(run_id=run_id, policy_id=state.policy_id, repo_id=state.repo_id)
        view = await store.policy_by_id(self.pool, state.policy_id)
        if view is None:
            await store.finish_run(
                self.pool, run_id, now=_now(), error="the policy was deleted before the run"
            )
            return
        if state.status == "queued":
            now = _now()
            plan = domain.plan(
                store.policy_of(view), await store.candidates(self.pool, state.repo_id), now=now
            )
            async with self.pool.acquire() as conn:
                await store.start_run(conn, run_id, plan, now=now)
            log_.info("retention_run_started", total=len(plan.deletions))
        for item in await store.pending_items(self.pool, run_id):
            deleted = await self._delete(state, item)
            await store.record_outcome(self.pool, run_id, item, deleted=deleted)
        await store.finish_run(self.pool, run_id, now=_now())
        log_.info("retention_run_done")

    async def _delete(self, state: store.RunState, item: store.PendingItem) -> bool:
        """Delete one planned artifact if it may still go; True when it went (now or in an
        earlier attempt of this run)."""
        async with advisory_locked(self.pool, repo_lock(state.repo_id)) as conn:
            view = await store.policy_by_id(conn, state.policy_id)
            artifact = await store.candidate(conn, item.artifact_id)
            if artifact is None:
                return await _gone_by_retention(conn, item.artifact_id)
            if view is None or not domain.still_deletable(
                store.policy_of(view), artifact, now=_now()
            ):
                return False
            common = {
                "aggregate": f"artifact:{artifact.id}",
                "actor": state.requested_by,
                "correlation_id": state.request_id or None,
            }
            await self.bus.publish_acked(
                RetentionDeleted(
                    artifact_id=artifact.id,
                    repo_id=state.repo_id,
                    policy_id=state.policy_id,
                    digest=artifact.digest,
                    path=artifact.path,
                ),
                event_id=deletion_event_id(state.id, artifact.id, RetentionDeleted.event_type),
                **common,  # type: ignore[arg-type]
            )
            published = await self.bus.publish_acked(
                ArtifactDeleted(
                    id=artifact.id,
                    repo_id=state.repo_id,
                    digest=artifact.digest,
                    reason="retention",
                    detail=f"retention policy {view.name!r}: {item.why}"[:_DETAIL_MAX],
                ),
                event_id=deletion_event_id(state.id, artifact.id, ArtifactDeleted.event_type),
                **common,  # type: ignore[arg-type]
            )
            # Under the lock until the registry shows it: the next upload or deletion of the
            # repository reads the usage without this artifact.
            await self.registry.wait_for(published.sequence, timeout=VISIBLE_TIMEOUT_SECONDS)
        return True


async def _gone_by_retention(conn: asyncpg.Connection, artifact_id: str) -> bool:
    reason = await conn.fetchval(
        "SELECT deleted_reason FROM scanner.registry_artifacts WHERE id = $1", artifact_id
    )
    return bool(reason == "retention")


async def queue_run(
    pool: asyncpg.Pool,
    *,
    run_id: str,
    repo_id: str,
    policy_id: str,
    trigger: str,
    requested_by: str,
    request_id: str,
    sequence: int,
    now: dt.datetime,
) -> bool:
    """A queued run and its job, together (an id seen before is left alone)."""
    async with pool.acquire() as conn, conn.transaction():
        created = await store.insert_run(
            conn,
            run_id=run_id,
            repo_id=repo_id,
            policy_id=policy_id,
            trigger=trigger,
            requested_by=requested_by,
            request_id=request_id,
            now=now,
        )
        if created:
            await jobs.enqueue(
                conn,
                store.JOBS_TABLE,
                job_id=run_id,
                kind=RUN_JOB,
                payload={"run_id": run_id},
                sequence=sequence,
            )
    return created


# ---- the optional periodic run ------------------------------------------------------------------
async def queue_interval_runs(pool: asyncpg.Pool, *, slot: int, sequence: int) -> int:
    """A run of every enabled policy that has none open; returns how many were queued."""
    queued = 0
    for view in await store.enabled_policies(pool):
        if await store.open_run_of_policy(pool, view.id):
            continue
        queued += await queue_run(
            pool,
            run_id=interval_run_id(view.id, slot),
            repo_id=view.repo_id,
            policy_id=view.id,
            trigger="interval",
            requested_by="system",
            request_id="",
            sequence=sequence,
            now=_now(),
        )
    return queued


async def every_interval(pool: asyncpg.Pool, runner: ProjectionRunner, every: float) -> None:
    """Queue the enabled policies' runs at each multiple of ``every`` seconds (wall clock,
    so replicas agree on the slot)."""
    while True:
        await asyncio.sleep(every - (time.time() % every))
        try:
            await queue_interval_runs(
                pool, slot=int(time.time() // every), sequence=runner.checkpoint
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is away: the next interval tries again
            log.warning("retention_interval_failed", error=f"{type(exc).__name__}: {exc}")


async def stop_task(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
