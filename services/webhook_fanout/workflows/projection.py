"""The ``workflows`` projection: the workflow triggers' configuration, and a delivery queued
for each event that asks for a workflow.

* ``environment.updated`` → the environment's deployment trigger (its ``workflow_url``);
  ``webhook.workflow-configured`` → how a trigger calls (format, ref, credential version;
  a build trigger's URL). Each target is delivered through a managed ``subscriptions`` row
  (``workflow_kind`` set) that the intake never matches, so the sender, its retries, SSRF
  checks and the delivery log apply unchanged. A new trigger keeps a generated ``whsec_``
  secret (version 1) until a user asks for one (``workflow_secret``).
* ``deployment.requested`` with a ``workflow_url`` and ``release.candidate-created`` with
  ``trigger_build_workflow`` → one delivery to the trigger, queued in this transaction, once
  ever (``workflow_deliveries`` is kept state: a replay queues nothing again). Nothing to
  call (no build workflow configured) is a ``failed`` outcome at once.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from contracts.envelope import Event
from contracts.events.deployments import (
    DeploymentRequested,
    EnvironmentUpdated,
    ReleaseCandidateCreated,
)
from contracts.events.webhooks import WebhookWorkflowConfigured
from services.webhook_fanout.deliveries import store as deliveries
from services.webhook_fanout.deliveries.outcomes import delivery_id
from services.webhook_fanout.domain.signing import GENERATED_KEY_BYTES, generate_secret
from services.webhook_fanout.workflows import store

NAME = "workflows"
SUBJECTS = (
    "environment.updated",
    "webhook.workflow-configured",
    "deployment.requested",
    "release.candidate-created",
)
NO_BUILD_WORKFLOW = "no build workflow is configured for the project"
NO_DEPLOYMENT_WORKFLOW = "the environment has no workflow_url"


@dataclass(eq=False)
class WorkflowsProjection:
    name: str = NAME
    schema: str = store.S
    subjects: Sequence[str] | None = SUBJECTS
    tables: Sequence[str] = field(default=("workflow_targets",))

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            await self._apply(conn, event)

    async def _apply(self, conn: asyncpg.Connection, event: Event) -> None:
        p, at, seq = event.payload, event.envelope.occurred_at, event.sequence
        if isinstance(p, EnvironmentUpdated):
            target = await store.upsert_target(
                conn,
                seq=seq,
                at=at,
                id=store.target_id("deployment", p.environment_id),
                kind="deployment",
                project_id=p.project_id,
                environment_id=p.environment_id,
                environment=p.name,
                url=p.workflow_url,
            )
            await _first_secret(conn, target.id, at)
        elif isinstance(p, WebhookWorkflowConfigured):
            fields: dict[str, object] = {
                "id": p.id,
                "kind": p.kind,
                "project_id": p.project_id,
                "format": p.format,
                "ref": p.ref,
                "dispatch_event_type": p.dispatch_event_type,
                "secret_version": p.secret_version,
                "previous_valid_until": p.previous_valid_until,
            }
            if p.kind == "build":
                fields["url"] = p.url
            else:
                fields["environment_id"] = p.environment_id
            await store.upsert_target(conn, seq=seq, at=at, **fields)
        elif isinstance(p, DeploymentRequested) and p.workflow_url is not None:
            await _trigger(
                conn,
                event,
                store.target_id("deployment", p.environment_id),
                kind="deployment",
                project_id=p.project_id,
                deployment_id=p.deployment_id,
                candidate_id=p.release_candidate_id,
                missing=NO_DEPLOYMENT_WORKFLOW,
            )
        elif isinstance(p, ReleaseCandidateCreated) and p.trigger_build_workflow:
            await _trigger(
                conn,
                event,
                store.target_id("build", p.project_id),
                kind="build",
                project_id=p.project_id,
                deployment_id=None,
                candidate_id=p.release_candidate_id,
                missing=NO_BUILD_WORKFLOW,
            )


async def _first_secret(conn: asyncpg.Connection, target_id: str, at: dt.datetime) -> None:
    # Kept state: the first apply's secret stays (a replay generates one and drops it).
    secret = generate_secret(secrets.token_bytes(GENERATED_KEY_BYTES))
    await store.keep_secret(conn, target_id, version=1, secret=secret.text, at=at, replace=False)


async def _trigger(
    conn: asyncpg.Connection,
    event: Event,
    target_id: str,
    *,
    kind: str,
    project_id: str,
    deployment_id: str | None,
    candidate_id: str | None,
    missing: str,
) -> None:
    did: uuid.UUID = delivery_id(target_id, event.id)
    first = await store.remember_delivery(
        conn,
        delivery_id=did,
        kind=kind,
        project_id=project_id,
        trigger_event_id=event.id,
        deployment_id=deployment_id,
        candidate_id=candidate_id,
    )
    if not first:
        return
    target = await store.target(conn, target_id)
    if target is None or target.url is None:
        await store.fail_now(conn, did, missing)
        return
    row = deliveries.QueuedEvent(
        event_id=event.id,
        event_type=event.envelope.type,
        stream_seq=event.sequence,
        occurred_at=event.envelope.occurred_at,
        envelope=event.raw,
    )
    await deliveries.queue(conn, [row], [(did, target_id, row)])
