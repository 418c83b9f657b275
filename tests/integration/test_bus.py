"""The event bus against a real NATS JetStream: the stream, publishing, de-duplication."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import msgspec
import pytest
from nats.js.api import StreamConfig

from contracts.envelope import Envelope, decode_event, make_envelope
from contracts.events.identity import ProjectArchived, ProjectCreated
from contracts.ids import new_id
from shared.bus import DUPLICATE_WINDOW_SECONDS, Bus, stream_subjects
from shared.errors import UpstreamUnavailable
from shared.settings import Settings


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    connected = await Bus.connect(settings.with_(service="bus-test"), name="bus-test")
    try:
        yield connected
    finally:
        await connected.close()


def _created(slug: str) -> Envelope:
    project_id = new_id()
    return make_envelope(
        ProjectCreated(project_id=project_id, slug=slug, name=slug),
        source="bus-test",
        aggregate=f"project:{project_id}",
        actor="system",
        occurred_at=dt.datetime.now(dt.UTC),
        correlation_id="req-1",
    )


async def test_ensure_stream_creates_the_stream_and_is_idempotent(bus: Bus) -> None:
    await bus.ensure_stream()
    first = await bus.js.stream_info(bus.stream)
    await bus.ensure_stream()
    second = await bus.js.stream_info(bus.stream)

    assert sorted(first.config.subjects or []) == sorted(stream_subjects())
    assert second.config == first.config
    assert first.config.duplicate_window == DUPLICATE_WINDOW_SECONDS
    assert second.state.messages == 0


async def test_ensure_stream_widens_the_subjects_and_keeps_the_messages(bus: Bus) -> None:
    await bus.js.add_stream(StreamConfig(name=bus.stream, subjects=["project.>"]))
    await bus.js.publish("project.created", b"kept")

    await bus.ensure_stream()

    info = await bus.js.stream_info(bus.stream)
    assert set(info.config.subjects or []) == set(stream_subjects())
    assert info.state.messages == 1
    _, seq = await bus.publish(
        ProjectArchived(project_id="p1"), aggregate="project:p1", actor="system"
    )
    assert seq == 2
    assert (await bus.js.get_msg(bus.stream, 1)).data == b"kept"


async def test_publish_stores_the_envelope_under_its_type_with_the_id_header(bus: Bus) -> None:
    await bus.ensure_stream()
    envelope, seq = await bus.publish(
        ProjectArchived(project_id="p9"),
        aggregate="project:p9",
        actor="apikey:k1",
        correlation_id="req-9",
    )
    stored = await bus.js.get_msg(bus.stream, seq)
    assert stored.subject == "project.archived"
    assert stored.headers is not None and stored.headers["Nats-Msg-Id"] == envelope.id
    event = decode_event(stored.data or b"", sequence=seq)
    assert event.payload == ProjectArchived(project_id="p9")
    assert event.envelope.source == "bus-test"
    assert event.envelope.actor == "apikey:k1"
    assert event.envelope.correlation_id == "req-9"
    assert await bus.last_sequence() == seq


async def test_the_same_event_published_twice_is_stored_once(bus: Bus) -> None:
    await bus.ensure_stream()
    envelope = _created("twice")
    first = await bus.publish_envelope(envelope)
    again = await bus.publish_envelope(envelope)
    other = await bus.publish_envelope(_created("other"))

    assert again == first
    assert other == first + 1
    info = await bus.js.stream_info(bus.stream)
    assert info.state.messages == 2
    stored = msgspec.json.decode((await bus.js.get_msg(bus.stream, first)).data or b"")
    assert stored["id"] == envelope.id


async def test_publish_without_a_stream_answers_upstream_unavailable(settings: Settings) -> None:
    quick = await Bus.connect(
        settings.with_(service="bus-test", rpc_timeout_seconds=0.5), name="bus-test"
    )
    try:
        with pytest.raises(UpstreamUnavailable) as raised:
            await quick.publish_envelope(_created("nowhere"))
        assert raised.value.status == 503 and raised.value.transient
    finally:
        await quick.close()


async def test_connecting_to_nothing_answers_upstream_unavailable(settings: Settings) -> None:
    from shared.embedded import free_port

    with pytest.raises(UpstreamUnavailable):
        await Bus.connect(
            settings.with_(nats_url=f"nats://127.0.0.1:{free_port()}"), name="x", connect_within=1
        )
