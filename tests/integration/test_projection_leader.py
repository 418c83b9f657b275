"""One active writer per read model: leader election, standby takeover, the compare-and-set
checkpoint, and recovery from a delivery lost on its way to the runner."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.js import JetStreamContext

from shared.bus import Bus
from shared.settings import Settings
from tests.conftest import wait_until
from tests.integration.projection_harness import SCHEMA, CountingProjection, Kit, open_kit


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[Kit]:
    async with open_kit(settings) as opened:
        yield opened


def holds(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def predicate() -> bool:
        return check()

    return predicate


async def test_two_runners_elect_one_leader_and_the_standby_takes_over(kit: Kit) -> None:
    other_bus = await Bus.connect(kit.settings, name="kit-test-replica")
    try:
        first = kit.runner(CountingProjection())
        second = kit.runner(CountingProjection(), bus=other_bus)
        first.start()
        await wait_until(holds(lambda: first.is_leader), timeout=5)
        second.start()

        head = await kit.publish(*[f"a{i}" for i in range(5)])
        # The standby follows the leader's checkpoint, so read-your-writes works on it too.
        await second.wait_for(head[-1], timeout=10)
        assert first.is_leader and not second.is_leader

        await first.stop()  # releases the lock while events keep coming
        middle = await kit.publish(*[f"b{i}" for i in range(5)])
        await wait_until(holds(lambda: second.is_leader), timeout=5)
        tail = await kit.publish(*[f"c{i}" for i in range(5)])
        await second.wait_for(tail[-1], timeout=10)

        assert not first.is_leader
        assert [seq for seq, _ in await kit.applied()] == head + middle + tail
        assert await kit.checkpoint() == tail[-1]
        await second.stop()
    finally:
        await other_bus.close()


async def test_a_writer_whose_checkpoint_moved_underneath_rolls_back(kit: Kit) -> None:
    """A leader that lost its lock without noticing must not apply events again: its batch
    commits only if the checkpoint is still where the runner started it."""
    projection = CountingProjection()
    runner = kit.runner(projection)
    runner.start()
    head = await kit.publish("one", "two")
    await runner.wait_for(head[-1], timeout=10)

    projection.hold_from_call = projection.calls + 1  # hold the next batch mid-transaction
    tail = await kit.publish("three", "four", "five")
    await wait_until(holds(lambda: projection.calls >= projection.hold_from_call), timeout=10)
    # Meanwhile "another writer" applies three and four and moves the checkpoint.
    conn_rows = [(tail[0], "three"), (tail[1], "four")]
    for position, (seq, slug) in enumerate(conn_rows, start=3):
        await kit.query(
            f"INSERT INTO {SCHEMA}.projects VALUES ($1, $2, $3, $4)", f"x{seq}", slug, seq, position
        )
    await kit.query(f"UPDATE {SCHEMA}.projection_checkpoint SET stream_sequence = $1", tail[1])
    projection.hold_from_call = None
    projection.released.set()

    await runner.wait_for(tail[-1], timeout=15)
    assert await kit.applied() == [
        (head[0], "one"),
        (head[1], "two"),
        (tail[0], "three"),
        (tail[1], "four"),
        (tail[2], "five"),
    ]
    assert await kit.dead_letters() == []


async def test_a_delivery_lost_on_the_way_is_recovered_without_waiting_for_ack_wait(
    kit: Kit,
) -> None:
    """Another client pulling from the runner's consumer steals a delivery, as a broken
    connection would: the runner sees the hole in the delivery sequence and resyncs."""
    runner = kit.runner(CountingProjection())
    runner.start()
    [first] = await kit.publish("before")
    await runner.wait_for(first, timeout=10)

    thief = await kit.bus.js.pull_subscribe_bind(durable=runner.durable, stream=kit.bus.stream)
    stolen: list[int] = []
    published: list[int] = [first]
    for i in range(50):
        fetch = asyncio.create_task(_steal_one(thief, stolen))
        published += await kit.publish(f"e{i}")
        await fetch
        if stolen:
            break
    assert stolen, "the thief never got a delivery"
    published += await kit.publish("after")  # reveals a hole at the tail, if that is where

    await runner.wait_for(published[-1], timeout=10)  # far below ack_wait (60 s)
    assert [seq for seq, _ in await kit.applied()] == published
    await thief.unsubscribe()


async def _steal_one(thief: JetStreamContext.PullSubscription, stolen: list[int]) -> None:
    try:
        msgs = await thief.fetch(1, timeout=0.3)
    except TimeoutError:
        return
    stolen.extend(int(m.metadata.sequence.stream) for m in msgs)
