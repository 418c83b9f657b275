"""The write side of a request/reply command, in one place: serialise on an aggregate with a
Postgres advisory lock, publish the event, and answer only once the service's own
projection has applied it, so the caller's next read sees the write (read-your-writes,
ARCHITECTURE.md §2).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from contracts.envelope import EventPayload
from shared.bus import Bus
from shared.db import advisory_key
from shared.errors import UpstreamTimeout
from shared.projection import ProjectionRunner
from shared.rpc import CallContext
from shared.settings import Settings

# The share of the caller's RPC deadline a command may spend waiting for its projection; the
# rest is left for answering, so the caller gets our precise error, not its own timeout.
CATCH_UP_SHARE = 0.6


class NotVisibleYet(UpstreamTimeout):
    code, title = "read_your_writes_timeout", "The write was accepted but is not visible yet"


async def wait_visible(
    runner: ProjectionRunner, sequence: int, *, settings: Settings, share: float = CATCH_UP_SHARE
) -> None:
    """Wait until ``runner`` has applied stream ``sequence``; NotVisibleYet (504) when it
    does not within ``share`` of the RPC deadline (the write itself is recorded)."""
    timeout = settings.rpc_timeout_seconds * share
    try:
        await runner.wait_for(sequence, timeout=timeout)
    except TimeoutError:
        raise NotVisibleYet(
            f"the change was recorded (stream sequence {sequence}) but is not readable "
            f"within {timeout:g}s; read it again shortly",
            extra={"stream_sequence": sequence},
        ) from None


async def publish_visible(
    bus: Bus,
    runner: ProjectionRunner,
    payload: EventPayload,
    *,
    aggregate: str,
    ctx: CallContext,
    settings: Settings,
    event_id: str | None = None,
    occurred_at: dt.datetime | None = None,
) -> int:
    """Publish ``payload`` on behalf of the caller and wait until it is readable; returns
    its stream sequence (``event_id``: a deterministic id, for commands that may repeat)."""
    _, sequence = await bus.publish(
        payload,
        aggregate=aggregate,
        actor=ctx.actor,
        correlation_id=ctx.request_id or None,
        event_id=event_id,
        occurred_at=occurred_at,
    )
    await wait_visible(runner, sequence, settings=settings)
    return sequence


@asynccontextmanager
async def advisory_locked(pool: asyncpg.Pool, name: str) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection holding the session advisory lock ``name`` (commands on one
    aggregate run one at a time, across replicas); released before the connection goes
    back to the pool."""
    key = advisory_key(name)
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", key)
        try:
            yield conn
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
