"""The event bus: one NATS connection per process, the ``GATEHOUSE`` stream, publishing.

Events are published with ``Nats-Msg-Id`` = event id so that JetStream drops a re-publish of
the same event inside the stream's duplicate window.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from contracts import events as _events  # noqa: F401  (registers the catalog)
from contracts.envelope import Envelope, EventPayload, domains, encode_envelope, make_envelope
from shared.errors import UpstreamUnavailable
from shared.logging import get_logger
from shared.metrics import EVENTS_PUBLISHED
from shared.settings import Settings

log = get_logger(__name__)

# JetStream drops a message whose Nats-Msg-Id it has seen within this window.
DUPLICATE_WINDOW_SECONDS = 120.0


def stream_subjects() -> list[str]:
    return [f"{domain}.>" for domain in domains()]


class Bus:
    def __init__(self, nc: NatsClient, *, settings: Settings) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=settings.rpc_timeout_seconds)
        self.settings = settings
        self.stream = settings.stream_name

    @classmethod
    async def connect(
        cls, settings: Settings, *, name: str,
        on_state_change: Callable[[str], Awaitable[None]] | None = None,
    ) -> Bus:
        async def disconnected() -> None:
            log.warning("nats_disconnected")
            if on_state_change:
                await on_state_change("disconnected")

        async def reconnected() -> None:
            log.info("nats_reconnected")
            if on_state_change:
                await on_state_change("reconnected")

        async def error(exc: Exception) -> None:
            log.warning("nats_error", error=str(exc))

        try:
            nc = await nats.connect(
                settings.nats_url,
                name=name,
                max_reconnect_attempts=-1,  # keep trying forever: the stack must heal
                reconnect_time_wait=0.5,
                allow_reconnect=True,
                connect_timeout=5,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
            )
        except (OSError, nats.errors.NoServersError, asyncio.TimeoutError) as exc:
            raise UpstreamUnavailable(f"cannot connect to NATS at {settings.nats_url}: {exc}") from exc
        return cls(nc, settings=settings)

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def ensure_stream(self) -> None:
        """Create or widen the stream idempotently; subjects only ever get added."""
        wanted = stream_subjects()
        try:
            info = await self.js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            config = StreamConfig(
                name=self.stream,
                subjects=wanted,
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                discard=DiscardPolicy.OLD,
                num_replicas=self.settings.stream_replicas,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                description="Gatehouse domain events (system of record)",
            )
            try:
                await self.js.add_stream(config)
                log.info("stream_created", stream=self.stream, subjects=wanted)
                return
            except nats.js.errors.BadRequestError:
                info = await self.js.stream_info(self.stream)  # created concurrently
        have = list(info.config.subjects or [])
        missing = [s for s in wanted if s not in have]
        if missing:
            config = info.config
            config.subjects = have + missing
            await self.js.update_stream(config)
            log.info("stream_updated", stream=self.stream, added=missing)

    async def last_sequence(self) -> int:
        info = await self.js.stream_info(self.stream)
        return int(info.state.last_seq)

    async def publish_envelope(self, envelope: Envelope) -> int:
        """Publish and wait for the stream's ack; returns the stream sequence."""
        data = encode_envelope(envelope)
        try:
            ack = await self.js.publish(envelope.type, data, stream=self.stream,
                                        headers={"Nats-Msg-Id": envelope.id})
        except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError,
                nats.js.errors.NoStreamResponseError) as exc:
            raise UpstreamUnavailable(f"event bus unavailable: {type(exc).__name__}") from exc
        EVENTS_PUBLISHED.labels(self.settings.service, envelope.type).inc()
        return int(ack.seq)

    async def publish(
        self, payload: EventPayload, *, aggregate: str, actor: str,
        correlation_id: str | None = None, causation_id: str | None = None,
        event_id: str | None = None, occurred_at: dt.datetime | None = None,
    ) -> tuple[Envelope, int]:
        envelope = make_envelope(
            payload, source=self.settings.service, aggregate=aggregate, actor=actor,
            occurred_at=occurred_at or dt.datetime.now(dt.UTC), event_id=event_id,
            correlation_id=correlation_id, causation_id=causation_id,
        )
        return envelope, await self.publish_envelope(envelope)

    async def close(self) -> None:
        if self.nc.is_closed:
            return
        try:
            await asyncio.wait_for(self.nc.drain(), timeout=5)
        except (asyncio.TimeoutError, nats.errors.ConnectionClosedError):
            await self.nc.close()
