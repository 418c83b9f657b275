"""The outcome of triggering a workflow (``webhook.workflow-triggered``, from the fan-out).

* **build**: the candidate's ``build_status`` becomes ``triggered`` or ``failed`` (the
  projection writes it: nothing else is announced).
* **deployment**: a deployment still ``pending`` becomes ``queued`` (the workflow accepted
  it) or ``error`` (it could not be called), through a ``deployment.status-changed`` with
  cause ``workflow``, like any status change. The projection enqueues a job whose id is
  that event's id; the job publishes it under the environment's lock, unless the deployment
  moved on meanwhile (a CD pipeline reported first), and the event coming back finishes it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

import asyncpg

from contracts.events.deployments import DeploymentStatusChanged
from contracts.events.webhooks import WebhookWorkflowTriggered
from services.release_decision.candidates import store
from shared import jobs
from shared.bus import Bus
from shared.commands import advisory_locked

JOB_KIND: Final = "publish_workflow_status"
# Fixed forever: the status changes' event ids derive from it.
NAMESPACE: Final = uuid.UUID("3c8e5a71-0d4b-5f92-a6e3-7b1f2d9c4e08")
STATUS_AFTER: Final = {"delivered": "queued", "failed": "error"}


def status_event_id(outcome_event_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"workflow-status/{outcome_event_id}"))


async def apply_outcome(
    conn: asyncpg.Connection, p: WebhookWorkflowTriggered, *, event_id: str, seq: int
) -> None:
    if p.kind == "build":
        if p.candidate_id is not None:
            status = "triggered" if p.outcome == "delivered" else "failed"
            await store.set_build_status(conn, p.candidate_id, status)
        return
    if p.deployment_id is None:
        return
    if await store.deployment_status(conn, p.deployment_id) != "pending":
        return
    await jobs.enqueue(
        conn,
        store.JOBS_TABLE,
        job_id=status_event_id(event_id),
        kind=JOB_KIND,
        payload={
            "deployment_id": p.deployment_id,
            "status": STATUS_AFTER[p.outcome],
            "cause_event_id": event_id,
        },
        sequence=seq,
    )


@dataclass
class WorkflowStatusPublisher:
    pool: asyncpg.Pool
    bus: Bus

    async def run(self, job: jobs.Job) -> None:
        deployment_id = str(job.payload["deployment_id"])
        found = await store.deployment(self.pool, deployment_id)
        if found is None:
            return
        async with advisory_locked(
            self.pool, f"rc:env:{found.project_id}:{found.environment}"
        ) as conn:
            current = await store.deployment(conn, deployment_id)
            if current is None or current.status != "pending":
                return
            await self.bus.publish(
                DeploymentStatusChanged(
                    deployment_id=current.id,
                    project_id=current.project_id,
                    environment_id=current.environment_id,
                    environment=current.environment,  # type: ignore[arg-type]
                    release_candidate_id=current.release_candidate_id,
                    release_candidate_version=current.release_candidate_version,  # type: ignore[arg-type]
                    repo=current.repo,  # type: ignore[arg-type]
                    commit=current.commit,  # type: ignore[arg-type]
                    status=job.payload["status"],
                    previous_status="pending",
                    cause="workflow",
                ),
                aggregate=f"deployment:{current.id}",
                actor="system",
                causation_id=str(job.payload["cause_event_id"]),
                event_id=job.id,
            )
