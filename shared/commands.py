"""The write side of a request/reply command, in one place: serialise on an aggregate with a
Postgres advisory lock, publish the event, and answer only once the service's own
projection has applied it, so the caller's next read sees the write (read-your-writes,
ARCHITECTURE.md §2).

**Commands that run once.** A request with an ``Idempotency-Key`` is a *command* with a
``command_id`` the gateway derives from (principal, key, request fingerprint): every attempt
of it, after a 5xx or a kill -9 anywhere, carries the same id (``CallContext.command_id``).
A handler runs such a command through :func:`run_once`:

1. it first asks its projection whether an earlier attempt already got an event applied
   (``<schema>.applied_commands``, written by the projection runner in the transaction that
   applies the event), after catching up with the newest event of the projection's subjects,
   since the earlier attempt may have died between publishing and its projection applying;
   if so it answers from that record (``again``), validation and all skipped: the retry gets
   what the first attempt made, not ``slug_taken`` for the client's own project;
2. otherwise it runs the handler (``first``); each event it publishes through
   :func:`publish_visible` (or the gateway's writer) gets the id
   ``command_event_id(command_id, n, type)`` and carries the command id, so a re-publish of
   an event an earlier, still running or just dead, attempt published is dropped by
   JetStream's duplicate window: the stream answers the original sequence, and the attempt
   stops and answers from the record as in 1.

A command's first event is its commit point: the handlers that use this publish one event
per command.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from contracts.envelope import EventPayload
from shared import applied_commands, faults
from shared.applied_commands import AppliedCommand
from shared.bus import Bus, Published
from shared.db import advisory_key
from shared.errors import GatehouseError, UpstreamTimeout
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


T = TypeVar("T")

# Names the commands and their events (uuid5): stable forever, the ids are in the stream.
_COMMANDS = uuid.UUID("0e8d5c61-2f0a-5b8e-9d3c-6a1f4b7e2c90")


def command_id_for(*, principal: str, key: str, fingerprint: str) -> str:
    """The id of the command a request with an Idempotency-Key is: the same principal, key
    and request (method, path, query, body digest) are the same command, on every attempt."""
    return str(uuid.uuid5(_COMMANDS, "\x00".join(("command", principal, key, fingerprint))))


def command_event_id(command_id: str, index: int, event_type: str) -> str:
    """The id of the ``index``-th event (0-based) a command publishes."""
    return str(uuid.uuid5(_COMMANDS, "\x00".join(("event", command_id, str(index), event_type))))


class CommandAlreadyApplied(Exception):
    """An earlier attempt of this command published its event: answer from its record."""

    def __init__(self, applied: AppliedCommand) -> None:
        super().__init__(f"command {applied.command_id} already applied ({applied.event_id})")
        self.applied = applied


class CommandEventLost(GatehouseError):
    code, title = "command_event_lost", "An earlier attempt's event was not applied"


@dataclass
class _Attempt:
    command_id: str
    runner: ProjectionRunner
    published: int = 0

    def next_event_id(self, event_type: str) -> str:
        index, self.published = self.published, self.published + 1
        return command_event_id(self.command_id, index, event_type)


# The command attempt the current task runs (set by run_once for the handler's duration).
_attempt: ContextVar[_Attempt | None] = ContextVar("gatehouse_command_attempt", default=None)


async def applied_command(
    bus: Bus,
    runner: ProjectionRunner,
    command_id: str,
    *,
    visible: Callable[[int], Awaitable[None]],
) -> AppliedCommand | None:
    """What ``runner``'s projection recorded of ``command_id``, once it has applied every
    event published so far on its subjects (``visible`` waits for a sequence)."""
    found = await _recorded(runner, command_id)
    if found is None:
        # An earlier attempt may have published and died before the projection applied it.
        await visible(await bus.last_sequence_of(runner.projection.subjects))
        found = await _recorded(runner, command_id)
    return found


async def _recorded(runner: ProjectionRunner, command_id: str) -> AppliedCommand | None:
    projection = runner.projection
    return await applied_commands.find(
        runner.pool, schema=projection.schema, projection=projection.name, command_id=command_id
    )


async def run_once(
    command_id: str,
    *,
    bus: Bus,
    runner: ProjectionRunner,
    visible: Callable[[int], Awaitable[None]],
    first: Callable[[], Awaitable[T]],
    again: Callable[[AppliedCommand], Awaitable[T]],
) -> T:
    """Run a command once, whatever crashed in an earlier attempt (see the module notes).

    ``first`` runs the command (its events go through :func:`publish_visible` or the
    gateway's writer, on ``runner``); ``again`` answers from the record of an earlier attempt,
    as the first attempt answered (for a create: the resource in ``applied.aggregate``).
    Without a ``command_id`` (no Idempotency-Key) ``first`` just runs.
    """
    if not command_id:
        return await first()
    previous = await applied_command(bus, runner, command_id, visible=visible)
    if previous is not None:
        return await again(previous)
    token = _attempt.set(_Attempt(command_id, runner))
    try:
        return await first()
    except CommandAlreadyApplied as exc:
        previous = exc.applied
    finally:
        _attempt.reset(token)
    return await again(previous)


async def publish_in_command(
    bus: Bus,
    payload: EventPayload,
    *,
    aggregate: str,
    actor: str,
    correlation_id: str | None,
    event_id: str | None = None,
    occurred_at: dt.datetime | None = None,
) -> Published:
    """Publish one event of a command: inside :func:`run_once` it gets the command's next
    deterministic id and carries the command id; elsewhere it is an ordinary publish."""
    attempt = _attempt.get()
    command_id = None
    if attempt is not None and event_id is None:
        event_id, command_id = attempt.next_event_id(payload.event_type), attempt.command_id
    published = await bus.publish_acked(
        payload,
        aggregate=aggregate,
        actor=actor,
        correlation_id=correlation_id,
        event_id=event_id,
        occurred_at=occurred_at,
        command_id=command_id,
    )
    if attempt is not None:
        faults.point("command.after_publish")
    return published


async def settle(published: Published) -> None:
    """Once the projection has applied ``published``: if the stream already held it, an
    earlier attempt of the running command published it, and this attempt stops
    (:class:`CommandAlreadyApplied`, turned into the earlier answer by :func:`run_once`)."""
    attempt = _attempt.get()
    if attempt is None or not published.duplicate:
        return
    found = await _recorded(attempt.runner, attempt.command_id)
    if found is None:  # the earlier attempt's event was dead-lettered
        raise CommandEventLost(
            f"an earlier attempt of this request published event {published.envelope.id} "
            f"(stream sequence {published.sequence}), which could not be applied",
            extra={"stream_sequence": published.sequence},
        )
    raise CommandAlreadyApplied(found)


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
    published = await publish_in_command(
        bus,
        payload,
        aggregate=aggregate,
        actor=ctx.actor,
        correlation_id=ctx.request_id or None,
        event_id=event_id,
        occurred_at=occurred_at,
    )
    await wait_visible(runner, published.sequence, settings=settings)
    await settle(published)
    return published.sequence


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


async def command_once(
    ctx: CallContext,
    *,
    bus: Bus,
    runner: ProjectionRunner,
    settings: Settings,
    first: Callable[[], Awaitable[T]],
    again: Callable[[AppliedCommand], Awaitable[T]],
) -> T:
    """:func:`run_once` for an RPC command handler: the command id comes with the call."""

    async def visible(sequence: int) -> None:
        await wait_visible(runner, sequence, settings=settings)

    return await run_once(
        ctx.command_id, bus=bus, runner=runner, visible=visible, first=first, again=again
    )
