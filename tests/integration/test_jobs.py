"""shared/jobs.py against a real PostgreSQL: enqueue, claim with SKIP LOCKED, leases, the
worker loop (wake-up, retries, give-up, the catch-up gate, a lost lease)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared import jobs
from shared.db import create_pool, ensure_database
from shared.settings import Settings
from tests.conftest import wait_until

TABLE = "jobtest.jobs"


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    await ensure_database(settings.database_url)
    pool = await create_pool(settings.database_url, min_size=1, max_size=6)
    async with pool.acquire() as conn:
        await conn.execute("CREATE SCHEMA jobtest")
        await conn.execute(jobs.table_ddl(TABLE))
    yield pool
    await pool.close()


async def _enqueue(pool: asyncpg.Pool, job_id: str, *, seq: int, kind: str = "k") -> bool:
    async with pool.acquire() as conn, conn.transaction():
        return await jobs.enqueue(
            conn, TABLE, job_id=job_id, kind=kind, payload={"n": seq}, sequence=seq
        )


async def _row(pool: asyncpg.Pool, job_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(f"SELECT * FROM {TABLE} WHERE id = $1", job_id)
    assert row is not None
    return row


async def test_enqueue_claim_finish(pool: asyncpg.Pool) -> None:
    assert await _enqueue(pool, "a", seq=1)
    assert not await _enqueue(pool, "a", seq=9)  # the same job again: left alone
    assert await _enqueue(pool, "b", seq=2)
    assert await _enqueue(pool, "c", seq=3, kind="other")

    first = await jobs.claim(pool, TABLE, kinds=["k"], owner="w1", lease_seconds=30)
    second = await jobs.claim(pool, TABLE, kinds=["k"], owner="w2", lease_seconds=30)
    assert first is not None and second is not None
    assert (first.id, first.payload, first.attempts, first.enqueued_seq) == ("a", {"n": 1}, 1, 1)
    assert second.id == "b"
    assert await jobs.claim(pool, TABLE, kinds=["k"], owner="w3", lease_seconds=30) is None

    assert await jobs.renew(pool, TABLE, "a", owner="w1", lease_seconds=30) == "ours"
    assert await jobs.renew(pool, TABLE, "a", owner="w2", lease_seconds=30) == "lost"
    async with pool.acquire() as conn:
        await jobs.finish(conn, TABLE, "a", sequence=10)
    assert await jobs.renew(pool, TABLE, "a", owner="w1", lease_seconds=30) == "done"
    row = await _row(pool, "a")
    assert (row["status"], row["finished_seq"], row["lease_owner"]) == ("done", 10, None)
    await jobs.complete(pool, TABLE, "b", owner="w2")
    assert (await _row(pool, "b"))["status"] == "done"


async def test_an_expired_lease_is_taken_over(pool: asyncpg.Pool) -> None:
    await _enqueue(pool, "a", seq=1)
    claimed = await jobs.claim(pool, TABLE, kinds=["k"], owner="dead", lease_seconds=0.05)
    assert claimed is not None
    await asyncio.sleep(0.1)
    again = await jobs.claim(pool, TABLE, kinds=["k"], owner="alive", lease_seconds=30)
    assert again is not None and again.id == "a" and again.attempts == 2
    assert await jobs.renew(pool, TABLE, "a", owner="dead", lease_seconds=30) == "lost"


async def test_concurrent_claims_never_share_a_job(pool: asyncpg.Pool) -> None:
    for i in range(40):
        await _enqueue(pool, f"j{i:02d}", seq=i + 1)
    claimed = await asyncio.gather(
        *(jobs.claim(pool, TABLE, kinds=["k"], owner=f"w{i}", lease_seconds=30) for i in range(50))
    )
    ids = [job.id for job in claimed if job is not None]
    assert sorted(ids) == [f"j{i:02d}" for i in range(40)]


async def test_release_delays_the_next_claim(pool: asyncpg.Pool) -> None:
    await _enqueue(pool, "a", seq=1)
    assert await jobs.claim(pool, TABLE, kinds=["k"], owner="w", lease_seconds=30)
    await jobs.release(pool, TABLE, "a", owner="w", delay_seconds=60, error="boom")
    row = await _row(pool, "a")
    assert (row["status"], row["last_error"]) == ("pending", "boom")
    assert await jobs.claim(pool, TABLE, kinds=["k"], owner="w", lease_seconds=30) is None


def _worker(
    pool: asyncpg.Pool,
    settings: Settings,
    handler: jobs.Handler,
    *,
    caught_up: bool | asyncio.Event = True,
    give_up: jobs.Handler | None = None,
    lease_seconds: float = 30.0,
    max_attempts: int = 5,
) -> jobs.JobWorker:
    async def gate() -> bool:
        return caught_up.is_set() if isinstance(caught_up, asyncio.Event) else caught_up

    return jobs.JobWorker(
        name="test",
        pool=pool,
        database_url=settings.database_url,
        table=TABLE,
        kinds=["k"],
        handler=handler,
        caught_up=gate,
        owner="test-worker",
        lease_seconds=lease_seconds,
        poll_seconds=5.0,  # long: the NOTIFY must be what wakes the worker
        max_attempts=max_attempts,
        give_up=give_up,
    )


async def test_the_worker_runs_jobs_as_they_are_enqueued(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    done: list[str] = []

    async def handler(job: jobs.Job) -> None:
        done.append(job.id)

    worker = _worker(pool, settings, handler)
    worker.start()
    try:
        await asyncio.sleep(0.3)  # the worker is idle, listening
        for i in range(3):
            await _enqueue(pool, f"j{i}", seq=i + 1)

        async def all_done() -> bool:
            return len(done) == 3

        await wait_until(all_done, timeout=4.0)  # well inside the 5 s poll: NOTIFY woke it
        assert done == ["j0", "j1", "j2"]
        statuses = {r["status"] for r in await pool.fetch(f"SELECT status FROM {TABLE}")}
        assert statuses == {"done"}
    finally:
        await worker.stop()


async def test_the_worker_waits_for_its_projection(pool: asyncpg.Pool, settings: Settings) -> None:
    done: list[str] = []
    caught_up = asyncio.Event()

    async def handler(job: jobs.Job) -> None:
        done.append(job.id)

    await _enqueue(pool, "a", seq=1)
    worker = _worker(pool, settings, handler, caught_up=caught_up)
    worker.start()
    try:
        await asyncio.sleep(0.3)
        assert done == [] and (await _row(pool, "a"))["status"] == "pending"
        caught_up.set()

        async def ran() -> bool:
            return done == ["a"]

        await wait_until(ran)
    finally:
        await worker.stop()


async def test_a_failing_job_is_retried_then_given_up(
    pool: asyncpg.Pool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "RETRY_DELAYS_SECONDS", (0.01,))
    attempts: list[int] = []
    gave_up: list[int] = []

    async def handler(job: jobs.Job) -> None:
        attempts.append(job.attempts)
        raise RuntimeError("always broken")

    async def give_up(job: jobs.Job) -> None:
        gave_up.append(job.attempts)

    await _enqueue(pool, "a", seq=1)
    worker = _worker(pool, settings, handler, give_up=give_up, max_attempts=3)
    worker.start()
    try:

        async def finished() -> bool:
            return (await _row(pool, "a"))["status"] == "done"

        await wait_until(finished)
        assert attempts == [1, 2, 3] and gave_up == [4]
        assert (await _row(pool, "a"))["last_error"] == "RuntimeError: always broken"
    finally:
        await worker.stop()


async def test_a_lost_lease_stops_the_handler(pool: asyncpg.Pool, settings: Settings) -> None:
    started, stopped = asyncio.Event(), asyncio.Event()

    async def handler(job: jobs.Job) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.set()
            raise

    await _enqueue(pool, "a", seq=1)
    worker = _worker(pool, settings, handler, lease_seconds=0.3)
    worker.start()
    try:
        await asyncio.wait_for(started.wait(), timeout=5)
        # Another worker takes the job over (as after an expired lease).
        await pool.execute(f"UPDATE {TABLE} SET lease_owner = 'other' WHERE id = 'a'")
        await asyncio.wait_for(stopped.wait(), timeout=5)
        assert (await _row(pool, "a"))["lease_owner"] == "other"
    finally:
        await worker.stop()


async def test_a_job_finished_by_its_event_is_not_cancelled(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    release = asyncio.Event()
    finished: list[str] = []

    async def handler(job: jobs.Job) -> None:
        async with pool.acquire() as conn:
            await jobs.finish(conn, TABLE, job.id, sequence=99)  # its outcome was applied
        await release.wait()
        finished.append(job.id)

    await _enqueue(pool, "a", seq=1)
    worker = _worker(pool, settings, handler, lease_seconds=0.3)
    worker.start()
    try:
        await asyncio.sleep(0.5)  # more than one renewal interval
        release.set()

        async def ran() -> bool:
            return finished == ["a"]

        await wait_until(ran)
    finally:
        await worker.stop()


def test_table_names_are_checked() -> None:
    with pytest.raises(ValueError):
        jobs.table_ddl("jobs; DROP TABLE x")
    assert jobs.channel_for("scanner.jobs") == "gatehouse_jobs_scanner_jobs"
    assert "CREATE TABLE scanner.jobs" in jobs.table_ddl("scanner.jobs")


# ---- never retried forever -------------------------------------------------------------------
async def _status(pool: asyncpg.Pool, job_id: str) -> str:
    return str((await _row(pool, job_id))["status"])


async def _until_status(pool: asyncpg.Pool, job_id: str, status: str) -> None:
    async def reached() -> bool:
        return await _status(pool, job_id) == status

    await wait_until(reached)


async def test_a_job_that_always_fails_ends_failed_after_the_bound_until_retried(
    pool: asyncpg.Pool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "RETRY_DELAYS_SECONDS", (0.01,))
    failed_before = _failed_total()
    attempts: list[int] = []
    fixed = False

    async def handler(job: jobs.Job) -> None:
        attempts.append(job.attempts)
        if not fixed:
            raise RuntimeError(f"broken on attempt {job.attempts}")

    await _enqueue(pool, "a", seq=1)
    worker = _worker(pool, settings, handler, max_attempts=3)  # no give_up
    worker.start()
    try:
        await _until_status(pool, "a", "failed")
        row = await _row(pool, "a")
        assert attempts == [1, 2, 3] and row["attempts"] == 3
        assert row["last_error"].startswith("attempt 3 of 3: RuntimeError: broken on attempt 3")
        assert row["lease_owner"] is None
        assert _failed_total() == failed_before + 1
        # Never claimed again: not by this worker, nor by anyone.
        assert await jobs.claim(pool, TABLE, kinds=["k"], owner="x", lease_seconds=30) is None
        assert await jobs.next_due_in(pool, TABLE, kinds=["k"]) is None
        [listed] = await jobs.failed_jobs(pool, "jobtest")
        assert (listed.table, listed.id, listed.status, listed.attempts) == (
            TABLE,
            "a",
            "failed",
            3,
        )

        # The operator fixes the cause and retries: pending, attempts reset, run at once.
        fixed = True
        async with pool.acquire() as conn:
            assert await jobs.retry_failed(conn, TABLE, "a")
            assert not await jobs.retry_failed(conn, TABLE, "a")  # not failed any more
        await _until_status(pool, "a", "done")
        assert attempts == [1, 2, 3, 1]
        assert await jobs.failed_jobs(pool, "jobtest") == []
    finally:
        await worker.stop()


async def test_a_failed_job_can_be_dropped(
    pool: asyncpg.Pool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "RETRY_DELAYS_SECONDS", (0.01,))

    async def handler(job: jobs.Job) -> None:
        raise ValueError("no")

    await _enqueue(pool, "a", seq=1)
    worker = _worker(pool, settings, handler, max_attempts=1)
    worker.start()
    try:
        await _until_status(pool, "a", "failed")
        async with pool.acquire() as conn:
            assert await jobs.drop_failed(conn, TABLE, "a")
            assert not await jobs.drop_failed(conn, TABLE, "a")
        assert await _status(pool, "a") == "dropped"
        assert await jobs.failed_jobs(pool, "jobtest") == []
        assert [j.id for j in await jobs.failed_jobs(pool, "jobtest", dropped=True)] == ["a"]
        # Its outcome arriving later still finishes it.
        async with pool.acquire() as conn:
            await jobs.finish(conn, TABLE, "a", sequence=5)
        assert await _status(pool, "a") == "done"
    finally:
        await worker.stop()


async def test_a_give_up_that_raises_ends_failed(
    pool: asyncpg.Pool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "RETRY_DELAYS_SECONDS", (0.01,))
    ran: list[tuple[str, int]] = []

    async def handler(job: jobs.Job) -> None:
        ran.append(("handler", job.attempts))
        raise RuntimeError("broken")

    async def give_up(job: jobs.Job) -> None:
        ran.append(("give_up", job.attempts))
        raise RuntimeError("cannot even give up")

    await _enqueue(pool, "a", seq=1)
    worker = _worker(pool, settings, handler, give_up=give_up, max_attempts=2)
    worker.start()
    try:
        await _until_status(pool, "a", "failed")
        assert ran == [("handler", 1), ("handler", 2), ("give_up", 3), ("give_up", 4)]
        row = await _row(pool, "a")
        assert row["attempts"] == 4
        assert row["last_error"].startswith("attempt 4 of 4: RuntimeError: cannot even give up")
    finally:
        await worker.stop()


async def test_a_worker_dying_under_the_job_counts_toward_the_bound(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    ran: list[int] = []

    async def handler(job: jobs.Job) -> None:
        ran.append(job.attempts)

    await _enqueue(pool, "a", seq=1)
    # Two workers claim it and die (they never renew nor release): their leases expire.
    for owner in ("dead-1", "dead-2"):
        assert await jobs.claim(pool, TABLE, kinds=["k"], owner=owner, lease_seconds=0.05)
        await pool.execute(f"UPDATE {TABLE} SET lease_until = now() - interval '1 second'")
    worker = _worker(pool, settings, handler, max_attempts=2)
    worker.start()
    try:
        await _until_status(pool, "a", "failed")
        assert ran == []  # the third claim is beyond the bound: failed untried
        row = await _row(pool, "a")
        assert row["attempts"] == 3
        assert "the worker stopped during attempt 2 of 2" in row["last_error"]
    finally:
        await worker.stop()


async def test_a_transient_failure_while_the_database_answers_counts(
    pool: asyncpg.Pool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What looks like an outage fails the job when the database answers all along."""
    monkeypatch.setattr(jobs, "RETRY_DELAYS_SECONDS", (0.01,))

    async def handler(job: jobs.Job) -> None:
        raise ConnectionResetError("looks like an outage")

    await _enqueue(pool, "a", seq=1)
    worker = _worker(pool, settings, handler, max_attempts=2)
    worker.start()
    try:
        await _until_status(pool, "a", "failed")
        assert (await _row(pool, "a"))["attempts"] == 2
    finally:
        await worker.stop()


async def test_a_transient_failure_during_an_outage_is_not_counted(
    pool: asyncpg.Pool, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "RETRY_DELAYS_SECONDS", (0.01,))
    attempts: list[int] = []
    outage = True

    async def handler(job: jobs.Job) -> None:
        attempts.append(job.attempts)
        if outage:
            raise ConnectionResetError("the bus went away")

    await _enqueue(pool, "a", seq=1)
    # The worker's pool is connected, but a new connection finds no database (a port no
    # one listens on): what the probe sees while PostgreSQL is away.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    away = settings.with_(database_url=f"postgresql://nobody@127.0.0.1:{port}/none")
    worker = _worker(pool, away, handler, max_attempts=2)
    worker.start()
    try:

        async def retried_past_the_bound() -> bool:
            return len(attempts) >= 5

        await wait_until(retried_past_the_bound)
        assert await _status(pool, "a") != "failed"
        assert max(attempts) == 2  # the uncounted attempt is given back
        outage = False
        await _until_status(pool, "a", "done")
    finally:
        await worker.stop()


def _failed_total() -> float:
    return sum(
        sample.value
        for metric in jobs.JOBS_FAILED.collect()
        for sample in metric.samples
        if sample.name == "gatehouse_jobs_failed_total" and sample.labels["table"] == TABLE
    )
