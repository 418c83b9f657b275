"""The job that announces a new revision: publishes its ``release.decided`` with the
deterministic id the projection gave it (a re-run after a crash is dropped by JetStream's
duplicate window, and the projection finishes the job when the event comes back)."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from contracts.events.releases import ReleaseDecided
from shared import jobs
from shared.bus import Bus

SYSTEM = "system"


@dataclass
class DecidedPublisher:
    bus: Bus

    async def run(self, job: jobs.Job) -> None:
        payload = job.payload
        event = msgspec.json.decode(msgspec.json.encode(payload["event"]), type=ReleaseDecided)
        await self.bus.publish(
            event,
            aggregate=f"decision:{event.repo}@{event.commit}",
            actor=SYSTEM,
            correlation_id=payload.get("correlation_id"),
            causation_id=event.cause_event_id,
            event_id=job.id,
        )
