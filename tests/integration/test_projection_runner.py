"""The projection runner against real NATS JetStream and PostgreSQL: one transaction per batch
with its checkpoint, dead letters, read-your-writes and replay."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import pytest
from nats.aio.msg import Msg

from contracts.envelope import encode_envelope, make_envelope
from contracts.events.identity import ProjectCreated
from contracts.ids import new_id
from shared.errors import GatehouseError
from shared.settings import Settings
from tests.conftest import table_digest, wait_until
from tests.integration.projection_harness import (
    SCHEMA,
    CountingProjection,
    Kit,
    metric,
    open_kit,
)


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[Kit]:
    async with open_kit(settings) as opened:
        yield opened


async def test_a_failed_batch_leaves_no_rows_and_no_checkpoint_and_is_applied_once_later(
    kit: Kit,
) -> None:
    projection = CountingProjection(transient_failures=1, hold_from_call=2)
    runner = kit.runner(projection)
    first = await kit.publish("alpha", "beta", "gamma")
    runner.start()

    # Call 1 wrote its rows and failed; call 2 (the retry) waits at the gate.
    await wait_until(holds(lambda: projection.calls >= 2), timeout=10)
    assert await kit.applied() == []
    assert await kit.checkpoint() is None

    later = await kit.publish("delta", "epsilon")
    projection.released.set()
    await runner.wait_for(later[-1], timeout=10)

    sequences = first + later
    assert await kit.applied() == list(
        zip(sequences, ["alpha", "beta", "gamma", "delta", "epsilon"], strict=True)
    )
    assert await kit.checkpoint() == sequences[-1]
    assert await kit.dead_letters() == []


async def test_transient_failures_in_the_middle_keep_stream_order(kit: Kit) -> None:
    projection = CountingProjection()
    runner = kit.runner(projection, projection_batch_size=3)
    runner.start()
    head = await kit.publish(*[f"p{i}" for i in range(4)])
    await runner.wait_for(head[-1], timeout=10)

    projection.transient_failures = 2  # the next two batches fail after writing rows
    tail = await kit.publish(*[f"q{i}" for i in range(7)])
    await runner.wait_for(tail[-1], timeout=15)

    applied = await kit.applied()
    assert [seq for seq, _ in applied] == head + tail  # once each, in stream order
    assert projection.transient_failures == 0


async def test_poison_events_are_dead_lettered_terminated_and_do_not_block(kit: Kit) -> None:
    projection = CountingProjection(poison_slugs={"cursed"})
    runner = kit.runner(projection)
    nc = kit.bus.nc
    terminated: list[dict[str, object]] = []

    async def on_terminated(msg: Msg) -> None:
        terminated.append(msgspec.json.decode(msg.data))

    advisory = await nc.subscribe(
        f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{kit.bus.stream}.{runner.durable}",
        cb=on_terminated,
    )
    dead_before = metric("gatehouse_dead_lettered_total")

    [good_1] = await kit.publish("first")
    garbage = (await kit.bus.js.publish("project.created", b"\x00not json{")).seq
    [good_2] = await kit.publish("second")
    unknown = await _publish_raw(kit, event_type="project.exploded", data={"x": 1})
    invalid = await _publish_raw(
        kit, event_type="project.created", data={"project_id": "p", "slug": "Not A Slug"}
    )
    [cursed] = await kit.publish("cursed")
    [good_3] = await kit.publish("third")

    runner.start()  # everything above arrives in one batch
    await runner.wait_for(good_3, timeout=10)

    assert await kit.applied() == [(good_1, "first"), (good_2, "second"), (good_3, "third")]
    letters = await kit.dead_letters()
    assert [r["stream_sequence"] for r in letters] == [garbage, unknown, invalid, cursed]
    errors = {int(r["stream_sequence"]): str(r["error"]) for r in letters}
    assert errors[garbage].startswith("undecodable:")
    assert "unknown event type 'project.exploded'" in errors[unknown]
    assert "slug" in errors[invalid]
    assert errors[cursed].startswith("PermanentEventError: project cursed")
    assert bytes(letters[0]["payload"]) == b"\x00not json{"
    assert all(r["subject"] == "project.created" for r in letters)
    assert letters[-1]["event_id"] is not None
    assert metric("gatehouse_dead_lettered_total") - dead_before == 4

    await wait_until(holds(lambda: len(terminated) == 4), timeout=5)
    assert sorted(int(str(a["stream_seq"])) for a in terminated) == [
        garbage,
        unknown,
        invalid,
        cursed,
    ]
    await advisory.unsubscribe()
    assert await kit.checkpoint() == good_3


async def test_wait_for_and_replay_rebuild_an_identical_read_model(kit: Kit) -> None:
    projection = CountingProjection(poison_slugs={"bad"})
    runner = kit.runner(projection, projection_batch_size=4)
    runner.start()
    sequences = await kit.publish(*[f"s{i}" for i in range(9)], "bad", "s9", "s10")
    await runner.wait_for(sequences[-1], timeout=10)
    assert runner.checkpoint >= sequences[-1]
    with pytest.raises(TimeoutError):
        await runner.wait_for(sequences[-1] + 1, timeout=0.2)

    before = await table_digest(kit.settings.database_url, SCHEMA, ["projects"])
    assert len(await kit.applied()) == 11

    replayer = kit.runner(CountingProjection(poison_slugs={"bad"}), projection_batch_size=4)
    with pytest.raises(GatehouseError) as busy:
        await replayer.replay()  # the running runner holds the leader lock
    assert busy.value.code == "projection_busy" and busy.value.status == 409

    await runner.stop()
    handled = await replayer.replay()
    assert handled == 11
    assert await table_digest(kit.settings.database_url, SCHEMA, ["projects"]) == before
    assert [r["stream_sequence"] for r in await kit.dead_letters()] == [sequences[9]]
    assert await kit.checkpoint() == sequences[-1]


async def test_replay_of_an_empty_stream_finishes_at_once(kit: Kit) -> None:
    replayer = kit.runner(CountingProjection())
    assert await asyncio.wait_for(replayer.replay(), timeout=5) == 0
    assert await kit.applied() == []


async def test_a_subjects_filter_limits_what_the_projection_sees(kit: Kit) -> None:
    projection = CountingProjection(subjects=("project.created", "apikey.>"))
    runner = kit.runner(projection)
    runner.start()
    archived = await _publish_raw(
        kit, event_type="project.archived", data={"project_id": "x"}, subject="project.archived"
    )
    [created] = await kit.publish("kept")
    await runner.wait_for(created, timeout=10)
    assert await kit.applied() == [(created, "kept")]
    assert archived < created
    await wait_until(holds(lambda: runner.lag == 0), timeout=5)


async def _publish_raw(
    kit: Kit, *, event_type: str, data: dict[str, object], subject: str = "project.created"
) -> int:
    """An envelope the registry cannot or will not decode, published as-is on ``subject``."""
    envelope = make_envelope(
        ProjectCreated(project_id="p", slug="placeholder", name="P"),
        source="tests",
        aggregate="project:p",
        actor="system",
        occurred_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )
    raw = msgspec.json.decode(encode_envelope(envelope))
    raw.update(type=event_type, data=data, id=new_id())
    ack = await kit.bus.js.publish(
        subject, msgspec.json.encode(raw), headers={"Nats-Msg-Id": raw["id"]}
    )
    return int(ack.seq)


def holds(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """wait_until for a condition on in-process state."""

    async def predicate() -> bool:
        return check()

    return predicate
