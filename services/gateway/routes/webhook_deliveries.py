"""A webhook subscription's deliveries (owned by webhook-fanout, asked over
``svc.webhook-fanout.deliveries_list`` … ``webhook_test``), ADMIN only:

* ``GET /api/admin/webhooks/{id}/deliveries`` (``status``, ``event_type``, cursor): newest
  first, each with its latest attempts;
* ``GET …/deliveries/{delivery_id}``: one delivery with its attempts in full;
* ``POST …/deliveries/{delivery_id}/redeliver`` (202): a new attempt series, same id;
* ``POST …/replay?since=&until=`` (202): every matching event of the range again;
* ``POST …/test``: a ``webhook.test`` event sent now, answered with the receiver's status
  and latency.

The POSTs take ``Idempotency-Key``. Ids are checked here, so a malformed one is a 422 naming
the path parameter before anything is asked.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, TypeVar

import msgspec
from aiohttp import web

from contracts.rpc import webhooks as rpc
from services.gateway.routes._upstream import ask
from services.gateway.routing import ADMIN_ONLY, RequestContext, Route
from shared.errors import ValidationFailed
from shared.http import field_error, json_response
from shared.pagination import PageQuery

_TAG = "webhooks"
_ERRORS = (404, 422, 502, 503, 504)
_HOOK = "/api/admin/webhooks/{id}"
_DELIVERIES = _HOOK + "/deliveries"
_DELIVERY = _DELIVERIES + "/{delivery_id}"

Req = TypeVar("Req", bound=msgspec.Struct)


class DeliveriesQuery(PageQuery, frozen=True, kw_only=True, forbid_unknown_fields=True):
    status: rpc.DeliveryStatus | None = None
    event_type: (
        Annotated[str, msgspec.Meta(max_length=130, description="an event type, exactly")] | None
    ) = None


class ReplayQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    since: Annotated[dt.datetime, msgspec.Meta(description="RFC 3339, inclusive")]
    until: (
        Annotated[dt.datetime, msgspec.Meta(description="RFC 3339, exclusive (absent: now)")] | None
    ) = None


def _request(ctx: RequestContext, type_: type[Req], **fields: Any) -> Req:
    """The RPC request from the path parameters and ``fields``, held to its schema here."""
    path = {
        name: ctx.request.match_info[name]
        for name in ("id", "delivery_id")
        if name in ctx.request.match_info
    }
    try:
        return msgspec.convert({**path, **fields}, type_)
    except msgspec.ValidationError as exc:
        error = field_error(str(exc))
        where = "path" if error["field"].removeprefix("$.") in path else "query"
        raise ValidationFailed(str(exc), extra={"errors": [{**error, "in": where}]}) from exc


async def list_deliveries(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, DeliveriesQuery)
    request = _request(
        ctx,
        rpc.DeliveriesListRequest,
        status=query.status,
        event_type=query.event_type,
        cursor=query.cursor,
        limit=query.limit,
    )
    return json_response(
        await ask(ctx, rpc.SERVICE, rpc.DELIVERIES_LIST, request, rpc.DeliveryPage)
    )


async def get_delivery(ctx: RequestContext) -> web.StreamResponse:
    request = _request(ctx, rpc.DeliveryRequest)
    return json_response(await ask(ctx, rpc.SERVICE, rpc.DELIVERY_GET, request, rpc.DeliveryView))


async def redeliver(ctx: RequestContext) -> web.StreamResponse:
    request = _request(ctx, rpc.DeliveryRequest)
    view = await ask(ctx, rpc.SERVICE, rpc.DELIVERY_REDELIVER, request, rpc.DeliveryView)
    return json_response(view, status=202)


async def replay(ctx: RequestContext) -> web.StreamResponse:
    query = ctx.query
    assert isinstance(query, ReplayQuery)
    request = rpc.ReplayRequest(
        id=_request(ctx, rpc.WebhookRequest).id, since=query.since, until=query.until
    )
    reply = await ask(ctx, rpc.SERVICE, rpc.WEBHOOK_REPLAY, request, rpc.ReplayReply)
    return json_response(reply, status=202)


async def test_webhook(ctx: RequestContext) -> web.StreamResponse:
    request = _request(ctx, rpc.WebhookRequest)
    # The receiver may take its whole 15 s: wait for it past the usual RPC deadline.
    timeout = max(ctx.runtime.settings.rpc_timeout_seconds, 25.0)
    reply = await ask(
        ctx, rpc.SERVICE, rpc.WEBHOOK_TEST, request, rpc.WebhookTestReply, timeout=timeout
    )
    return json_response(reply)


ROUTES: list[Route] = [
    Route(
        method="GET",
        path=_DELIVERIES,
        handler=list_deliveries,
        roles=ADMIN_ONLY,
        summary="The subscription's deliveries, newest first (cursor), filtered by status "
        "(pending, delivering, succeeded, retrying, dead, cancelled) and event_type; each with "
        "its latest attempts (request headers, response status, the response body cut to 1 "
        "KiB, latency, error). 404 webhook_not_found",
        tag=_TAG,
        query=DeliveriesQuery,
        response=rpc.DeliveryPage,
        errors=_ERRORS,
    ),
    Route(
        method="GET",
        path=_DELIVERY,
        handler=get_delivery,
        roles=ADMIN_ONLY,
        summary="One delivery with its latest 10 attempts in full (response bodies up to 64 "
        "KiB). 404 webhook_not_found, delivery_not_found",
        tag=_TAG,
        response=rpc.DeliveryView,
        errors=_ERRORS,
    ),
    Route(
        method="POST",
        path=_DELIVERY + "/redeliver",
        handler=redeliver,
        roles=ADMIN_ONLY,
        summary="Send the delivery again: a new attempt series under the same delivery id "
        "(receivers de-duplicate on it), due now; dead deliveries included. 202 with the "
        "delivery; webhook.redelivery-requested is published. 404 webhook_not_found, "
        "delivery_not_found; 409 delivery_in_flight while an attempt is under way",
        tag=_TAG,
        response=rpc.DeliveryView,
        response_status=202,
        errors=(409, *_ERRORS),
    ),
    Route(
        method="POST",
        path=_HOOK + "/replay",
        handler=replay,
        roles=ADMIN_ONLY,
        summary="Send every event that occurred in [since, until) (until absent: now) to the "
        "subscription again: its deliveries of them are requeued, and matching events it "
        "never got (since its creation) are queued. 202 with the count; "
        "webhook.redelivery-requested is published. 422 invalid_time_range; 404 "
        "webhook_not_found",
        tag=_TAG,
        query=ReplayQuery,
        response=rpc.ReplayReply,
        response_status=202,
        errors=_ERRORS,
    ),
    Route(
        method="POST",
        path=_HOOK + "/test",
        handler=test_webhook,
        roles=ADMIN_ONLY,
        summary="Send a webhook.test event to the receiver now, in the subscription's format "
        "and signed with its secret, and answer with what it said: ok (2xx), response_status, "
        "latency_ms, error (timeout, connection error, refused address). Recorded as a "
        "delivery (succeeded or cancelled; never retried). 404 webhook_not_found",
        tag=_TAG,
        response=rpc.WebhookTestReply,
        errors=_ERRORS,
    ),
]
