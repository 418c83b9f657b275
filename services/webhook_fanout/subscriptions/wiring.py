"""Registers the subscriptions part on the webhook-fanout's runtime: the ``subscriptions``
projection and ``svc.webhook-fanout.webhook_*`` (create, list, get, update, delete,
rotate_secret)."""

from __future__ import annotations

from contracts.rpc import webhooks as rpc
from services.webhook_fanout.subscriptions.handlers import SubscriptionHandlers
from services.webhook_fanout.subscriptions.projection import SubscriptionsProjection
from shared.outbound import parse_cidrs
from shared.service import Runtime

PROJECTION = "subscriptions"


async def setup(runtime: Runtime) -> None:
    try:
        parse_cidrs(runtime.settings.outbound_allow_cidrs)
    except ValueError as exc:  # fail at start-up, naming the variable
        raise ValueError(f"GATEHOUSE_OUTBOUND_ALLOW_CIDRS: {exc}") from None
    runner = runtime.add_projection(SubscriptionsProjection(name=PROJECTION))
    handlers = SubscriptionHandlers(
        pool=runtime.pool, bus=runtime.bus, runner=runner, settings=runtime.settings
    )
    runtime.rpc.add(rpc.WEBHOOK_CREATE, rpc.WebhookCreateRequest, handlers.create)
    runtime.rpc.add(rpc.WEBHOOK_LIST, rpc.WebhookListRequest, handlers.list)
    runtime.rpc.add(rpc.WEBHOOK_GET, rpc.WebhookRequest, handlers.get)
    runtime.rpc.add(rpc.WEBHOOK_UPDATE, rpc.WebhookUpdateRequest, handlers.update)
    runtime.rpc.add(rpc.WEBHOOK_DELETE, rpc.WebhookRequest, handlers.delete)
    runtime.rpc.add(rpc.WEBHOOK_ROTATE_SECRET, rpc.WebhookRotateRequest, handlers.rotate)
