"""The write path: lock the aggregate, validate against the read model, publish the event,
and answer only once the gateway's own projection has applied it (read-your-writes).

Commands run on a pool of their own. A command holds its connection (and the advisory lock)
until the projection has applied its event, and the projection needs a connection of the
main pool to do that: with one shared pool, enough concurrent commands would starve the
projection they are waiting for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import asyncpg

from contracts.envelope import EventPayload
from services.gateway.adapters.locks import aggregate_locks
from services.gateway.domain.errors import WriteNotVisibleYet
from shared.applied_commands import AppliedCommand
from shared.bus import Bus
from shared.commands import publish_in_command, run_once, settle
from shared.db import create_pool
from shared.edge_limits import refuse_unstorable
from shared.projection import ProjectionRunner
from shared.settings import Settings

T = TypeVar("T")


@dataclass
class CommandWriter:
    bus: Bus
    runner: ProjectionRunner
    settings: Settings
    _pool: asyncpg.Pool | None = field(default=None, init=False)

    async def open(self) -> None:
        self._pool = await create_pool(
            self.settings.database_url, min_size=0, max_size=self.settings.db_pool_max
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @asynccontextmanager
    async def locked(self, *aggregates: str) -> AsyncIterator[asyncpg.Connection]:
        """Serialise on ``aggregates``; validate with the yielded connection, then emit."""
        if self._pool is None:
            raise RuntimeError("the command pool is not open (the gateway is not started)")
        async with aggregate_locks(self._pool, *aggregates) as conn:
            yield conn

    async def emit(
        self, payload: EventPayload, *, aggregate: str, actor: str, correlation_id: str | None
    ) -> int:
        """Publish one event and wait until the read model shows it; returns its sequence.

        The last check before the point of no return: an event no consumer could store
        (the edge should have refused its input) is a 422, never published.

        Inside :meth:`once` the event is the command's (a deterministic id): when an earlier
        attempt of the command published it already, this attempt stops here and ``once``
        answers as the earlier one did."""
        refuse_unstorable(payload)
        published = await publish_in_command(
            self.bus, payload, aggregate=aggregate, actor=actor, correlation_id=correlation_id
        )
        await self.visible(published.sequence)
        await settle(published)
        return published.sequence

    async def once(
        self,
        command_id: str,
        *,
        first: Callable[[], Awaitable[T]],
        again: Callable[[AppliedCommand], Awaitable[T]],
    ) -> T:
        """Run a command of the gateway's own once per ``command_id`` (an Idempotency-Key
        request), whatever crashed in an earlier attempt: see ``shared.commands.run_once``."""
        return await run_once(
            command_id,
            bus=self.bus,
            runner=self.runner,
            visible=self.visible,
            first=first,
            again=again,
        )

    async def visible(self, sequence: int, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until the read model has applied ``sequence`` (504 problem after ``timeout``)."""
        timeout = timeout or self.settings.read_your_writes_timeout_seconds
        try:
            await self.runner.wait_for(sequence, timeout=timeout)
        except TimeoutError:
            raise WriteNotVisibleYet(
                f"the change was recorded (stream sequence {sequence}) but is not readable "
                f"within {timeout:g}s; read it again shortly",
                extra={"stream_sequence": sequence},
            ) from None
