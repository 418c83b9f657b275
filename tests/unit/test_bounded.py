"""shared.bounded: a call runs in a warm child process bounded in memory and time; going
beyond a bound is an error naming it, the child is replaced, and the caller stays up."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from shared.bounded import (
    BoundedRunner,
    Bounds,
    ChildDied,
    ChildFailedToStart,
    OutOfMemory,
    OutOfTime,
)

MIB = 1_048_576
# The child's interpreter starts at ~15 MiB of address space and this module's imports take
# it to ~60 MiB: 512 MiB leaves room for a call, and not for a GiB.
ROOM = 512 * MIB


# ---- what the child runs (module-level: functions are pickled by name) ------------------


def pid() -> int:
    return os.getpid()


def add(a: int, b: int) -> int:
    return a + b


def refuse(text: str) -> None:
    raise ValueError(text)


def allocate(count: int) -> int:
    return len(bytearray(count))


def hang() -> None:
    time.sleep(3600)


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def unpicklable_answer() -> Callable[[], None]:
    return lambda: None


def already_set_memory_limit() -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_AS)[0]


class Unsendable:
    def __reduce__(self) -> str:
        raise TypeError("not for sending")


# ------------------------------------------------------------------------------------------


@pytest.fixture
async def runner() -> AsyncIterator[BoundedRunner]:
    bounded = BoundedRunner(Bounds(memory_bytes=ROOM, seconds=30.0))
    try:
        yield bounded
    finally:
        await bounded.close()


def alive(process_id: int) -> bool:
    try:
        os.kill(process_id, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers; its /proc status says so.
    with open(f"/proc/{process_id}/status") as status:
        return not any(line.startswith("State:\tZ") for line in status)


async def gone(process_id: int) -> bool:
    for _ in range(500):
        if not alive(process_id):
            return True
        await asyncio.sleep(0.01)
    return False


async def test_a_call_returns_its_value_and_the_child_is_reused(runner: BoundedRunner) -> None:
    first = await runner.run(pid)
    assert first != os.getpid()
    assert await runner.run(add, 2, 3) == 5
    assert await runner.run(pid) == first == runner.pid
    assert runner.started == 1
    assert await runner.run(already_set_memory_limit) == ROOM


async def test_the_function_s_own_exception_is_raised_and_the_child_kept(
    runner: BoundedRunner,
) -> None:
    child = await runner.run(pid)
    with pytest.raises(ValueError, match="not a number"):
        await runner.run(refuse, "not a number")
    assert await runner.run(pid) == child


async def test_a_late_call_kills_the_child_and_the_next_call_gets_a_new_one() -> None:
    runner = BoundedRunner(Bounds(memory_bytes=ROOM, seconds=0.5))
    try:
        child = await runner.run(pid)
        with pytest.raises(OutOfTime, match=r"longer than its 0.5 s") as caught:
            await runner.run(hang)
        assert caught.value.limit == "time"
        assert await gone(child)
        assert await runner.run(add, 1, 1) == 2
        assert await runner.run(pid) != child
        assert runner.started == 2
    finally:
        await runner.close()


async def test_running_out_of_memory_is_reported_and_the_child_replaced(
    runner: BoundedRunner,
) -> None:
    child = await runner.run(pid)
    with pytest.raises(OutOfMemory, match="512 MiB") as caught:
        await runner.run(allocate, 1024 * MIB)
    assert caught.value.limit == "memory"
    assert await gone(child)
    # what fits still runs, in a new child
    assert await runner.run(allocate, 64 * MIB) == 64 * MIB
    assert runner.started == 2


async def test_a_child_killed_under_a_call_is_reported(runner: BoundedRunner) -> None:
    with pytest.raises(ChildDied, match="SIGKILL") as caught:
        await runner.run(die)
    assert caught.value.limit == "memory"  # the kernel's out-of-memory killer, most often
    assert await runner.run(add, 2, 2) == 4


async def test_a_cancelled_call_kills_its_child(runner: BoundedRunner) -> None:
    child = await runner.run(pid)
    call = asyncio.create_task(runner.run(hang))
    await asyncio.sleep(0)  # the call has handed its arguments to a thread
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await gone(child)
    assert await runner.run(add, 3, 3) == 6


async def test_an_answer_that_cannot_be_sent_is_an_error(runner: BoundedRunner) -> None:
    with pytest.raises(RuntimeError, match="cannot be sent"):
        await runner.run(unpicklable_answer)
    assert await runner.run(add, 0, 1) == 1


async def test_arguments_that_cannot_be_sent_are_an_error(runner: BoundedRunner) -> None:
    with pytest.raises(TypeError, match="not for sending"):
        await runner.run(add, Unsendable(), 1)
    assert await runner.run(add, 0, 2) == 2


async def test_a_bound_too_small_to_start_in_says_so() -> None:
    runner = BoundedRunner(
        Bounds(memory_bytes=8 * MIB, seconds=5.0), preload=("services.scanner.scans.reading",)
    )
    with pytest.raises(ChildFailedToStart, match="8 MiB"):
        await runner.start()
    await runner.close()


async def test_the_parent_s_own_memory_is_not_limited(runner: BoundedRunner) -> None:
    await runner.run(add, 1, 2)
    import resource

    assert resource.getrlimit(resource.RLIMIT_AS)[0] != ROOM
    data: Any = bytearray(ROOM + MIB)  # more than the child may have
    assert len(data) == ROOM + MIB
