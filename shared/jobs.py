"""Jobs: long work driven by events, run off the request path by a worker loop.

* **Rows come from a projection.** The projection that sees the event asking for work
  (``scan.queued``, ``vulndb.updated`` …) calls :func:`enqueue` in its transaction, and the
  one that sees the event saying the work is done (``scan.completed`` …) calls
  :func:`finish`. The table is part of the read model: a replay from sequence 0 rebuilds it,
  and work whose outcome is already on the stream comes back finished.
* **Claims wait for the projection.** A :class:`JobWorker` claims only while the projection
  feeding its table has caught up with the stream (:func:`projection_caught_up`): a job
  whose outcome event is on the stream but not yet applied is never claimed.
* **A claim is a lease** (``FOR UPDATE SKIP LOCKED``, renewed while the job runs). A worker
  that dies stops renewing; once the lease expires another claim takes the job over. A
  handler must therefore be idempotent: deterministic event ids (JetStream drops a
  re-published id inside its duplicate window) and a look at the read model before acting.
* After ``max_attempts`` claims a job is handed to ``give_up`` (publish a failure event)
  instead of running again: a job that crashes its worker must not crash every worker.
* **Never retried forever.** A job without ``give_up`` that failed ``max_attempts`` claims
  (``GATEHOUSE_JOB_MAX_ATTEMPTS``), or whose ``give_up`` failed as many claims again, ends
  ``failed``: never claimed again, ``last_error`` kept, ``gatehouse_jobs_failed_total``
  raised, and the service's ``/health/ready`` says ``degraded`` naming it until an operator
  answers (``gatehouse jobs retry|drop``). A claim counts whether the attempt raised or the
  worker died under it (its lease expired). A transient error (a lost connection) counts
  only while the database and the bus answer: an outage is waited out, never failed.
* ``failed`` and ``dropped``, like ``running`` and ``attempts``, record how the work went,
  not what the stream says: a job's outcome event never came, so a replay rebuilds it
  ``pending`` and the worker tries it again (up to the bound), as after any fresh start.

The table lives in the owning service's schema; its migration creates it with
:func:`table_ddl` (copied as SQL). Workers wake up on ``NOTIFY`` from :func:`enqueue` and poll
as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import nats.errors
import nats.js.errors

from shared.bus import Bus
from shared.db import connect
from shared.logging import get_logger
from shared.metrics import JOBS_FAILED
from shared.projection import ProjectionRunner, consumer_lag, is_transient

log = get_logger(__name__)

_TABLE = re.compile(r'^"?[a-z_][a-z0-9_]*"?\."?[a-z_][a-z0-9_]*"?$')
# Backoff after a failed attempt (transient or not), by attempt number.
RETRY_DELAYS_SECONDS = (0.5, 2.0, 5.0, 15.0, 30.0)
# While the projection lags, the worker looks again after this long.
CATCH_UP_POLL_SECONDS = 0.05
# How long the check that the database and the bus answer may take.
PROBE_TIMEOUT_SECONDS = 5.0
MAX_ERROR_CHARS = 2000


def table_ddl(table: str) -> str:
    """The jobs table (``schema.name``) as a migration creates it."""
    name = _check_table(table).split(".")[-1].strip('"')
    return f"""
CREATE TABLE {table} (
    id text PRIMARY KEY,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{{}}',
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'done', 'failed', 'dropped')),
    enqueued_seq bigint NOT NULL,
    finished_seq bigint,
    attempts integer NOT NULL DEFAULT 0,
    lease_owner text,
    lease_until timestamptz,
    not_before timestamptz,
    last_error text
);
CREATE INDEX {name}_open ON {table} (enqueued_seq) WHERE status <> 'done';
"""


# The states a worker may still claim; 'failed' and 'dropped' wait for an operator.
_OPEN = "status IN ('pending', 'running')"


def channel_for(table: str) -> str:
    """The NOTIFY channel on which :func:`enqueue` announces new jobs of ``table``."""
    return "gatehouse_jobs_" + re.sub(r"[^a-z0-9_]", "_", _check_table(table).replace('"', ""))


def _check_table(table: str) -> str:
    if not _TABLE.match(table):
        raise ValueError(f"jobs table must be schema.name: {table!r}")
    return table


@dataclass(frozen=True, kw_only=True)
class Job:
    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int  # including this claim
    enqueued_seq: int


# ---- the projection's side (inside its transaction) ----------------------------------------
async def enqueue(
    conn: asyncpg.Connection,
    table: str,
    *,
    job_id: str,
    kind: str,
    payload: dict[str, Any],
    sequence: int,
    not_before: dt.datetime | None = None,
) -> bool:
    """Add a pending job (a job id seen before is left alone); True when it is new.
    ``not_before``: not claimed before then (a time taken from an event, e.g. when a block
    expires, so a replay enqueues the same job)."""
    inserted = await conn.fetchval(
        f"INSERT INTO {_check_table(table)} (id, kind, payload, enqueued_seq, not_before) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING RETURNING true",
        job_id,
        kind,
        payload,
        sequence,
        not_before,
    )
    if inserted:
        await conn.execute("SELECT pg_notify($1, $2)", channel_for(table), job_id)
    return bool(inserted)


async def finish(conn: asyncpg.Connection, table: str, job_id: str, *, sequence: int) -> None:
    """The job's outcome is on the stream: it is done, whoever holds its lease."""
    await conn.execute(
        f"UPDATE {_check_table(table)} SET status = 'done', finished_seq = $2, "
        "lease_owner = NULL, lease_until = NULL WHERE id = $1 AND status <> 'done'",
        job_id,
        sequence,
    )


# ---- the worker's side ---------------------------------------------------------------------
async def claim(
    db: asyncpg.Pool | asyncpg.Connection,
    table: str,
    *,
    kinds: Sequence[str],
    owner: str,
    lease_seconds: float,
) -> Job | None:
    """The oldest claimable job of ``kinds`` (pending, or running with an expired lease),
    leased to ``owner``; None when there is none."""
    table = _check_table(table)
    row = await db.fetchrow(
        f"UPDATE {table} SET status = 'running', attempts = attempts + 1, lease_owner = $2, "
        "lease_until = now() + make_interval(secs => $3), not_before = NULL "
        f"WHERE id = (SELECT id FROM {table} WHERE {_OPEN} AND kind = ANY($1::text[]) "
        "AND (status = 'pending' OR lease_until < now()) "
        "AND (not_before IS NULL OR not_before <= now()) "
        "ORDER BY enqueued_seq, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
        "RETURNING id, kind, payload, attempts, enqueued_seq",
        list(kinds),
        owner,
        lease_seconds,
    )
    if row is None:
        return None
    return Job(
        id=row["id"],
        kind=row["kind"],
        payload=dict(row["payload"] or {}),
        attempts=row["attempts"],
        enqueued_seq=row["enqueued_seq"],
    )


async def renew(
    db: asyncpg.Pool | asyncpg.Connection,
    table: str,
    job_id: str,
    *,
    owner: str,
    lease_seconds: float,
) -> str:
    """Extend the lease: "ours", "done" (its outcome was applied) or "lost" (another worker
    took it over after our lease expired)."""
    row = await db.fetchrow(
        f"WITH renewed AS (UPDATE {_check_table(table)} "
        "SET lease_until = now() + make_interval(secs => $3) "
        "WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING id) "
        f"SELECT (SELECT count(*) FROM renewed) AS renewed, status FROM {table} WHERE id = $1",
        job_id,
        owner,
        lease_seconds,
    )
    if row is None:
        return "lost"
    if row["renewed"]:
        return "ours"
    return "done" if row["status"] == "done" else "lost"


async def complete(
    db: asyncpg.Pool | asyncpg.Connection, table: str, job_id: str, *, owner: str
) -> None:
    """The handler returned: done (the projection may have said so already)."""
    await db.execute(
        f"UPDATE {_check_table(table)} SET status = 'done', lease_owner = NULL, "
        "lease_until = NULL WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        job_id,
        owner,
    )


async def release(
    db: asyncpg.Pool | asyncpg.Connection,
    table: str,
    job_id: str,
    *,
    owner: str,
    delay_seconds: float,
    error: str,
    uncounted: bool = False,
) -> None:
    """Give the job back after a failed attempt, claimable again after ``delay_seconds``;
    ``uncounted``: the attempt does not count toward the bound (an outage)."""
    await db.execute(
        f"UPDATE {_check_table(table)} SET status = 'pending', lease_owner = NULL, "
        "lease_until = NULL, not_before = now() + make_interval(secs => $3), last_error = $4, "
        "attempts = CASE WHEN $5 THEN greatest(attempts - 1, 0) ELSE attempts END "
        "WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        job_id,
        owner,
        delay_seconds,
        error[:MAX_ERROR_CHARS],
        uncounted,
    )


async def fail(
    db: asyncpg.Pool | asyncpg.Connection, table: str, job_id: str, *, owner: str, error: str
) -> bool:
    """The job exhausted its attempts: ``failed`` until an operator retries or drops it.
    ``error`` comes first in ``last_error``, the previous one after it."""
    failed = await db.fetchval(
        f"UPDATE {_check_table(table)} SET status = 'failed', lease_owner = NULL, "
        "lease_until = NULL, not_before = NULL, "
        "last_error = left($3 || coalesce(' | before: ' || last_error, ''), $4) "
        "WHERE id = $1 AND lease_owner = $2 AND status = 'running' RETURNING true",
        job_id,
        owner,
        error,
        MAX_ERROR_CHARS,
    )
    return bool(failed)


# ---- the operator's side (`gatehouse jobs`, readiness) -------------------------------------
@dataclass(frozen=True, kw_only=True)
class FailedJob:
    table: str  # schema.name
    id: str
    kind: str
    status: str  # failed, or dropped
    attempts: int
    enqueued_seq: int
    last_error: str | None


async def job_tables(db: asyncpg.Pool | asyncpg.Connection, schema: str) -> list[str]:
    """The jobs tables of ``schema`` (``schema.name``), found by their columns."""
    rows = await db.fetch(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = $1 "
        "AND column_name IN ('lease_owner', 'enqueued_seq', 'not_before') "
        "GROUP BY table_name HAVING count(*) = 3 ORDER BY table_name",
        schema,
    )
    return [f"{schema}.{r['table_name']}" for r in rows]


async def failed_jobs(
    db: asyncpg.Pool | asyncpg.Connection, schema: str, *, dropped: bool = False
) -> list[FailedJob]:
    """The failed jobs of every jobs table of ``schema`` (and the dropped ones too)."""
    found: list[FailedJob] = []
    for table in await job_tables(db, schema):
        rows = await db.fetch(
            f"SELECT id, kind, status, attempts, enqueued_seq, last_error FROM {table} "
            "WHERE status = 'failed' OR ($1 AND status = 'dropped') ORDER BY enqueued_seq, id",
            dropped,
        )
        found += [
            FailedJob(
                table=table,
                id=r["id"],
                kind=r["kind"],
                status=r["status"],
                attempts=r["attempts"],
                enqueued_seq=r["enqueued_seq"],
                last_error=r["last_error"],
            )
            for r in rows
        ]
    return found


async def retry_failed(conn: asyncpg.Connection, table: str, job_id: str) -> bool:
    """A failed (or dropped) job back to ``pending`` with its attempts reset; False when
    there is no such one. The worker is woken at once."""
    retried = await conn.fetchval(
        f"UPDATE {_check_table(table)} SET status = 'pending', attempts = 0, "
        "not_before = NULL WHERE id = $1 AND status IN ('failed', 'dropped') RETURNING true",
        job_id,
    )
    if retried:
        await conn.execute("SELECT pg_notify($1, $2)", channel_for(table), job_id)
    return bool(retried)


async def drop_failed(conn: asyncpg.Connection, table: str, job_id: str) -> bool:
    """Give up on a failed job: ``dropped`` (kept, for the record), out of readiness."""
    dropped = await conn.fetchval(
        f"UPDATE {_check_table(table)} SET status = 'dropped' "
        "WHERE id = $1 AND status = 'failed' RETURNING true",
        job_id,
    )
    return bool(dropped)


async def next_due_in(
    db: asyncpg.Pool | asyncpg.Connection, table: str, *, kinds: Sequence[str]
) -> float | None:
    """Seconds until a job of ``kinds`` becomes claimable (a retry delay ends, a running
    job's lease expires); None when no job is waiting."""
    seconds = await db.fetchval(
        "SELECT extract(epoch FROM min(CASE WHEN status = 'running' THEN lease_until "
        f"ELSE not_before END) - now()) FROM {_check_table(table)} "
        f"WHERE {_OPEN} AND kind = ANY($1::text[])",
        list(kinds),
    )
    return None if seconds is None else max(float(seconds), 0.0)


async def projection_caught_up(bus: Bus, runner: ProjectionRunner) -> bool:
    """True when ``runner``'s projection has applied every event of its subjects now on the
    stream (its durable consumer has nothing pending beyond the checkpoint)."""
    try:
        info = await bus.js.consumer_info(bus.stream, runner.durable)
    except (nats.js.errors.NotFoundError, nats.errors.Error, TimeoutError):
        return False  # not subscribed yet (or being recreated), or the bus is away
    delivered = info.delivered.stream_seq if info.delivered else 0
    lag = consumer_lag(
        num_pending=int(info.num_pending or 0),
        num_ack_pending=int(info.num_ack_pending or 0),
        delivered_stream_seq=int(delivered or 0),
        checkpoint=runner.checkpoint,
    )
    return lag == 0


def progress_waiter(runner: ProjectionRunner) -> Callable[[float], Awaitable[None]]:
    """Waits (at most ``timeout`` seconds) until ``runner`` applies its next batch: the
    worker's gate wakes the moment the projection catches up, instead of polling."""

    async def wait(timeout: float) -> None:  # noqa: ASYNC109 - a bound, not a cancel scope
        with contextlib.suppress(TimeoutError):
            await runner.wait_for(runner.checkpoint + 1, timeout=timeout)

    return wait


def worker_owner() -> str:
    """A worker's claim name: host, process and a random part (two workers of one process
    never share one)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def retry_delay(attempts: int) -> float:
    return RETRY_DELAYS_SECONDS[min(max(attempts, 1), len(RETRY_DELAYS_SECONDS)) - 1]


Handler = Callable[[Job], Coroutine[Any, Any, None]]


class JobWorker:
    """Claims jobs of ``kinds`` from ``table`` one at a time and runs ``handler``.

    ``caught_up`` gates every claim (see :func:`projection_caught_up`); while it says no, the
    worker waits with ``wait_progress`` (see :func:`progress_waiter`), or polls. A handler
    that raises gives the job back with a delay; after ``max_attempts`` claims, ``give_up``
    runs instead of the handler (and should publish the event that finishes the job), for
    at most ``max_attempts`` claims more. A job that fails its last allowed claim, or whose
    worker died during it, ends ``failed`` (see the module's docstring). ``bus``: the bus
    the work needs, probed with the database before a transient failure is counted.
    """

    def __init__(
        self,
        *,
        name: str,
        pool: asyncpg.Pool,
        database_url: str,
        table: str,
        kinds: Sequence[str],
        handler: Handler,
        caught_up: Callable[[], Awaitable[bool]],
        wait_progress: Callable[[float], Awaitable[None]] | None = None,
        owner: str,
        lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        max_attempts: int = 5,
        give_up: Handler | None = None,
        bus: Bus | None = None,
    ) -> None:
        self.name = name
        self.pool = pool
        self.database_url = database_url
        self.table = _check_table(table)
        self.kinds = tuple(kinds)
        self.handler = handler
        self.caught_up = caught_up
        self.wait_progress = wait_progress
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.max_attempts = max_attempts
        self.give_up = give_up
        self.bus = bus
        self.running: Job | None = None
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._log = log.bind(worker=name, owner=owner)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"jobs:{self.name}"),
            asyncio.create_task(self._listen(), name=f"jobs-listen:{self.name}"),
        ]

    async def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def wake(self) -> None:
        self._wakeup.set()

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout=seconds)
        self._wakeup.clear()

    async def _listen(self) -> None:
        """LISTEN for new jobs; on any trouble, reconnect later (polling covers the gap)."""
        channel = channel_for(self.table)
        while not self._stopping.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await connect(self.database_url)
                await conn.add_listener(channel, lambda *_: self._wakeup.set())
                # Notifications arrive as callbacks; meanwhile watch for the connection closing.
                while not conn.is_closed():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), timeout=self.poll_seconds)
                    if self._stopping.is_set():
                        return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._log.info("jobs_listen_retry", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(self.poll_seconds)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not await self.caught_up():
                    if self.wait_progress is not None:
                        await self.wait_progress(CATCH_UP_POLL_SECONDS)
                    else:
                        await asyncio.sleep(CATCH_UP_POLL_SECONDS)
                    continue
                job = await claim(
                    self.pool,
                    self.table,
                    kinds=self.kinds,
                    owner=self.owner,
                    lease_seconds=self.lease_seconds,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._log.warning("jobs_claim_failed", error=f"{type(exc).__name__}: {exc}")
                await self._wait(self.poll_seconds)
                continue
            if job is None:
                await self._wait(await self._idle_seconds())
                continue
            await self._run_one(job)

    async def _idle_seconds(self) -> float:
        """Until the next poll, or sooner when a delayed job or an expired lease is due."""
        try:
            due = await next_due_in(self.pool, self.table, kinds=self.kinds)
        except asyncio.CancelledError:
            raise
        except Exception:
            return self.poll_seconds
        return self.poll_seconds if due is None else min(self.poll_seconds, due + 0.01)

    @property
    def attempts_allowed(self) -> int:
        """Claims of one job before it ends ``failed``: the handler's, then give_up's."""
        return self.max_attempts * (2 if self.give_up is not None else 1)

    async def _run_one(self, job: Job) -> None:
        log_ = self._log.bind(job_id=job.id, kind=job.kind, attempt=job.attempts)
        if job.attempts > self.attempts_allowed:
            # The worker died during the last allowed claim (its lease expired).
            await self._fail(
                job,
                f"the worker stopped during attempt {job.attempts - 1} of "
                f"{self.attempts_allowed} (its lease expired)",
            )
            return
        self.running = job
        work = self.handler
        if job.attempts > self.max_attempts and self.give_up is not None:
            log_.warning("job_given_up")
            work = self.give_up
        task = asyncio.create_task(work(job), name=f"job:{job.id}")
        keeper = asyncio.create_task(self._keep_lease(job, task), name=f"lease:{job.id}")
        started = dt.datetime.now(dt.UTC)
        try:
            await task
        except asyncio.CancelledError:
            if self._stopping.is_set():
                raise
            log_.warning("job_lease_lost")  # another worker owns it now
            return
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            delay = retry_delay(job.attempts)
            transient = is_transient(exc)
            last = job.attempts >= self.attempts_allowed
            # An outage is waited out: the attempt is not counted, so it never fails a job.
            uncounted = last and transient and not await self._dependencies_answer()
            if last and not uncounted:
                self.running = None
                await self._fail(job, f"attempt {job.attempts} of {self.attempts_allowed}: {error}")
                return
            if transient:
                log_.info("job_retry", error=error, delay=delay, uncounted=uncounted)
            else:
                log_.exception("job_attempt_failed", error=type(exc).__name__, delay=delay)
            with contextlib.suppress(Exception):
                await release(
                    self.pool,
                    self.table,
                    job.id,
                    owner=self.owner,
                    delay_seconds=delay,
                    error=error,
                    uncounted=uncounted,
                )
            return
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            self.running = None
        with contextlib.suppress(Exception):
            await complete(self.pool, self.table, job.id, owner=self.owner)
        elapsed = (dt.datetime.now(dt.UTC) - started).total_seconds()
        log_.info("job_done", seconds=round(elapsed, 3))

    async def _fail(self, job: Job, error: str) -> None:
        try:
            failed = await fail(self.pool, self.table, job.id, owner=self.owner, error=error)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is away: the lease expires, the next claim
            self._log.warning("job_fail_not_recorded", job_id=job.id, error=repr(exc))
            return
        if failed:
            JOBS_FAILED.labels(self.table, job.kind).inc()
            self._log.error(
                "job_failed",
                job_id=job.id,
                kind=job.kind,
                table=self.table,
                attempts=job.attempts,
                error=error[:500],
                hint="gatehouse jobs list",
            )

    async def _dependencies_answer(self) -> bool:
        """Do the database (on a connection of its own) and the bus answer? Then a job that
        keeps failing "transiently" is failing on its own account."""
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                conn = await connect(self.database_url)
                try:
                    await conn.fetchval("SELECT 1")
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
                if self.bus is not None:
                    # While reconnecting, the client would buffer the request and answer later.
                    if not self.bus.connected:
                        raise ConnectionError("the bus is not connected")
                    await self.bus.js.stream_info(self.bus.stream)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.info("jobs_probe_failed", error=f"{type(exc).__name__}: {exc}")
            return False
        return True

    async def _keep_lease(self, job: Job, task: asyncio.Task[None]) -> None:
        interval = self.lease_seconds / 3
        while not task.done():
            await asyncio.sleep(interval)
            try:
                state = await renew(
                    self.pool,
                    self.table,
                    job.id,
                    owner=self.owner,
                    lease_seconds=self.lease_seconds,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: keep trying while the lease lasts
                self._log.info("job_lease_renew_failed", error=f"{type(exc).__name__}: {exc}")
                continue
            if state == "done":
                return
            if state == "lost":
                task.cancel()
                return
