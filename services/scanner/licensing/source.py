"""The license policy a scan classifies with (``runtime.state["license_policy"]``, looked up
by the scan worker through ``scans.sources.license_policy_of``).

Before reading it waits, briefly, for the licensing projection to catch up with the stream:
the scan then uses every policy change published before it started. A change that lands
while the scan runs is caught by the licensing projection (``scan_raced_change``), which
evaluates the new snapshot again. Should the projection lag beyond the wait, the scan goes
ahead with what is there (and logs it) rather than stall.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import asyncpg

from services.scanner.domain.licenses import LicenseClassifier
from services.scanner.licensing import store
from shared import jobs
from shared.bus import Bus
from shared.logging import get_logger
from shared.projection import ProjectionRunner

log = get_logger(__name__)

CATCH_UP_WAIT_SECONDS = 5.0


@dataclass
class PolicySource:
    pool: asyncpg.Pool
    bus: Bus
    runner: ProjectionRunner

    async def classifier_for(self, project_id: str) -> LicenseClassifier:
        await self.caught_up(timeout=CATCH_UP_WAIT_SECONDS)
        now = dt.datetime.now(dt.UTC)
        context = await store.current_context(self.pool, project_id, now=now)
        return context.classifier()

    async def caught_up(self, *, timeout: float) -> bool:  # noqa: ASYNC109 - a bound
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        wait = jobs.progress_waiter(self.runner)
        while not await jobs.projection_caught_up(self.bus, self.runner):
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("license_policy_lagging", checkpoint=self.runner.checkpoint)
                return False
            await wait(min(remaining, jobs.CATCH_UP_POLL_SECONDS))
        return True
