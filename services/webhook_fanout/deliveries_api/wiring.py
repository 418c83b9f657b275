"""Registers the deliveries API on the webhook-fanout's runtime: the delivery log,
redelivery, replay and the test send. No projection of its own: it reads and requeues the
deliveries the engine keeps, and owns the HTTP client of test sends."""

from __future__ import annotations

from contracts.rpc import webhooks as rpc
from services.webhook_fanout.deliveries_api.handlers import DeliveriesApi
from services.webhook_fanout.deliveries_api.test_send import close_client, new_client
from shared.outbound import parse_cidrs
from shared.service import Runtime


async def setup(runtime: Runtime) -> None:
    allowed = parse_cidrs(runtime.settings.outbound_allow_cidrs)
    client = new_client(allowed)

    async def close() -> None:
        await close_client(client)

    runtime.on_stopping.append(close)
    api = DeliveriesApi(
        pool=runtime.pool,
        bus=runtime.bus,
        client=client,
        allowed=allowed,
        api_base_url=runtime.settings.public_url,
    )
    for operation, request_type, handler in (
        (rpc.DELIVERIES_LIST, rpc.DeliveriesListRequest, api.list),
        (rpc.DELIVERY_GET, rpc.DeliveryRequest, api.get),
        (rpc.DELIVERY_REDELIVER, rpc.DeliveryRequest, api.redeliver),
        (rpc.WEBHOOK_REPLAY, rpc.ReplayRequest, api.replay),
        (rpc.WEBHOOK_TEST, rpc.WebhookRequest, api.test),
    ):
        runtime.rpc.add(operation, request_type, handler)  # type: ignore[arg-type]
