"""The kit survives its servers restarting: a projection keeps running while NATS and then
PostgreSQL are stopped and started again under it, and every event is applied exactly once.

These tests own a private NATS server and a private PostgreSQL (the session's are shared), on
fixed ports and data folders so that a restart brings back the same server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from shared.settings import Settings, load_settings
from tests.conftest import PrivateInfra, wait_until
from tests.integration.projection_harness import CountingProjection, Kit, open_kit

BATCH = 10


@pytest.fixture
async def kit(private_infra: PrivateInfra) -> AsyncIterator[Kit]:
    settings: Settings = load_settings(
        {},
        nats_url=private_infra.nats.url,
        database_url=private_infra.postgres.url(f"f_{uuid.uuid4().hex[:12]}"),
        stream_name=f"FAULTS_{uuid.uuid4().hex[:8].upper()}",
        rpc_timeout_seconds=10.0,
    )
    async with open_kit(settings) as opened:
        yield opened
        # Two streams cannot share subjects: leave the server as this test found it.
        await opened.bus.js.delete_stream(settings.stream_name)


def holds(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def predicate() -> bool:
        return check()

    return predicate


async def test_nats_restarting_under_a_running_projection(
    kit: Kit, private_infra: PrivateInfra
) -> None:
    projection = CountingProjection(hold_from_call=3)
    runner = kit.runner(projection, projection_batch_size=BATCH)
    runner.start()
    first = await kit.publish(*[f"a{i}" for i in range(150)])
    # Two batches are applied, the third is held inside its transaction, more are in flight.
    await wait_until(holds(lambda: projection.calls >= 3), timeout=10)

    await asyncio.to_thread(private_infra.nats.stop)
    await wait_until(holds(lambda: not kit.bus.connected), timeout=5)
    await asyncio.to_thread(private_infra.nats.start)
    await wait_until(holds(lambda: kit.bus.connected), timeout=15)
    projection.released.set()

    second = await kit.publish(*[f"b{i}" for i in range(20)])
    await runner.wait_for(second[-1], timeout=30)

    assert [seq for seq, _ in await kit.applied()] == first + second
    assert await kit.dead_letters() == []
    assert kit.bus.reconnects >= 1


async def test_postgres_restarting_under_a_running_projection(
    kit: Kit, private_infra: PrivateInfra
) -> None:
    # The runner's batch will be blocked on this lock, inside a query, when PostgreSQL stops.
    lock_key = 7_000_001
    blocker = await asyncpg.connect(kit.settings.database_url)
    await blocker.execute("SELECT pg_advisory_lock($1)", lock_key)
    projection = CountingProjection(wait_for_lock=lock_key)
    runner = kit.runner(projection, projection_batch_size=BATCH)
    runner.start()
    first = await kit.publish(*[f"a{i}" for i in range(150)])
    await wait_until(lambda: _query_waits_for_lock(blocker), timeout=10)

    # A fast shutdown terminates every session: the runner's query fails with
    # "terminating connection due to administrator command", which must not dead-letter.
    await asyncio.to_thread(private_infra.postgres.stop)
    blocker.terminate()
    second = await kit.publish(*[f"b{i}" for i in range(20)])  # the bus does not care
    await asyncio.to_thread(private_infra.postgres.start)

    await runner.wait_for(second[-1], timeout=30)
    assert [seq for seq, _ in await kit.applied()] == first + second
    assert await kit.dead_letters() == []


async def _query_waits_for_lock(conn: asyncpg.Connection) -> bool:
    waiting = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query LIKE '%pg_advisory_xact_lock%'"
    )
    return bool(waiting)
