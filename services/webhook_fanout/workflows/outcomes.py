"""Announces workflow outcomes: each ``workflow_outcomes`` row (left by the deliveries'
trigger in the sender's own transaction, or by the projection when there was nothing to
call) becomes one ``webhook.workflow-triggered`` with a deterministic id, then is marked
published. Woken by ``NOTIFY``; at start (and once in a while, for a lost notification) it
publishes whatever a crash left unannounced: at least once, duplicates with the same id."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final

import asyncpg

from contracts.events.webhooks import WebhookWorkflowTriggered
from services.webhook_fanout.workflows import store
from shared.bus import Bus
from shared.db import connect
from shared.logging import get_logger

log = get_logger(__name__)
IDLE_LOOK_SECONDS: Final = 30.0
ERROR_PAUSE_SECONDS: Final = 1.0


def event_of(o: store.Outcome) -> WebhookWorkflowTriggered:
    return WebhookWorkflowTriggered(
        kind=o.kind,  # type: ignore[arg-type]
        outcome=o.outcome,  # type: ignore[arg-type]
        trigger_event_id=o.trigger_event_id,
        project_id=o.project_id,
        deployment_id=o.deployment_id,
        candidate_id=o.candidate_id,
        delivery_id=str(o.delivery_id),
        status=o.status,
        error=(o.error or "")[:1000] if o.outcome == "failed" else "",
    )


class OutcomePublisher:
    def __init__(self, *, pool: asyncpg.Pool, bus: Bus, database_url: str) -> None:
        self.pool = pool
        self.bus = bus
        self.database_url = database_url
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._main(), name="workflow-outcomes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)

    async def _main(self) -> None:
        while True:
            try:
                if self._listener is None or self._listener.is_closed():
                    self._listener = await connect(self.database_url)
                    await self._listener.add_listener(
                        store.OUTCOMES_CHANNEL, lambda *_: self._wake.set()
                    )
                self._wake.clear()
                while await self.publish_pending():
                    pass
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_LOOK_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("workflow_outcomes_retry", error=f"{type(exc).__name__}: {exc}")
                self._listener = None
                await asyncio.sleep(ERROR_PAUSE_SECONDS)

    async def publish_pending(self) -> int:
        """Announce a batch of outcomes; how many were announced."""
        pending = await store.unpublished(self.pool)
        for outcome in pending:
            await self.bus.publish(
                event_of(outcome),
                aggregate=f"workflow:{outcome.deployment_id or outcome.candidate_id}",
                actor="system",
                causation_id=outcome.trigger_event_id,
                event_id=store.outcome_event_id(outcome.delivery_id, outcome.series),
            )
            await store.mark_published(self.pool, outcome.delivery_id, outcome.series)
        return len(pending)
