"""What the gateway's hot caches share: the ordered JetStream consumers that keep one current.

A cache fed here starts at the stream's end (it starts empty: nothing older can be stale in
it) and applies each event of its subjects in stream order. It is ``live`` only while the
consumers run: a cache that is not live serves and keeps nothing. After a NATS reconnect the
consumers resume, but what passed while the connection was down may be lost, so the cache
starts over empty (:meth:`EventFeed.check_connection`, called by the feed and on each read).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Protocol

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import DeliverPolicy
from prometheus_client import Counter

from contracts.envelope import Event, UnknownEventType, decode_event
from shared.bus import Bus
from shared.logging import get_logger

log = get_logger(__name__)


class FedCache(Protocol):
    size: int
    live: bool

    def clear(self) -> None:
        """Forget everything: events may have been missed."""

    def apply(self, event: Event) -> None:
        """One event of the feed's subjects, in stream order."""


class EventFeed:
    """Ordered consumers on ``subjects`` that keep ``cache`` current."""

    def __init__(
        self, bus: Bus, cache: FedCache, *, subjects: Sequence[str], applied: Counter, name: str
    ) -> None:
        self.bus = bus
        self.cache = cache
        self.subjects = tuple(subjects)
        self._applied = applied
        self._name = name
        self._subs: list[Subscription] = []
        self._reconnects = 0

    async def start(self) -> None:
        if not self.cache.size:
            return
        self._reconnects = self.bus.reconnects
        for subject in self.subjects:
            self._subs.append(
                await self.bus.js.subscribe(
                    subject,
                    stream=self.bus.stream,
                    cb=self._on_message,
                    ordered_consumer=True,
                    deliver_policy=DeliverPolicy.NEW,
                    # Beats that let the client notice a stalled consumer and recreate it.
                    idle_heartbeat=5.0,
                )
            )
        self.cache.live = True

    async def stop(self) -> None:
        self.cache.live = False
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    def check_connection(self) -> None:
        """After a reconnect the consumers resume, but what passed while the connection was
        down may be lost: start over from an empty cache."""
        if self.bus.reconnects != self._reconnects:
            self._reconnects = self.bus.reconnects
            self.cache.clear()

    def undecodable(self, sequence: int) -> None:
        """An event of the feed's subjects that this process cannot read (a newer type, a
        newer schema): ignored here; a cache that must not miss a change overrides this."""

    async def _on_message(self, msg: Msg) -> None:
        self.check_connection()
        try:
            event = decode_event(msg.data, sequence=msg.metadata.sequence.stream)
        except (UnknownEventType, msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning(f"{self._name}_undecodable", subject=msg.subject, error=str(exc))
            self.undecodable(msg.metadata.sequence.stream)
            return
        self._applied.labels(event.envelope.type).inc()
        self.cache.apply(event)
        # Yield between messages of a burst: reads keep being answered.
        await asyncio.sleep(0)
