"""Announces waivers whose time is up: ``license.waiver-expired``, once per waiver.

Time passing is not an event, so a loop in every scanner process looks for active waivers
past ``expires_at`` (sleeping until the next one is due, at most ``POLL_SECONDS``; a new
waiver wakes it) and publishes their end. The event id is derived from the waiver, so
several replicas publishing at once are one event (JetStream drops the repeats, the
projection ignores a waiver already ended). Applying it evaluates the project's latest
snapshot again, like any other change of its policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid

import asyncpg

from contracts.events.licensing import LicenseWaiverExpired
from services.scanner.licensing import store
from shared.bus import Bus
from shared.logging import get_logger

log = get_logger(__name__)

POLL_SECONDS = 30.0
_NAMESPACE = uuid.UUID("0c5e7f6a-8b1d-5e2a-9f3c-4d6b8a1e2f70")


def expired_event_id(waiver_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"waiver-expired\x00{waiver_id}"))


class WaiverExpiry:
    def __init__(self, *, pool: asyncpg.Pool, bus: Bus) -> None:
        self.pool = pool
        self.bus = bus
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="license-waiver-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        self._wakeup.set()

    async def announce_due(self) -> int:
        """Publish the end of every waiver past its expiry; returns how many."""
        now = dt.datetime.now(dt.UTC)
        due = await store.due_waivers(self.pool, now=now)
        for waiver in due:
            await self.bus.publish(
                LicenseWaiverExpired(
                    waiver_id=waiver.id,
                    project_id=waiver.project_id,
                    license=waiver.license,
                    purl=waiver.purl,
                    reason=waiver.reason,
                    expires_at=waiver.expires_at,
                ),
                aggregate=f"license-waiver:{waiver.id}",
                actor="system",
                event_id=expired_event_id(waiver.id),
            )
        return len(due)

    async def _run(self) -> None:
        while True:
            try:
                await self.announce_due()
                wait = await self._until_next()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("waiver_expiry_failed", error=f"{type(exc).__name__}: {exc}")
                wait = POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=wait)
            self._wakeup.clear()

    async def _until_next(self) -> float:
        upcoming = await store.next_expiry(self.pool)
        if upcoming is None:
            return POLL_SECONDS
        seconds = (upcoming - dt.datetime.now(dt.UTC)).total_seconds()
        # A due waiver not yet marked expired (the projection is applying the event): look
        # again shortly rather than spin.
        return min(max(seconds, 0.2), POLL_SECONDS)
