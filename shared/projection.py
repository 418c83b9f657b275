"""The projection runner: events from a durable pull consumer into a Postgres read model.

Guarantees (see ARCHITECTURE.md §2):

* A batch is applied inside one transaction that also stores the stream sequence reached
  (``<schema>.projection_checkpoint``), and messages are acked only after that commit. A crash
  anywhere replays safely: anything at or below the checkpoint is skipped.
* The Postgres checkpoint is the truth; the JetStream consumer is only a cursor. Whenever a
  runner becomes leader, recovers from a transient error, reconnects to NATS or sees a gap in
  the consumer's delivery sequence (a delivery lost in transit), it recreates its durable
  consumer to start at checkpoint + 1, so events are always applied in stream order and none
  is skipped.
* An event that cannot be decoded or applied is written to ``<schema>.dead_letter`` with the
  error, counted in ``gatehouse_dead_lettered_total`` and terminated: never retried forever,
  never blocking the events behind it. Transient errors (database or bus unavailable) roll the
  whole batch back and retry it later, from the checkpoint, with backoff.
* Transient is bounded too: an event whose application takes the database connection down
  ("invalid message length", a backend crash) looks like an outage. Every try of the batch
  after a checkpoint is counted in ``<schema>.projection_attempts`` (so the count survives a
  restart, and a try that kills the process counts as well); from the
  ``projection_max_attempts``-th try on, the batch is applied one event per transaction, and
  an event that still fails while a fresh connection to the database and the bus answer is
  dead-lettered, and the events behind it are applied. While the database or the bus does not
  answer nothing is dead-lettered: the runner waits with backoff. An event on which the
  process died ``2 * projection_max_attempts`` times is dead-lettered without another try.
* Dead letters stay until an operator answers them (``gatehouse deadletters retry|drop``):
  readiness says ``degraded`` meanwhile. A retry is applied by the leader, between batches,
  in its own transaction, from the stored payload: after the events behind it (see
  :meth:`ProjectionRunner._apply_retries`).
* One active writer per read model: a Postgres session advisory lock elects the leader, other
  replicas stand by (following the leader's checkpoint through ``LISTEN``, so ``wait_for``
  works on any replica) and take over when the leader's connection goes away. The checkpoint
  is written compare-and-set, so even a leader that lost its lock without noticing cannot
  apply an event a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy

from contracts.envelope import Event, UnknownEventType, decode_event
from contracts.rpc.dead_letters import DeadLetterRef, DeadLettersView, ProjectionDeadLetters
from shared import applied_commands
from shared.bus import Bus
from shared.db import advisory_key, connect
from shared.errors import GatehouseError
from shared.logging import event_log_context, get_logger
from shared.metrics import CONSUMER_PENDING, DEAD_LETTERED, EVENTS_APPLIED, PROJECTION_LAG
from shared.settings import Settings

JetStreamPullSub = JetStreamContext.PullSubscription

log = get_logger(__name__)

# Generous: a batch is applied in well under a second. Nothing relies on redelivery (a lost
# delivery is found by the delivery-sequence check), so a long ack_wait costs nothing.
ACK_WAIT_SECONDS = 60.0
FETCH_TIMEOUT_SECONDS = 1.0
# After the first event of a batch: how long to wait for the rest already on their way.
FETCH_MORE_SECONDS = 0.005
# How often a standby retries the leader lock and re-reads the leader's checkpoint (it also
# hears every checkpoint at once through LISTEN).
STANDBY_POLL_SECONDS = 0.5
# How often the leader asks the server for its consumer's pending count while busy.
LAG_REFRESH_SECONDS = 1.0
RETRY_BACKOFF_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
# While NATS is reconnecting the leader checks back this often.
DISCONNECTED_POLL_SECONDS = 0.1
# An event on which the process died this many times the bound is dead-lettered untried.
UNTRIED_AFTER_BOUNDS = 2
# How long the check that the database and the bus answer may take.
PROBE_TIMEOUT_SECONDS = 5.0
# How many of the newest outstanding dead letters readiness names per projection.
DEAD_LETTERS_NAMED = 5

_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08: the connection failed
    asyncpg.InterfaceError,  # the connection was closed under us
    asyncpg.exceptions.OperatorInterventionError,  # class 57: admin/crash shutdown, cancel
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # class 40: serialization failure, deadlock
    asyncpg.exceptions.LockNotAvailableError,
    OSError,
    TimeoutError,
    nats.errors.Error,
)


class Projection(Protocol):
    """A read model fed by events. ``apply`` runs inside the runner's transaction.

    Events are decoded with :func:`contracts.envelope.decode_event` (a payload type this code
    does not know, or a payload that does not match it, is dead-lettered). A projection may
    define ``decode(raw, *, sequence) -> Event`` to read events its own way: the audit log
    decodes the envelope alone, so that it records every event whatever its payload.
    """

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
    return isinstance(exc, _TRANSIENT_ERRORS)


def contiguous_deliveries(delivery_sequences: Sequence[int], *, expected: int) -> int:
    """How many deliveries, in order, continue the consumer's delivery sequence at ``expected``.

    JetStream numbers every delivery of a consumer 1, 2, 3 …; a hole means a message was
    delivered but lost on the way (a reconnect), and it would come back only after ack_wait,
    behind events already applied.
    """
    count = 0
    for sequence in delivery_sequences:
        if sequence != expected + count:
            break
        count += 1
    return count


def consumer_lag(
    *, num_pending: int, num_ack_pending: int, delivered_stream_seq: int, checkpoint: int
) -> int:
    """Events of this projection not applied yet: not yet delivered, plus delivered ones beyond
    the checkpoint (acks are asynchronous, so ack-pending alone over-counts applied ones)."""
    in_flight = num_ack_pending if delivered_stream_seq > checkpoint else 0
    return num_pending + in_flight


def retry_channel(schema: str) -> str:
    """The NOTIFY channel on which `gatehouse deadletters retry` wakes a schema's runners."""
    return f"gatehouse_deadletters_{schema}"


@dataclass(frozen=True)
class DeadLetter:
    id: int
    projection: str
    stream_sequence: int
    subject: str
    event_id: str | None
    error: str
    created_at: dt.datetime


async def outstanding_dead_letters(
    db: asyncpg.Pool | asyncpg.Connection, schema: str, *, newest: int = DEAD_LETTERS_NAMED
) -> dict[str, tuple[int, list[DeadLetter]]]:
    """Per projection of ``schema``: how many dead letters no operator has answered yet, and
    the ``newest`` of them (newest first)."""
    rows = await db.fetch(
        "SELECT id, projection, stream_sequence, subject, event_id, error, created_at, "
        "count(*) OVER (PARTITION BY projection) AS outstanding, "
        "row_number() OVER (PARTITION BY projection ORDER BY stream_sequence DESC) AS rank "
        f'FROM "{schema}".dead_letter WHERE resolved_at IS NULL ORDER BY projection, rank'
    )
    found: dict[str, tuple[int, list[DeadLetter]]] = {}
    for row in rows:
        _, named = found.setdefault(row["projection"], (int(row["outstanding"]), []))
        if row["rank"] <= newest:
            named.append(
                DeadLetter(
                    id=row["id"],
                    projection=row["projection"],
                    stream_sequence=row["stream_sequence"],
                    subject=row["subject"],
                    event_id=row["event_id"],
                    error=row["error"],
                    created_at=row["created_at"],
                )
            )
    return found


async def request_retry(conn: asyncpg.Connection, schema: str, dead_letter_id: int) -> bool:
    """Ask the schema's running projection to apply an outstanding dead letter again (see
    :meth:`ProjectionRunner._apply_retries`); False when there is no such one."""
    asked = await conn.fetchval(
        f'UPDATE "{schema}".dead_letter SET retry_requested_at = now() '
        "WHERE id = $1 AND resolved_at IS NULL RETURNING id",
        dead_letter_id,
    )
    if asked is None:
        return False
    await conn.execute("SELECT pg_notify($1, '')", retry_channel(schema))
    return True


async def drop_dead_letter(conn: asyncpg.Connection, schema: str, dead_letter_id: int) -> bool:
    """Give up on an outstanding dead letter; the row stays, resolved, as the audit trail."""
    dropped = await conn.fetchval(
        f"UPDATE \"{schema}\".dead_letter SET resolved_at = now(), resolution = 'dropped', "
        "retry_requested_at = NULL WHERE id = $1 AND resolved_at IS NULL RETURNING id",
        dead_letter_id,
    )
    return dropped is not None


def dead_letters_view(
    service: str, found: dict[str, tuple[int, list[DeadLetter]]]
) -> DeadLettersView:
    """:func:`outstanding_dead_letters` of a service as its ``dead_letters`` RPC answers it."""
    return DeadLettersView(
        service=service,
        projections=[
            ProjectionDeadLetters(
                projection=projection,
                count=count,
                newest=[
                    DeadLetterRef(
                        id=f"{service}:{letter.id}",
                        service=service,
                        projection=projection,
                        stream_sequence=letter.stream_sequence,
                        subject=letter.subject,
                        event_id=letter.event_id,
                        error=letter.error[:500],
                        dead_lettered_at=letter.created_at,
                    )
                    for letter in named
                ],
            )
            for projection, (count, named) in sorted(found.items())
        ],
    )


class _Transient(Exception):
    """Roll back, back off, and start again from the checkpoint."""


class _IsolatePoison(Exception):
    """The batch failed permanently: apply it again one event at a time."""


@dataclass(frozen=True)
class _BatchOutcome:
    applied: int
    # A delivery is missing: the consumer must be recreated from the checkpoint.
    gap: bool


class ProjectionRunner:
    def __init__(
        self, projection: Projection, *, bus: Bus, pool: asyncpg.Pool, settings: Settings
    ) -> None:
        self.projection = projection
        self.bus = bus
        self.pool = pool
        self.settings = settings
        self.is_leader = False
        self.checkpoint = 0
        self.lag = 0
        self._progress = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._failures = 0
        self._next_delivery = 1
        # Tries of the batch after the current checkpoint that did not commit (persisted).
        self._attempts = 0
        # The first batch of a session is counted before it is applied: the session may be
        # a restart after a try that killed the process.
        self._count_before_applying = True
        self._retries_wanted = asyncio.Event()
        self._labels = (settings.service, projection.name)
        self._log = log.bind(projection=projection.name)
        self._decode: Callable[..., Event] = getattr(projection, "decode", None) or decode_event

    @property
    def durable(self) -> str:
        return f"{self.projection.schema}_{self.projection.name}".replace(".", "_")

    @property
    def lock_key(self) -> int:
        return advisory_key(f"projection:{self.projection.schema}.{self.projection.name}")

    @property
    def checkpoint_channel(self) -> str:
        """The LISTEN/NOTIFY channel on which the leader announces each new checkpoint."""
        return f"gatehouse_checkpoint_{self.lock_key & 0xFFFFFFFFFFFF:x}"

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"projection:{self.projection.name}")

    async def stop(self) -> None:
        """Stop and release the leader lock (a standby takes over)."""
        self._stopping.set()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = RETRY_BACKOFF_SECONDS[min(self._failures, len(RETRY_BACKOFF_SECONDS) - 1)]
                self._failures += 1
                self._log.warning(
                    "projection_retry", error=f"{type(exc).__name__}: {exc}", delay=delay
                )
                await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _session(self) -> None:
        """One database session: stand by until it holds the leader lock, then lead.

        Closing the session's connection (stop, error, crash) releases the lock."""
        lock_conn = await connect(self.settings.database_url)
        try:
            await lock_conn.add_listener(self.checkpoint_channel, self._on_checkpoint_notice)
            await lock_conn.add_listener(
                retry_channel(self.projection.schema), lambda *_: self._retries_wanted.set()
            )
            while not self._stopping.is_set():
                if await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                    self.is_leader = True
                    self._log.info("projection_leader")
                    await self._lead(lock_conn)
                    return
                # A standby follows the leader's checkpoint so that wait_for works anywhere;
                # the lag is the leader's to report.
                self._set_checkpoint(await self._read_checkpoint(lock_conn))
                self.lag = 0
                self._failures = 0
                await self._pause(STANDBY_POLL_SECONDS)
        finally:
            self.is_leader = False
            await _close_quietly(lock_conn)

    def _on_checkpoint_notice(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload.isdigit() and not self.is_leader:
            self._set_checkpoint(max(self.checkpoint, int(payload)))

    # ---- leader ----------------------------------------------------------------------------
    async def _lead(self, lock_conn: asyncpg.Connection) -> None:
        while not self._stopping.is_set():
            await self._follow(lock_conn, until_caught_up=False)

    async def _follow(
        self, lock_conn: asyncpg.Connection, *, until_caught_up: bool
    ) -> tuple[int, bool]:
        """Consume from checkpoint + 1 until stopped, caught up (``until_caught_up``) or the
        consumer has to be recreated; returns (events applied, caught up)."""
        # Read before subscribing: a reconnect during the subscribe also means a resync.
        reconnects = self.bus.reconnects
        sub = await self._subscribe()
        applied = 0
        lag_checked_at = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not self._stopping.is_set():
                if lock_conn.is_closed():
                    raise _Transient("lost the connection holding the leader lock")
                if self.bus.reconnects != reconnects:
                    # Deliveries may have been lost with the old connection: resync.
                    self._log.info("projection_resync", reason="nats_reconnected")
                    return applied, False
                if not self.bus.connected:
                    # Pull requests and consumer info would only wait out their timeouts.
                    await self._pause(DISCONNECTED_POLL_SECONDS)
                    continue
                if until_caught_up and await self._refresh_lag(sub) == 0:
                    return applied, True
                if self._retries_wanted.is_set():
                    self._retries_wanted.clear()
                    await self._apply_retries()
                msgs = await self._fetch(sub)
                if msgs:
                    outcome = await self._apply_batch(msgs)
                    applied += outcome.applied
                    if outcome.gap:
                        self._log.info("projection_resync", reason="delivery_gap")
                        return applied, False
                self._failures = 0
                if not until_caught_up and (
                    not msgs or loop.time() - lag_checked_at >= LAG_REFRESH_SECONDS
                ):
                    lag_checked_at = loop.time()
                    with contextlib.suppress(Exception):
                        await self._refresh_lag(sub)
            return applied, False
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _subscribe(self) -> JetStreamPullSub:
        """(Re)create the durable consumer at checkpoint + 1 and bind to it."""
        async with self.pool.acquire() as conn:
            self._set_checkpoint(await self._read_checkpoint(conn))
            self._attempts = await self._read_attempts(conn)
        self._count_before_applying = True
        self._retries_wanted.set()  # requested while no leader ran
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
            deliver_policy=(
                DeliverPolicy.BY_START_SEQUENCE if self.checkpoint else DeliverPolicy.ALL
            ),
            opt_start_seq=self.checkpoint + 1 if self.checkpoint else None,
            filter_subject=subjects[0] if len(subjects) == 1 else None,
            filter_subjects=subjects if len(subjects) > 1 else None,
            description=f"projection {self.projection.schema}.{self.projection.name}",
        )
        await js.add_consumer(self.bus.stream, config)
        sub = await js.pull_subscribe_bind(durable=self.durable, stream=self.bus.stream)
        self._next_delivery = 1
        return sub

    async def _fetch(self, sub: JetStreamPullSub) -> list[Msg]:
        """The next batch, as soon as one event is there. nats-py's ``fetch(n)`` waits out
        its whole timeout for ``n`` messages once the stream is quiet and one arrives, so a
        trickle of events would be applied a second late: wait for one, then take only what
        is already there."""
        try:
            first = await sub.fetch(1, timeout=FETCH_TIMEOUT_SECONDS)
        except TimeoutError:  # nats.errors.TimeoutError and the client's bare asyncio timeouts
            return []
        batch = self.settings.projection_batch_size
        if batch <= 1:
            return first
        try:
            more = await sub.fetch(batch - 1, timeout=FETCH_MORE_SECONDS)
        except TimeoutError:
            more = []
        return [*first, *more]

    async def _refresh_lag(self, sub: JetStreamPullSub) -> int:
        info: ConsumerInfo = await sub.consumer_info()
        delivered = info.delivered.stream_seq if info.delivered else 0
        lag = consumer_lag(
            num_pending=int(info.num_pending or 0),
            num_ack_pending=int(info.num_ack_pending or 0),
            delivered_stream_seq=int(delivered or 0),
            checkpoint=self.checkpoint,
        )
        self.lag = lag
        PROJECTION_LAG.labels(*self._labels).set(lag)
        CONSUMER_PENDING.labels(*self._labels).set(int(info.num_pending or 0))
        return lag

    # ---- applying a batch ------------------------------------------------------------------
    async def _apply_batch(self, msgs: list[Msg]) -> _BatchOutcome:
        usable = contiguous_deliveries(
            [int(msg.metadata.sequence.consumer) for msg in msgs], expected=self._next_delivery
        )
        gap = usable < len(msgs)
        msgs = msgs[:usable]
        self._next_delivery += usable

        fresh: list[tuple[Msg, Event]] = []
        undecodable: list[tuple[Msg, int, str]] = []
        stale: list[Msg] = []
        top = self.checkpoint
        for msg in msgs:
            seq = int(msg.metadata.sequence.stream)
            if seq <= self.checkpoint:
                stale.append(msg)  # redelivered after its batch committed
                continue
            top = max(top, seq)
            try:
                fresh.append((msg, self._decode(msg.data, sequence=seq)))
            except (msgspec.DecodeError, msgspec.ValidationError, UnknownEventType) as exc:
                undecodable.append((msg, seq, f"undecodable: {exc}"))

        good: list[Msg] = []
        rejected: list[tuple[Msg, int, str]] = []
        poison: list[tuple[Msg, int, str]] = []
        if top > self.checkpoint:
            counted = self._count_before_applying
            if counted:
                await self._count_attempt(error=None)
            try:
                if self._attempts >= self.settings.projection_max_attempts:
                    good, poison = await self._apply_alone(fresh, undecodable)
                else:
                    try:
                        good, rejected = await self._commit(fresh, undecodable, top, isolate=False)
                    except _IsolatePoison:
                        good, rejected = await self._commit(fresh, undecodable, top, isolate=True)
                    poison = undecodable + rejected
            except _Transient as exc:
                # Counted after the fact when not before; best effort: when the database is
                # away the try is not counted, and an outage never reaches the bound.
                with contextlib.suppress(Exception):
                    await self._count_attempt(error=str(exc), again=not counted)
                raise
            self._count_before_applying = False
        # Only after the commit: ack what was applied, terminate what never can be.
        for msg in (*stale, *good):
            await msg.ack()
        for msg, seq, error in poison:
            await msg.term()
            DEAD_LETTERED.labels(*self._labels).inc()
            self._log.error(
                "event_dead_lettered",
                stream_sequence=seq,
                subject=msg.subject,
                event_id=(msg.headers or {}).get("Nats-Msg-Id"),
                error=error[:500],
            )
        if good:
            EVENTS_APPLIED.labels(*self._labels).inc(len(good))
        self._set_checkpoint(top)
        return _BatchOutcome(applied=len(good), gap=gap)

    async def _commit(
        self,
        fresh: list[tuple[Msg, Event]],
        undecodable: list[tuple[Msg, int, str]],
        top: int,
        *,
        isolate: bool,
    ) -> tuple[list[Msg], list[tuple[Msg, int, str]]]:
        """One transaction: apply, dead-letter, move the checkpoint from ours to ``top``."""
        async with self.pool.acquire() as conn, conn.transaction():
            if isolate:
                good, rejected = await self._apply_one_by_one(conn, fresh)
            else:
                try:
                    if fresh:
                        await self.projection.apply(conn, [event for _, event in fresh])
                except Exception as exc:
                    if is_transient(exc):
                        raise _Transient(f"{type(exc).__name__}: {exc}") from exc
                    raise _IsolatePoison from exc
                good, rejected = [msg for msg, _ in fresh], []
            for msg, seq, error in (*undecodable, *rejected):
                await self._dead_letter(conn, msg, seq, error)
            await self._record_commands(conn, fresh, good)
            await self._move_checkpoint(conn, top)
            if self._attempts:
                await self._forget_attempts(conn)
        self._attempts = 0
        return good, rejected

    async def _apply_alone(
        self, fresh: list[tuple[Msg, Event]], undecodable: list[tuple[Msg, int, str]]
    ) -> tuple[list[Msg], list[tuple[Msg, int, str]]]:
        """The batch failed ``projection_max_attempts`` tries: apply its events one at a time,
        each in a transaction of its own (the one at fault may take its connection down with
        it) that also moves the checkpoint past it, and dead-letter the one that fails while
        the database and the bus answer. The count of tries moves along with the checkpoint
        until that event is found: the events before it succeed alone, and it is still the
        one the tries were about."""
        bound = self.settings.projection_max_attempts
        entries = sorted(
            [(event.sequence, msg, event, "") for msg, event in fresh]
            + [(seq, msg, None, error) for msg, seq, error in undecodable],
            key=lambda entry: entry[0],
        )
        self._log.warning(
            "projection_isolating",
            attempts=self._attempts,
            after=self.checkpoint,
            events=len(entries),
        )
        good: list[Msg] = []
        poison: list[tuple[Msg, int, str]] = []
        for seq, msg, event, error in entries:
            if event is not None and self._attempts >= UNTRIED_AFTER_BOUNDS * bound:
                if not await self._reachable():
                    raise _Transient("the database or the bus does not answer")
                error = (
                    f"not applied: {self._attempts} tries of it never committed (the process "
                    f"stopped while applying it); last error: {await self._last_attempt_error()}"
                )
            elif event is not None:
                try:
                    with event_log_context(event):
                        async with self.pool.acquire() as conn, conn.transaction():
                            await self.projection.apply(conn, [event])
                            await self._record_applied(conn, event)
                            await self._move_checkpoint(conn, seq)
                            await self._carry_attempts(conn, seq)
                except _Transient:
                    raise
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    if is_transient(exc):
                        if self._attempts < bound:
                            raise _Transient(error) from exc  # a new suspect: count from 1
                        if not await self._reachable():
                            raise _Transient(error) from exc  # an outage, not the event
                        error = f"failed {self._attempts} tries, the database answering: {error}"
                else:
                    self._set_checkpoint(seq)
                    good.append(msg)
                    continue
            async with self.pool.acquire() as conn, conn.transaction():
                await self._dead_letter(conn, msg, seq, error)
                await self._move_checkpoint(conn, seq)
                await self._forget_attempts(conn)
            self._attempts = 0
            self._set_checkpoint(seq)
            poison.append((msg, seq, error))
        if self._attempts:
            # Every event applied alone: the tries failed for another reason (an outage).
            async with self.pool.acquire() as conn:
                await self._forget_attempts(conn)
            self._attempts = 0
        return good, poison

    async def _reachable(self) -> bool:
        """Do the database (on a connection of its own) and the bus answer? Then an event
        that keeps failing "transiently" is failing on its own account."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                conn = await connect(self.settings.database_url)
                try:
                    await conn.fetchval("SELECT 1")
                finally:
                    await _close_quietly(conn)
                # While reconnecting, the client would buffer the request and answer later.
                if not self.bus.connected:
                    raise ConnectionError("the bus is not connected")
                await self.bus.js.stream_info(self.bus.stream)
        except Exception as exc:
            self._log.warning("projection_probe_failed", error=f"{type(exc).__name__}: {exc}")
            return False
        return True

    # ---- counting tries --------------------------------------------------------------------
    @property
    def _attempts_table(self) -> str:
        return f'"{self.projection.schema}".projection_attempts'

    async def _read_attempts(self, conn: asyncpg.Connection) -> int:
        value = await conn.fetchval(
            f"SELECT attempts FROM {self._attempts_table} "
            "WHERE projection = $1 AND after_sequence = $2",
            self.projection.name,
            self.checkpoint,
        )
        return int(value or 0)

    async def _count_attempt(self, *, error: str | None, again: bool = True) -> None:
        """One more try of the batch after the checkpoint (``again=False``: only its error)."""
        value = await self.pool.fetchval(
            f"INSERT INTO {self._attempts_table} AS a "
            "(projection, after_sequence, attempts, last_error) VALUES ($1, $2, 1, $3) "
            "ON CONFLICT (projection) DO UPDATE SET "
            "attempts = CASE WHEN a.after_sequence <> EXCLUDED.after_sequence THEN 1 "
            "WHEN $4 THEN a.attempts + 1 ELSE a.attempts END, "
            "after_sequence = EXCLUDED.after_sequence, "
            "last_error = coalesce(EXCLUDED.last_error, a.last_error), updated_at = now() "
            "RETURNING attempts",
            self.projection.name,
            self.checkpoint,
            None if error is None else error[:2000],
            again,
        )
        self._attempts = int(value)
        if error is not None:
            self._log.warning("projection_attempt_failed", attempts=self._attempts, error=error)

    async def _carry_attempts(self, conn: asyncpg.Connection, seq: int) -> None:
        await conn.execute(
            f"UPDATE {self._attempts_table} SET after_sequence = $2 WHERE projection = $1",
            self.projection.name,
            seq,
        )

    async def _forget_attempts(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"DELETE FROM {self._attempts_table} WHERE projection = $1", self.projection.name
        )

    async def _last_attempt_error(self) -> str:
        value = await self.pool.fetchval(
            f"SELECT last_error FROM {self._attempts_table} WHERE projection = $1",
            self.projection.name,
        )
        return str(value or "none recorded")

    # ---- retries asked for by an operator --------------------------------------------------
    async def _apply_retries(self) -> None:
        """Apply the dead letters an operator asked to retry, each in its own transaction,
        from the stored payload, now: after the events behind it in the stream. Rewinding the
        checkpoint instead would apply every later event a second time. A projection whose
        rows depend on the order is rebuilt in stream order by `gatehouse replay`."""
        table = f'"{self.projection.schema}".dead_letter'
        rows = await self.pool.fetch(
            f"SELECT id, stream_sequence, payload FROM {table} WHERE projection = $1 "
            "AND resolved_at IS NULL AND retry_requested_at IS NOT NULL ORDER BY stream_sequence",
            self.projection.name,
        )
        for row in rows:
            seq = int(row["stream_sequence"])
            try:
                event = self._decode(bytes(row["payload"]), sequence=seq)
                with event_log_context(event):
                    async with self.pool.acquire() as conn, conn.transaction():
                        await self.projection.apply(conn, [event])
                        await self._record_applied(conn, event)
                        await conn.execute(
                            f"UPDATE {table} SET resolved_at = now(), resolution = 'retried', "
                            "retry_requested_at = NULL WHERE id = $1",
                            row["id"],
                        )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = f"retry failed: {type(exc).__name__}: {exc}"
                self._log.warning("dead_letter_retry_failed", stream_sequence=seq, error=error)
                # The request is answered (the operator sees the new error); during an
                # outage this fails too, and the request waits for the next leader.
                with contextlib.suppress(Exception):
                    await self.pool.execute(
                        f"UPDATE {table} SET retry_requested_at = NULL, error = $2 WHERE id = $1",
                        row["id"],
                        error[:4000],
                    )
            else:
                EVENTS_APPLIED.labels(*self._labels).inc()
                self._log.info("dead_letter_retried", stream_sequence=seq)

    async def _apply_one_by_one(
        self, conn: asyncpg.Connection, fresh: list[tuple[Msg, Event]]
    ) -> tuple[list[Msg], list[tuple[Msg, int, str]]]:
        good: list[Msg] = []
        rejected: list[tuple[Msg, int, str]] = []
        for msg, event in fresh:
            with event_log_context(event):
                try:
                    async with conn.transaction():  # a savepoint: undoes this event only
                        await self.projection.apply(conn, [event])
                except Exception as exc:
                    if is_transient(exc):
                        raise _Transient(f"{type(exc).__name__}: {exc}") from exc
                    self._log.warning("event_rejected", error=f"{type(exc).__name__}: {exc}")
                    rejected.append((msg, event.sequence, f"{type(exc).__name__}: {exc}"))
                else:
                    good.append(msg)
        return good, rejected

    async def _record_commands(
        self, conn: asyncpg.Connection, fresh: list[tuple[Msg, Event]], good: list[Msg]
    ) -> None:
        """The client commands whose events were applied (``shared.applied_commands``)."""
        applied = {id(msg) for msg in good}
        await self._record_applied(conn, *(event for msg, event in fresh if id(msg) in applied))

    async def _record_applied(self, conn: asyncpg.Connection, *events: Event) -> None:
        """In the transaction that applied ``events``: the commands they belong to."""
        await applied_commands.record(
            conn, schema=self.projection.schema, projection=self.projection.name, events=events
        )

    async def _move_checkpoint(self, conn: asyncpg.Connection, top: int) -> None:
        """Compare-and-set: only from the checkpoint this runner started the batch at."""
        table = f'"{self.projection.schema}".projection_checkpoint'
        moved = await conn.fetch(
            f"WITH moved AS (INSERT INTO {table} (projection, stream_sequence) VALUES ($1, $2) "
            "ON CONFLICT (projection) DO UPDATE SET stream_sequence = EXCLUDED.stream_sequence "
            f"WHERE {table}.stream_sequence = $3 RETURNING stream_sequence) "
            "SELECT pg_notify($4, $5) FROM moved",
            self.projection.name,
            top,
            self.checkpoint,
            self.checkpoint_channel,
            str(top),
        )
        if not moved:
            raise _Transient("the checkpoint moved under this runner: another writer is active")

    async def _dead_letter(self, conn: asyncpg.Connection, msg: Msg, seq: int, error: str) -> None:
        event_id = (msg.headers or {}).get("Nats-Msg-Id")
        await conn.execute(
            f'INSERT INTO "{self.projection.schema}".dead_letter '
            "(projection, stream_sequence, subject, event_id, payload, error) "
            "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (projection, stream_sequence) DO UPDATE "
            "SET error = EXCLUDED.error, created_at = now(), retry_requested_at = NULL, "
            "resolved_at = NULL, resolution = NULL",
            self.projection.name,
            seq,
            msg.subject,
            event_id,
            msg.data,
            error[:4000],
        )

    async def _read_checkpoint(self, conn: asyncpg.Connection) -> int:
        value = await conn.fetchval(
            f'SELECT stream_sequence FROM "{self.projection.schema}".projection_checkpoint '
            "WHERE projection = $1",
            self.projection.name,
        )
        return int(value or 0)

    def _set_checkpoint(self, value: int) -> None:
        if value != self.checkpoint:
            self.checkpoint = value
            reached, self._progress = self._progress, asyncio.Event()
            reached.set()

    # ---- read-your-writes ------------------------------------------------------------------
    async def wait_for(self, sequence: int, *, timeout: float) -> None:  # noqa: ASYNC109
        """Return once this read model has applied ``sequence`` (raises TimeoutError).

        Works on the leader and on a standby replica alike."""
        async with asyncio.timeout(timeout):
            while self.checkpoint < sequence:
                await self._progress.wait()

    # ---- replay ----------------------------------------------------------------------------
    async def reset(self, conn: asyncpg.Connection) -> None:
        schema = self.projection.schema
        async with conn.transaction():
            # Announces the replay to triggers guarding a read model against TRUNCATE (the
            # append-only audit log); the setting ends with this transaction.
            await conn.execute("SELECT set_config('gatehouse.replay', 'on', true)")
            for table in self.projection.tables:
                await conn.execute(f'TRUNCATE "{schema}"."{table}" RESTART IDENTITY CASCADE')
            await conn.execute(
                f'DELETE FROM "{schema}".projection_checkpoint WHERE projection = $1',
                self.projection.name,
            )
            await conn.execute(
                f'DELETE FROM "{schema}".dead_letter WHERE projection = $1', self.projection.name
            )
            await self._forget_attempts(conn)
            await applied_commands.forget(conn, schema=schema, projection=self.projection.name)
        self._attempts = 0
        self._set_checkpoint(0)

    async def replay(self) -> int:
        """Drop the read model and rebuild it from stream sequence 0; returns events applied.

        Takes the leader lock itself and fails if a running service holds it.
        """
        lock_conn = await connect(self.settings.database_url)
        try:
            if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                raise GatehouseError(
                    f"projection {self.projection.schema}.{self.projection.name} is being run by "
                    "another process; stop that service before replaying",
                    code="projection_busy",
                    status=409,
                )
            self.is_leader = True
            await self.reset(lock_conn)
            total = 0
            try:
                while True:
                    applied, caught_up = await self._follow(lock_conn, until_caught_up=True)
                    total += applied
                    if caught_up:
                        return total
            finally:
                with contextlib.suppress(Exception):
                    await self.bus.js.delete_consumer(self.bus.stream, self.durable)
        finally:
            self.is_leader = False
            await _close_quietly(lock_conn)


async def _close_quietly(conn: asyncpg.Connection) -> None:
    try:
        await conn.close(timeout=2)
    except Exception:
        conn.terminate()
