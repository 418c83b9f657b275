"""The event bus: one NATS connection per process, the ``GATEHOUSE`` stream, publishing.

Events are published with ``Nats-Msg-Id`` = event id so that JetStream drops a re-publish of
the same event inside the stream's duplicate window.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

from contracts import events as _events  # noqa: F401  (registers the catalog)
from contracts.envelope import Envelope, EventPayload, domains, encode_envelope, make_envelope
from shared.errors import BusUnavailable
from shared.logging import get_logger
from shared.metrics import EVENTS_PUBLISHED
from shared.settings import Settings

log = get_logger(__name__)

# JetStream drops a message whose Nats-Msg-Id it has seen within this window.
DUPLICATE_WINDOW_SECONDS = 120.0
# How long a process waits for NATS at start-up before giving up with a clear error.
CONNECT_WITHIN_SECONDS = 15.0
# Pause between publish attempts while the server is (re)starting.
PUBLISH_RETRY_SECONDS = 0.1


def stream_subjects() -> list[str]:
    return [f"{domain}.>" for domain in domains()]


@dataclass(frozen=True)
class Published:
    envelope: Envelope
    # The event's stream sequence: the original one when the stream already held it.
    sequence: int
    # The stream already held an event of this id (published inside the duplicate window).
    duplicate: bool


def auth_options(settings: Settings) -> dict[str, Any]:
    """The credentials and TLS context of a connection, from the settings: a user and
    password when set, TLS (with the CA bundle when set) when the URL says ``tls://``."""
    options: dict[str, Any] = {}
    if settings.nats_user:
        options["user"] = settings.nats_user
        options["password"] = settings.nats_password
    if any(url.strip().startswith("tls://") for url in settings.nats_url.split(",")):
        options["tls"] = ssl.create_default_context(cafile=settings.nats_ca_file or None)
    return options


class ConnectionEvents:
    """The NATS connection callbacks. Counts reconnects: a pull subscriber compares the count
    to know that deliveries may have been lost with the old connection."""

    def __init__(self, on_state_change: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.reconnects = 0
        # Set by Bus.close(): the disconnect that follows is ours, not a fault worth a warning.
        self.closing = False
        self._on_state_change = on_state_change

    async def disconnected(self) -> None:
        if self.closing:
            log.info("nats_closed")
        else:
            log.warning("nats_disconnected")
        if self._on_state_change:
            await self._on_state_change("disconnected")

    async def reconnected(self) -> None:
        self.reconnects += 1
        log.info("nats_reconnected", reconnects=self.reconnects)
        if self._on_state_change:
            await self._on_state_change("reconnected")

    async def error(self, exc: Exception) -> None:
        log.warning("nats_error", error=str(exc))


class Bus:
    def __init__(
        self, nc: NatsClient, *, settings: Settings, events: ConnectionEvents | None = None
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=settings.rpc_timeout_seconds)
        self.settings = settings
        self.stream = settings.stream_name
        self.events = events or ConnectionEvents()

    @classmethod
    async def connect(
        cls,
        settings: Settings,
        *,
        name: str,
        on_state_change: Callable[[str], Awaitable[None]] | None = None,
        connect_within: float = CONNECT_WITHIN_SECONDS,
    ) -> Bus:
        """Connect, failing with BusUnavailable if no server answers within
        ``connect_within`` seconds; once connected, reconnect forever."""
        events = ConnectionEvents(on_state_change)
        # The client's stubs say int for the waits, but it takes fractions of a second.
        options: dict[str, Any] = {
            "servers": settings.nats_url,
            "name": name,
            "max_reconnect_attempts": -1,  # keep trying forever: the stack must heal
            "reconnect_time_wait": 0.5,
            "allow_reconnect": True,
            "connect_timeout": min(5.0, connect_within),
            "disconnected_cb": events.disconnected,
            "reconnected_cb": events.reconnected,
            "error_cb": events.error,
        }
        options.update(auth_options(settings))
        nc = NatsClient()
        try:
            # With unlimited reconnects the client would retry the first connect forever too.
            await asyncio.wait_for(nc.connect(**options), timeout=connect_within)
        except (OSError, nats.errors.Error, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await nc.close()
            raise BusUnavailable(
                f"cannot connect to NATS at {settings.nats_url}: {type(exc).__name__} {exc}"
            ) from exc
        return cls(nc, settings=settings, events=events)

    @property
    def reconnects(self) -> int:
        """How many times the connection was re-established since it was opened."""
        return self.events.reconnects

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
            except nats.js.errors.BadRequestError as exc:
                try:
                    info = await self.js.stream_info(self.stream)  # created concurrently
                except nats.js.errors.NotFoundError:
                    raise exc from None  # a real refusal, e.g. subjects owned by another stream
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

    async def last_sequence_of(self, subjects: Sequence[str] | None) -> int:
        """The stream sequence of the newest event on any of ``subjects`` (None: any
        subject); 0 if none. A filtered projection's checkpoint only reaches its own
        subjects' events, so "caught up" means: applied this sequence, not the stream's last.
        """
        if subjects is None:
            return await self.last_sequence()

        async def last_of(subject: str) -> int:
            try:
                msg = await self.js.get_last_msg(self.stream, subject)
            except nats.js.errors.NotFoundError:
                return 0
            return int(msg.seq or 0)

        return max([0, *await asyncio.gather(*(last_of(s) for s in subjects))])

    async def publish_envelope(self, envelope: Envelope) -> int:
        """Publish and wait for the stream's ack; returns the stream sequence."""
        return (await self.publish_envelope_acked(envelope)).sequence

    async def publish_envelope_acked(self, envelope: Envelope) -> Published:
        """Publish and wait for the stream's ack.

        While NATS restarts or JetStream is not ready yet, the publish is retried until
        ``rpc_timeout_seconds`` have passed: the ``Nats-Msg-Id`` header makes a retry of an
        event that did reach the stream a no-op. On a duplicate (an id seen inside the
        duplicate window) the server answers the sequence of the event it already holds,
        with ``duplicate`` set.
        """
        data = encode_envelope(envelope)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.rpc_timeout_seconds
        while True:
            remaining = deadline - loop.time()
            try:
                ack = await self.js.publish(
                    envelope.type,
                    data,
                    stream=self.stream,
                    timeout=max(remaining, 0.05),
                    headers={"Nats-Msg-Id": envelope.id},
                )
                break
            except (
                nats.js.errors.NoStreamResponseError,
                nats.errors.NoRespondersError,
                nats.errors.ConnectionReconnectingError,
                nats.errors.OutboundBufferLimitError,
            ) as exc:
                if loop.time() + PUBLISH_RETRY_SECONDS >= deadline:
                    raise BusUnavailable(f"event bus unavailable: {type(exc).__name__}") from exc
                await asyncio.sleep(PUBLISH_RETRY_SECONDS)
            except (nats.errors.TimeoutError, nats.errors.ConnectionClosedError) as exc:
                raise BusUnavailable(f"event bus unavailable: {type(exc).__name__}") from exc
        duplicate = bool(ack.duplicate)
        if not duplicate:
            EVENTS_PUBLISHED.labels(self.settings.service, envelope.type).inc()
        return Published(envelope=envelope, sequence=int(ack.seq), duplicate=duplicate)

    async def publish(
        self,
        payload: EventPayload,
        *,
        aggregate: str,
        actor: str,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        event_id: str | None = None,
        occurred_at: dt.datetime | None = None,
        command_id: str | None = None,
    ) -> tuple[Envelope, int]:
        published = await self.publish_acked(
            payload,
            aggregate=aggregate,
            actor=actor,
            correlation_id=correlation_id,
            causation_id=causation_id,
            event_id=event_id,
            occurred_at=occurred_at,
            command_id=command_id,
        )
        return published.envelope, published.sequence

    async def publish_acked(
        self,
        payload: EventPayload,
        *,
        aggregate: str,
        actor: str,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        event_id: str | None = None,
        occurred_at: dt.datetime | None = None,
        command_id: str | None = None,
    ) -> Published:
        """As :meth:`publish`, telling also whether the stream already held the event."""
        envelope = make_envelope(
            payload,
            source=self.settings.service,
            aggregate=aggregate,
            actor=actor,
            occurred_at=occurred_at or dt.datetime.now(dt.UTC),
            event_id=event_id,
            correlation_id=correlation_id,
            causation_id=causation_id,
            command_id=command_id,
        )
        return await self.publish_envelope_acked(envelope)

    async def close(self) -> None:
        if self.nc.is_closed:
            return
        self.events.closing = True
        try:
            await asyncio.wait_for(self.nc.drain(), timeout=5)
        except (TimeoutError, nats.errors.Error):
            # Draining needs a live connection (it raises while reconnecting): just close.
            await self.nc.close()
