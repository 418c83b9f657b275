"""Registers the deliveries API on the webhook-fanout's runtime: the delivery log,
redelivery, replay and the test send. No projection of its own: it reads the deliveries the
engine keeps and asks the engine (``deliveries.operations``) to requeue, replay and test."""

from __future__ import annotations

from contracts.rpc import webhooks as rpc
from services.webhook_fanout.deliveries_api.handlers import DeliveriesApi
from shared.service import Runtime


async def setup(runtime: Runtime) -> None:
    api = DeliveriesApi(runtime=runtime)
    for operation, request_type, handler in (
        (rpc.DELIVERIES_LIST, rpc.DeliveriesListRequest, api.list),
        (rpc.DELIVERY_GET, rpc.DeliveryRequest, api.get),
        (rpc.DELIVERY_REDELIVER, rpc.DeliveryRequest, api.redeliver),
        (rpc.WEBHOOK_REPLAY, rpc.ReplayRequest, api.replay),
        (rpc.WEBHOOK_TEST, rpc.WebhookRequest, api.test),
    ):
        runtime.rpc.add(operation, request_type, handler)  # type: ignore[arg-type]
