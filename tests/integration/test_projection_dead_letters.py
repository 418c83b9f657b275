"""Bounded retries against real NATS JetStream and PostgreSQL: an event whose application
takes its database connection down (a "transient" error every time) is dead-lettered after
``projection_max_attempts`` tries while the events behind it are applied; the count of tries
survives a restart; an operator's retry applies it again; an outage dead-letters nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
import pytest

from contracts.envelope import Event
from contracts.events.identity import ProjectCreated
from shared.projection import drop_dead_letter, outstanding_dead_letters, request_retry
from shared.settings import Settings, load_settings
from tests.conftest import PrivateInfra, wait_until
from tests.integration.projection_harness import (
    SCHEMA,
    CountingProjection,
    Kit,
    metric,
    open_kit,
)


@dataclass(eq=False)
class ConnectionKiller(CountingProjection):
    """Applying an event with one of ``killer_slugs`` ends its own database session, as an
    event did on a live stack (PostgreSQL closed the connection: "invalid message length")."""

    killer_slugs: set[str] = field(default_factory=set)
    kills: int = 0

    async def apply(self, conn: asyncpg.Connection, events: Sequence[Event]) -> None:
        for event in events:
            assert isinstance(event.payload, ProjectCreated)
            if event.payload.slug in self.killer_slugs:
                self.kills += 1
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        await super().apply(conn, events)


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[Kit]:
    async with open_kit(settings) as opened:
        yield opened


def holds(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def predicate() -> bool:
        return check()

    return predicate


async def _attempt_rows(kit: Kit) -> list[asyncpg.Record]:
    return await kit.query(f"SELECT * FROM {SCHEMA}.projection_attempts")


async def test_an_event_that_kills_its_connection_is_dead_lettered_after_the_bound(
    kit: Kit,
) -> None:
    projection = ConnectionKiller(killer_slugs={"killer"})
    runner = kit.runner(projection, projection_max_attempts=3)
    a, b, killer, c, d = await kit.publish("a", "b", "killer", "c", "d")
    dead_before = metric("gatehouse_dead_lettered_total")
    runner.start()  # all five in one batch

    await runner.wait_for(d, timeout=30)
    assert await kit.applied() == [(a, "a"), (b, "b"), (c, "c"), (d, "d")]
    assert projection.kills == 3  # the bound, not forever
    [letter] = await kit.dead_letters()
    assert letter["stream_sequence"] == killer
    assert letter["event_id"] is not None
    assert "failed 3 tries" in letter["error"]
    assert metric("gatehouse_dead_lettered_total") - dead_before == 1
    assert await _attempt_rows(kit) == []
    assert await kit.checkpoint() == d

    # Nothing is left of the episode: the next events go through in one batch as before.
    [e] = await kit.publish("e")
    await runner.wait_for(e, timeout=10)
    assert (await kit.applied())[-1] == (e, "e")
    assert projection.kills == 3


async def test_the_count_of_tries_survives_a_restart(kit: Kit) -> None:
    projection = ConnectionKiller(killer_slugs={"killer"})
    first = kit.runner(projection, projection_max_attempts=4)
    _, after = await kit.publish("killer", "after")
    first.start()
    await wait_until(holds(lambda: projection.kills >= 2), timeout=20)
    await first.stop()  # a restart (or kill -9) of the service

    second = kit.runner(projection, projection_max_attempts=4)
    second.start()
    await second.wait_for(after, timeout=30)
    # Four tries in all: a count kept in memory would have started again at 0 (2 + 4).
    assert 2 <= projection.kills <= 4
    assert [r["stream_sequence"] for r in await kit.dead_letters()] == [after - 1]
    assert (await kit.applied())[-1] == (after, "after")


async def test_an_event_the_process_kept_dying_on_is_dead_lettered_untried(kit: Kit) -> None:
    projection = ConnectionKiller(killer_slugs={"killer"})
    runner = kit.runner(projection, projection_max_attempts=2)
    killer, after = await kit.publish("killer", "after")
    # What three restarts that died while applying the batch after sequence 0 leave behind:
    # each try was counted before it began, and none ever finished.
    await kit.query(
        f"INSERT INTO {SCHEMA}.projection_attempts (projection, after_sequence, attempts, "
        "last_error) VALUES ('project_counter', 0, 3, 'the process was killed')"
    )
    runner.start()
    await runner.wait_for(after, timeout=20)
    assert projection.kills == 0
    [letter] = await kit.dead_letters()
    assert letter["stream_sequence"] == killer
    assert letter["error"].startswith("not applied: 4 tries")
    assert await kit.applied() == [(after, "after")]


async def test_retry_applies_a_dead_letter_again_and_drop_keeps_it_resolved(kit: Kit) -> None:
    projection = ConnectionKiller(killer_slugs={"killer", "doomed"})
    runner = kit.runner(projection, projection_max_attempts=1)
    killer, doomed, after = await kit.publish("killer", "doomed", "after")
    runner.start()
    await runner.wait_for(after, timeout=20)
    found = await outstanding_dead_letters(kit.pool, SCHEMA)
    count, named = found["project_counter"]
    assert count == 2
    assert [letter.stream_sequence for letter in named] == [doomed, killer]  # newest first
    ids = {letter.stream_sequence: letter.id for letter in named}

    # Retried while the cause is still there: the retry fails and says why.
    async with kit.pool.acquire() as conn:
        assert await request_retry(conn, SCHEMA, ids[killer])
    await wait_until(lambda: _retry_answered(kit, ids[killer]), timeout=10)
    [row] = await kit.query(
        f"SELECT resolved_at, error FROM {SCHEMA}.dead_letter WHERE id = $1", ids[killer]
    )
    assert row["resolved_at"] is None and row["error"].startswith("retry failed:")

    projection.killer_slugs.clear()  # the fix is deployed
    async with kit.pool.acquire() as conn:
        assert await request_retry(conn, SCHEMA, ids[killer])
        assert await drop_dead_letter(conn, SCHEMA, ids[doomed])
        assert not await drop_dead_letter(conn, SCHEMA, ids[doomed])  # answered already
    await wait_until(lambda: _retry_answered(kit, ids[killer]), timeout=10)

    # Applied from the stored event, after the event that followed it in the stream.
    assert await kit.applied() == [(after, "after"), (killer, "killer")]
    assert await outstanding_dead_letters(kit.pool, SCHEMA) == {}
    resolutions = await kit.query(
        f"SELECT stream_sequence, resolution FROM {SCHEMA}.dead_letter ORDER BY stream_sequence"
    )
    assert [(r["stream_sequence"], r["resolution"]) for r in resolutions] == [
        (killer, "retried"),
        (doomed, "dropped"),
    ]


async def _retry_answered(kit: Kit, dead_letter_id: int) -> bool:
    [row] = await kit.query(
        f"SELECT retry_requested_at FROM {SCHEMA}.dead_letter WHERE id = $1", dead_letter_id
    )
    return row["retry_requested_at"] is None


# ---- an outage is waited out, never dead-lettered -----------------------------------------
@pytest.fixture
async def private_kit(private_infra: PrivateInfra) -> AsyncIterator[Kit]:
    settings: Settings = load_settings(
        {},
        nats_url=private_infra.nats.url,
        database_url=private_infra.postgres.url(f"d_{uuid.uuid4().hex[:12]}"),
        stream_name=f"DEADLETTERS_{uuid.uuid4().hex[:8].upper()}",
    )
    async with open_kit(settings) as opened:
        yield opened
        await opened.bus.js.delete_stream(settings.stream_name)


async def test_a_database_outage_during_the_last_try_dead_letters_nothing(
    private_kit: Kit, private_infra: PrivateInfra
) -> None:
    kit = private_kit
    lock_key = 7_000_002
    blocker = await asyncpg.connect(kit.settings.database_url)
    await blocker.execute("SELECT pg_advisory_lock($1)", lock_key)
    projection = CountingProjection(wait_for_lock=lock_key)
    runner = kit.runner(projection, projection_max_attempts=3)
    first, second = await kit.publish("first", "second")
    # The batch has failed twice already: the next try is the last one before the runner
    # looks for an event to dead-letter, and the database goes away in the middle of it.
    await kit.query(
        f"INSERT INTO {SCHEMA}.projection_attempts (projection, after_sequence, attempts) "
        "VALUES ('project_counter', 0, 2)"
    )
    runner.start()
    await wait_until(lambda: _waits_for_lock(blocker), timeout=10)

    await asyncio.to_thread(private_infra.postgres.stop)
    blocker.terminate()
    await asyncio.to_thread(private_infra.postgres.start)

    await runner.wait_for(second, timeout=30)
    assert await kit.applied() == [(first, "first"), (second, "second")]
    assert await kit.dead_letters() == []
    assert await _attempt_rows(kit) == []


async def _waits_for_lock(conn: asyncpg.Connection) -> bool:
    waiting = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE '%pg_advisory_xact_lock%'"
    )
    return bool(waiting)


async def test_a_bus_outage_during_the_last_try_dead_letters_nothing(
    private_kit: Kit, private_infra: PrivateInfra
) -> None:
    kit = private_kit
    # The last try fails "transiently" (a blob on the bus cannot be read) while NATS is away,
    # with the database answering: the probe of the bus keeps the event.
    projection = CountingProjection(hold_from_call=1, transient_failures=1)
    runner = kit.runner(projection, projection_max_attempts=3)
    first, second = await kit.publish("first", "second")
    await kit.query(
        f"INSERT INTO {SCHEMA}.projection_attempts (projection, after_sequence, attempts) "
        "VALUES ('project_counter', 0, 2)"
    )
    runner.start()
    await wait_until(holds(lambda: projection.calls >= 1), timeout=10)

    await asyncio.to_thread(private_infra.nats.stop)
    await wait_until(holds(lambda: not kit.bus.connected), timeout=5)
    projection.released.set()
    await wait_until(holds(lambda: projection.transient_failures == 0), timeout=5)
    await asyncio.to_thread(private_infra.nats.start)

    await runner.wait_for(second, timeout=30)
    assert await kit.applied() == [(first, "first"), (second, "second")]
    assert await kit.dead_letters() == []
