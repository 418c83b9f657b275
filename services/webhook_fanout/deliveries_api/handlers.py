"""``svc.webhook-fanout.deliveries_list``, ``delivery_get``, ``delivery_redeliver``,
``webhook_replay``, ``webhook_test``.

Deliveries are the fan-out's kept state, not a projection: a redelivery or a replay changes
their rows and publishes ``webhook.redelivery-requested`` (for the audit log) in one database
transaction, the publish last, so a failure anywhere changes nothing and a 2xx is readable at
once. A retried ``Idempotency-Key`` command re-publishes the same event id; the stream
answers "duplicate", and the retry rolls back its own changes and answers as the first
attempt did, so the command never runs twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from contracts.events.webhooks import WebhookRedeliveryRequested
from contracts.rpc.webhooks import (
    DeliveriesListRequest,
    DeliveryPage,
    DeliveryRequest,
    DeliveryView,
    ReplayReply,
    ReplayRequest,
    WebhookRequest,
    WebhookTestReply,
)
from services.webhook_fanout.deliveries import operations, store
from services.webhook_fanout.deliveries_api import queries
from services.webhook_fanout.deliveries_api.errors import (
    DeliveryInFlight,
    DeliveryNotFound,
    InvalidTimeRange,
)
from services.webhook_fanout.domain.errors import WebhookNotFound
from services.webhook_fanout.subscriptions import store as subscriptions_store
from shared.commands import command_event_id
from shared.rpc import CallContext
from shared.service import Runtime


class _AlreadyDone(Exception):
    """An earlier attempt of this command published its event: undo this attempt's rows."""


@dataclass
class DeliveriesApi:
    runtime: Runtime

    async def list(self, request: DeliveriesListRequest, _ctx: CallContext) -> DeliveryPage:
        async with self.runtime.pool.acquire() as conn:
            await _subscription(conn, request.id)
            return await queries.list_deliveries(conn, request)

    async def get(self, request: DeliveryRequest, _ctx: CallContext) -> DeliveryView:
        async with self.runtime.pool.acquire() as conn:
            await _subscription(conn, request.id)
            return await _delivery(conn, request.id, request.delivery_id)

    async def redeliver(self, request: DeliveryRequest, ctx: CallContext) -> DeliveryView:
        async with self.runtime.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await _subscription(conn, request.id, lock=True)
                    state = await conn.fetchrow(
                        f"SELECT {store.IN_FLIGHT} AS in_flight"
                        " FROM webhook_fanout.deliveries d"
                        " WHERE d.id = $1 AND d.subscription_id = $2 FOR UPDATE OF d",
                        uuid.UUID(request.delivery_id),
                        request.id,
                    )
                    if state is None:
                        raise DeliveryNotFound(
                            f"{request.id} has no delivery {request.delivery_id}"
                        )
                    if state["in_flight"]:
                        raise DeliveryInFlight(
                            "an attempt of this delivery is under way; redeliver once it ends"
                        )
                    await operations.requeue(conn, uuid.UUID(request.delivery_id))
                    await self._publish(
                        WebhookRedeliveryRequested(id=request.id, delivery_id=request.delivery_id),
                        ctx,
                    )
            except _AlreadyDone:
                # A retried command whose event the stream already holds: its requeue was
                # rolled back with this attempt, the first one's stands; answer the row.
                pass
            return await _delivery(conn, request.id, request.delivery_id)

    async def replay(self, request: ReplayRequest, ctx: CallContext) -> ReplayReply:
        since = request.since.astimezone(dt.UTC)
        until = (request.until or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        if until <= since:
            raise InvalidTimeRange(
                f"until ({until.isoformat()}) must be after since ({since.isoformat()})",
                extra={"errors": [{"field": "$.until", "message": "must be after since"}]},
            )
        queued = 0
        async with self.runtime.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await _subscription(conn, request.id, lock=True)
                    queued = await operations.replay(conn, request.id, since, until)
                    await self._publish(
                        WebhookRedeliveryRequested(id=request.id, since=since, until=until), ctx
                    )
            except _AlreadyDone:
                pass  # the earlier attempt queued the same range: the same count
        return ReplayReply(webhook_id=request.id, queued=queued)

    async def test(self, request: WebhookRequest, ctx: CallContext) -> WebhookTestReply:
        status, latency_ms, error, delivery_id = await operations.send_test(
            self.runtime, request.id, actor=ctx.actor, correlation_id=ctx.request_id or None
        )
        return WebhookTestReply(
            delivery_id=str(delivery_id),
            ok=status is not None and 200 <= status <= 299,
            response_status=status,
            latency_ms=latency_ms,
            error=error,
        )

    async def _publish(self, payload: WebhookRedeliveryRequested, ctx: CallContext) -> None:
        event_id = (
            command_event_id(ctx.command_id, 0, payload.event_type) if ctx.command_id else None
        )
        published = await self.runtime.bus.publish_acked(
            payload,
            aggregate=f"webhook:{payload.id}",
            actor=ctx.actor,
            correlation_id=ctx.request_id or None,
            event_id=event_id,
            command_id=ctx.command_id or None,
        )
        if published.duplicate:
            raise _AlreadyDone


async def _subscription(
    conn: asyncpg.Connection, subscription_id: str, *, lock: bool = False
) -> subscriptions_store.SubscriptionRow:
    if lock:
        # Redeliveries and replays of one subscription run one at a time (their counts and
        # the requeued rows would interleave otherwise).
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"webhook_fanout.deliveries_api:{subscription_id}",
        )
    sub = await subscriptions_store.subscription(conn, subscription_id)
    if sub is None:
        raise WebhookNotFound(f"no webhook subscription {subscription_id}")
    return sub


async def _delivery(
    conn: asyncpg.Connection, subscription_id: str, delivery_id: str
) -> DeliveryView:
    view = await queries.get_delivery(conn, subscription_id, delivery_id)
    if view is None:
        raise DeliveryNotFound(f"{subscription_id} has no delivery {delivery_id}")
    return view
