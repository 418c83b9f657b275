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

The table lives in the owning service's schema; its migration creates it with
:func:`table_ddl` (copied as SQL). Workers wake up on ``NOTIFY`` from :func:`enqueue` and poll
as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import nats.errors
import nats.js.errors

from shared.bus import Bus
from shared.db import connect
from shared.logging import get_logger
from shared.projection import ProjectionRunner, consumer_lag, is_transient

log = get_logger(__name__)

_TABLE = re.compile(r'^"?[a-z_][a-z0-9_]*"?\."?[a-z_][a-z0-9_]*"?$')
# Backoff after a failed attempt (transient or not), by attempt number.
RETRY_DELAYS_SECONDS = (0.5, 2.0, 5.0, 15.0, 30.0)
# While the projection lags, the worker looks again after this long.
CATCH_UP_POLL_SECONDS = 0.05


def table_ddl(table: str) -> str:
    """The jobs table (``schema.name``) as a migration creates it."""
    name = _check_table(table).split(".")[-1].strip('"')
    return f"""
CREATE TABLE {table} (
    id text PRIMARY KEY,
    kind text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{{}}',
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done')),
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
) -> bool:
    """Add a pending job (a job id seen before is left alone); True when it is new."""
    inserted = await conn.fetchval(
        f"INSERT INTO {_check_table(table)} (id, kind, payload, enqueued_seq) "
        "VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING RETURNING true",
        job_id,
        kind,
        payload,
        sequence,
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
        f"WHERE id = (SELECT id FROM {table} WHERE status <> 'done' AND kind = ANY($1::text[]) "
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
) -> None:
    """Give the job back after a failed attempt, claimable again after ``delay_seconds``."""
    await db.execute(
        f"UPDATE {_check_table(table)} SET status = 'pending', lease_owner = NULL, "
        "lease_until = NULL, not_before = now() + make_interval(secs => $3), last_error = $4 "
        "WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
        job_id,
        owner,
        delay_seconds,
        error[:2000],
    )


async def next_due_in(
    db: asyncpg.Pool | asyncpg.Connection, table: str, *, kinds: Sequence[str]
) -> float | None:
    """Seconds until a job of ``kinds`` becomes claimable (a retry delay ends, a running
    job's lease expires); None when no job is waiting."""
    seconds = await db.fetchval(
        "SELECT extract(epoch FROM min(CASE WHEN status = 'running' THEN lease_until "
        f"ELSE not_before END) - now()) FROM {_check_table(table)} "
        "WHERE status <> 'done' AND kind = ANY($1::text[])",
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


def retry_delay(attempts: int) -> float:
    return RETRY_DELAYS_SECONDS[min(max(attempts, 1), len(RETRY_DELAYS_SECONDS)) - 1]


Handler = Callable[[Job], Coroutine[Any, Any, None]]


class JobWorker:
    """Claims jobs of ``kinds`` from ``table`` one at a time and runs ``handler``.

    ``caught_up`` gates every claim (see :func:`projection_caught_up`); while it says no, the
    worker waits with ``wait_progress`` (see :func:`progress_waiter`), or polls. A handler
    that raises gives the job back with a delay; after ``max_attempts`` claims, ``give_up``
    runs instead of the handler (and should publish the event that finishes the job).
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

    async def _run_one(self, job: Job) -> None:
        log_ = self._log.bind(job_id=job.id, kind=job.kind, attempt=job.attempts)
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
            delay = retry_delay(job.attempts)
            if is_transient(exc):
                log_.info("job_retry", error=f"{type(exc).__name__}: {exc}", delay=delay)
            else:
                log_.exception("job_failed", error=type(exc).__name__, delay=delay)
            with contextlib.suppress(Exception):
                await release(
                    self.pool,
                    self.table,
                    job.id,
                    owner=self.owner,
                    delay_seconds=delay,
                    error=f"{type(exc).__name__}: {exc}",
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
