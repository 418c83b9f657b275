"""The projection runner: events from a durable pull consumer into a Postgres read model.

Guarantees (see ARCHITECTURE.md §2):

* A batch is applied inside one transaction that also stores the stream sequence reached
  (``<schema>.projection_checkpoint``), and messages are acked only after that commit. A crash
  anywhere replays safely: anything at or below the checkpoint is skipped.
* The Postgres checkpoint is the truth; the JetStream consumer is only a cursor. Whenever a
  runner becomes leader (or recovers from a transient error) it recreates its durable consumer
  to start at checkpoint + 1, so events are always applied in stream order.
* An event that cannot be decoded or applied is written to ``<schema>.dead_letter`` with the
  error and terminated: never retried forever, never blocking the events behind it.
* One active writer per read model: a Postgres session advisory lock elects the leader, other
  replicas stand by and take over when the leader's connection goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Protocol

import asyncpg
import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

JetStreamPullSub = JetStreamContext.PullSubscription

from contracts.envelope import Event, UnknownEventType, decode_event
from shared.bus import Bus
from shared.db import advisory_key, connect
from shared.errors import GatehouseError
from shared.logging import get_logger
from shared.metrics import CONSUMER_PENDING, DEAD_LETTERED, EVENTS_APPLIED, PROJECTION_LAG
from shared.settings import Settings

log = get_logger(__name__)

# Generous: a batch is applied in well under a second; a slower apply calls in_progress().
ACK_WAIT_SECONDS = 60.0
FETCH_TIMEOUT_SECONDS = 1.0
STANDBY_POLL_SECONDS = 1.0
RETRY_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)


class Projection(Protocol):
    """A read model fed by events. ``apply`` runs inside the runner's transaction."""

    name: str
    schema: str
    # None: every event in the stream; otherwise NATS subject filters such as "project.>".
    subjects: Sequence[str] | None
    # Tables emptied by `gatehouse replay` before rebuilding from sequence 0.
    tables: Sequence[str]

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None: ...


def is_transient(exc: BaseException) -> bool:
    """Transient errors retry the whole batch later; everything else dead-letters the event."""
    if isinstance(exc, GatehouseError):
        return exc.transient
    return isinstance(exc, (
        asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.TooManyConnectionsError,
        asyncpg.CannotConnectNowError, asyncpg.DeadlockDetectedError,
        asyncpg.SerializationError, OSError, asyncio.TimeoutError, ConnectionError,
        nats.errors.Error,
    ))


class _Transient(Exception):
    pass


class ProjectionRunner:
    def __init__(self, projection: Projection, *, bus: Bus, pool: asyncpg.Pool,
                 settings: Settings) -> None:
        self.projection = projection
        self.bus = bus
        self.pool = pool
        self.settings = settings
        self.is_leader = False
        self.checkpoint = 0
        self.lag = 0
        self._reached = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._labels = (settings.service, projection.name)
        self._log = log.bind(projection=projection.name)

    @property
    def durable(self) -> str:
        return f"{self.projection.schema}_{self.projection.name}".replace(".", "_")

    @property
    def lock_key(self) -> int:
        return advisory_key(f"projection:{self.projection.schema}.{self.projection.name}")

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"projection:{self.projection.name}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping.is_set():
            lock_conn: asyncpg.Connection | None = None
            try:
                lock_conn = await connect(self.settings.database_url)
                if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                    self.is_leader = False
                    await self._standby_tick()
                    continue
                self.is_leader = True
                self._log.info("projection_leader")
                await self._lead(lock_conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = RETRY_BACKOFF_SECONDS[min(attempt, len(RETRY_BACKOFF_SECONDS) - 1)]
                attempt += 1
                self._log.warning("projection_retry", error=f"{type(exc).__name__}: {exc}",
                                  delay=delay)
                await asyncio.sleep(delay)
            else:
                attempt = 0
            finally:
                self.is_leader = False
                if lock_conn is not None:
                    with contextlib.suppress(Exception):
                        await lock_conn.close()

    async def _standby_tick(self) -> None:
        """A standby follows the leader's checkpoint so that wait_for works on any replica."""
        await self._refresh_checkpoint_from_db()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), STANDBY_POLL_SECONDS)

    async def _refresh_checkpoint_from_db(self) -> None:
        async with self.pool.acquire() as conn:
            value = await self._read_checkpoint(conn)
        await self._advance(value)

    # ---- leader ----------------------------------------------------------------------------
    async def _lead(self, lock_conn: asyncpg.Connection) -> None:
        sub = await self._subscribe()
        try:
            while not self._stopping.is_set():
                if lock_conn.is_closed():
                    raise _Transient("lost the leader lock connection")
                await self._fetch_and_apply(sub)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _subscribe(self) -> JetStreamPullSub:
        async with self.pool.acquire() as conn:
            self.checkpoint = await self._read_checkpoint(conn)
        js = self.bus.js
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(self.bus.stream, self.durable)
        subjects = list(self.projection.subjects or [])
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ACK_WAIT_SECONDS,
            # Unlimited: a transient failure recreates the consumer from the checkpoint, and a
            # permanent one is dead-lettered, so the server must never drop an event on its own.
            max_deliver=-1,
            max_ack_pending=self.settings.projection_batch_size * 4,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE if self.checkpoint else DeliverPolicy.ALL,
            opt_start_seq=self.checkpoint + 1 if self.checkpoint else None,
            filter_subject=subjects[0] if len(subjects) == 1 else None,
            filter_subjects=subjects if len(subjects) > 1 else None,
            description=f"projection {self.projection.schema}.{self.projection.name}",
        )
        await js.add_consumer(self.bus.stream, config)
        return await js.pull_subscribe_bind(durable=self.durable, stream=self.bus.stream)

    async def _fetch_and_apply(self, sub: JetStreamPullSub) -> int:
        try:
            msgs = await sub.fetch(self.settings.projection_batch_size, timeout=FETCH_TIMEOUT_SECONDS)
        except nats.errors.TimeoutError:
            await self._update_lag(sub)
            return 0
        await self._apply_batch(msgs)
        await self._update_lag(sub)
        return len(msgs)

    async def _update_lag(self, sub: JetStreamPullSub) -> None:
        with contextlib.suppress(Exception):
            info = await sub.consumer_info()
            pending = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
            self.lag = pending
            PROJECTION_LAG.labels(*self._labels).set(pending)
            CONSUMER_PENDING.labels(*self._labels).set(int(info.num_pending or 0))

    async def _apply_batch(self, msgs: list[Msg]) -> int:
        fresh: list[tuple[Msg, Event]] = []
        poison: list[tuple[Msg, int, str]] = []
        stale: list[Msg] = []
        top = self.checkpoint
        for msg in msgs:
            seq = int(msg.metadata.sequence.stream)
            if seq <= self.checkpoint:
                stale.append(msg)  # already applied before a crash or a consumer reset
                continue
            top = max(top, seq)
            try:
                fresh.append((msg, decode_event(msg.data, sequence=seq)))
            except (msgspec.DecodeError, msgspec.ValidationError, UnknownEventType) as exc:
                poison.append((msg, seq, f"undecodable: {exc}"))

        good: list[Msg] = []
        if top > self.checkpoint:
            async with self.pool.acquire() as conn, conn.transaction():
                good, rejected = await self._apply_isolating(conn, fresh)
                poison.extend(rejected)
                for msg, seq, error in poison:
                    await self._dead_letter(conn, msg, seq, error)
                await conn.execute(
                    f'INSERT INTO "{self.projection.schema}".projection_checkpoint '
                    "(projection, stream_sequence) VALUES ($1, $2) ON CONFLICT (projection) "
                    "DO UPDATE SET stream_sequence = EXCLUDED.stream_sequence",
                    self.projection.name, top)
        # Only after the commit: ack what was applied, terminate what never can be.
        for msg in (*stale, *good):
            await msg.ack()
        for msg, seq, error in poison:
            await msg.term()
            DEAD_LETTERED.labels(*self._labels).inc()
            self._log.error("event_dead_lettered", stream_sequence=seq, error=error[:500])
        if good:
            EVENTS_APPLIED.labels(*self._labels).inc(len(good))
        await self._advance(top)
        return len(good)

    async def _apply_isolating(
        self, conn: asyncpg.Connection, fresh: list[tuple[Msg, Event]]
    ) -> tuple[list[Msg], list[tuple[Msg, int, str]]]:
        """Apply the whole batch; if it fails permanently, apply one by one to find the poison."""
        if not fresh:
            return [], []
        try:
            async with conn.transaction():
                await self.projection.apply(conn, [event for _, event in fresh])
            return [msg for msg, _ in fresh], []
        except Exception as exc:
            if is_transient(exc):
                raise _Transient(str(exc)) from exc
        good: list[Msg] = []
        rejected: list[tuple[Msg, int, str]] = []
        for msg, event in fresh:
            try:
                async with conn.transaction():
                    await self.projection.apply(conn, [event])
                good.append(msg)
            except Exception as exc:
                if is_transient(exc):
                    raise _Transient(str(exc)) from exc
                rejected.append((msg, event.sequence, f"{type(exc).__name__}: {exc}"))
        return good, rejected

    async def _dead_letter(self, conn: asyncpg.Connection, msg: Msg, seq: int, error: str) -> None:
        event_id = (msg.headers or {}).get("Nats-Msg-Id")
        await conn.execute(
            f'INSERT INTO "{self.projection.schema}".dead_letter '
            "(projection, stream_sequence, subject, event_id, payload, error) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (projection, stream_sequence) DO NOTHING",
            self.projection.name, seq, msg.subject, event_id, msg.data, error[:4000])

    async def _read_checkpoint(self, conn: asyncpg.Connection) -> int:
        value = await conn.fetchval(
            f'SELECT stream_sequence FROM "{self.projection.schema}".projection_checkpoint '
            "WHERE projection = $1", self.projection.name)
        return int(value or 0)

    async def _advance(self, value: int) -> None:
        async with self._reached:
            if value > self.checkpoint or not self.is_leader:
                self.checkpoint = value
            self._reached.notify_all()

    # ---- read-your-writes ------------------------------------------------------------------
    async def wait_for(self, sequence: int, *, timeout: float) -> None:
        """Return once this read model has applied ``sequence`` (raises asyncio.TimeoutError)."""
        async def reached() -> None:
            async with self._reached:
                while self.checkpoint < sequence:
                    if self.is_leader:
                        await self._reached.wait()
                    else:
                        # Another replica writes: poll its checkpoint briefly.
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(self._reached.wait(), 0.05)
                        if self.checkpoint < sequence and not self.is_leader:
                            async with self.pool.acquire() as conn:
                                self.checkpoint = max(self.checkpoint, await self._read_checkpoint(conn))

        await asyncio.wait_for(reached(), timeout)

    # ---- replay ----------------------------------------------------------------------------
    async def reset(self, conn: asyncpg.Connection) -> None:
        schema = self.projection.schema
        async with conn.transaction():
            for table in self.projection.tables:
                await conn.execute(f'TRUNCATE "{schema}"."{table}" RESTART IDENTITY CASCADE')
            await conn.execute(f'DELETE FROM "{schema}".projection_checkpoint WHERE projection = $1',
                               self.projection.name)
            await conn.execute(f'DELETE FROM "{schema}".dead_letter WHERE projection = $1',
                               self.projection.name)
        self.checkpoint = 0

    async def replay(self) -> int:
        """Drop the read model and rebuild it from stream sequence 0; returns events handled.

        Takes the leader lock itself and fails if a running service holds it.
        """
        lock_conn = await connect(self.settings.database_url)
        try:
            if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                raise GatehouseError(
                    f"projection {self.projection.schema}.{self.projection.name} is being run by "
                    "another process; stop that service before replaying", code="projection_busy",
                    status=409)
            self.is_leader = True
            await self.reset(lock_conn)
            sub = await self._subscribe()
            total = 0
            try:
                while True:
                    handled = await self._fetch_and_apply(sub)
                    total += handled
                    if handled == 0 and self.lag == 0:
                        return total
            finally:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
                with contextlib.suppress(Exception):
                    await self.bus.js.delete_consumer(self.bus.stream, self.durable)
        finally:
            self.is_leader = False
            await lock_conn.close()



