"""``svc.webhook-fanout.*``: webhook subscriptions (``/api/admin/webhooks``, ADMIN) and their
deliveries.

The gateway authenticates and checks the role, then calls these operations; replies are the
HTTP bodies. A subscription's ``secret`` appears in exactly two replies: the creation and a
rotation (``WebhookSecretReply``); every other view omits it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import msgspec

from contracts.events.webhooks import (
    DeliveryId,
    Description,
    DisabledReason,
    ReceiverUrl,
    WebhookEvents,
    WebhookFormat,
    WebhookId,
)
from contracts.rpc.scanner_scans import Cursor, Limit

SERVICE = "webhook-fanout"
WEBHOOK_CREATE = "webhook_create"
WEBHOOK_LIST = "webhook_list"
WEBHOOK_GET = "webhook_get"
WEBHOOK_UPDATE = "webhook_update"
WEBHOOK_DELETE = "webhook_delete"
WEBHOOK_ROTATE_SECRET = "webhook_rotate_secret"
WEBHOOK_TEST = "webhook_test"
DELIVERIES_LIST = "deliveries_list"
DELIVERY_GET = "delivery_get"
DELIVERY_REDELIVER = "delivery_redeliver"
WEBHOOK_REPLAY = "webhook_replay"

# A Standard Webhooks secret (`whsec_` and base64 of 24 to 64 random bytes) or, for an
# `orbitalreg` subscription, the secret its receiver already uses (16 to 256 visible ASCII
# characters). The fan-out checks which (422 invalid_webhook_secret, saying what is wrong).
Secret = Annotated[
    str,
    msgspec.Meta(
        min_length=16,
        max_length=256,
        description="whsec_<base64 of 24 to 64 bytes>; orbitalreg also takes 16 to 256 visible"
        " ASCII characters",
    ),
]
# How long the previous secret keeps signing after a rotation (Svix: 24 h).
ROTATION_GRACE_DEFAULT = dt.timedelta(hours=24)
DeliveryStatus = Literal["pending", "delivering", "succeeded", "retrying", "dead", "cancelled"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = (
    "pending",
    "delivering",
    "succeeded",
    "retrying",
    "dead",
    "cancelled",
)


# ---- subscriptions -------------------------------------------------------------------------
class WebhookBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /api/admin/webhooks``."""

    url: ReceiverUrl
    events: WebhookEvents
    # A project id or slug: only that project's events (events that name no project are
    # not delivered to a filtered subscription).
    project: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    description: Description = ""
    enabled: bool = True
    format: WebhookFormat = "standard"
    # Generated when absent.
    secret: Secret | None = None


class WebhookPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PATCH /api/admin/webhooks/{id}``: only the fields present change (``project: null``
    removes the filter)."""

    url: ReceiverUrl | msgspec.UnsetType = msgspec.UNSET
    events: WebhookEvents | msgspec.UnsetType = msgspec.UNSET
    project: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | msgspec.UnsetType | None
    ) = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    format: WebhookFormat | msgspec.UnsetType = msgspec.UNSET


class WebhookCreateRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # The project filter as the gateway resolved it (id), when the body names one.
    project_id: str | None = None
    body: WebhookBody


class WebhookRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``GET``/``DELETE …/{id}``, ``POST …/{id}/test``."""

    id: WebhookId
    # DELETE: revisions the caller accepts (from If-Match: "v<n>"); None: any.
    if_match: list[int] | None = None


class WebhookUpdateRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: WebhookId
    patch: WebhookPatch
    # Resolved by the gateway when the patch names a project.
    project_id: str | None = None
    # Revisions the caller accepts (from If-Match: "v<n>"); None: any.
    if_match: list[int] | None = None


class WebhookRotateRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: WebhookId
    # Seconds the previous secret keeps signing (0: stop at once).
    grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=7 * 24 * 3600)] = int(
        ROTATION_GRACE_DEFAULT.total_seconds()
    )
    # The new secret (generated when absent).
    secret: Secret | None = None


class WebhookListRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    cursor: Cursor | None = None
    limit: Limit = 50


class WebhookView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str
    events: list[str]
    project_id: str | None
    description: str
    enabled: bool
    format: WebhookFormat
    # Why the fan-out disabled it, when it did (enabling it again clears this).
    disabled_reason: DisabledReason | None = None
    secret_version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    # For ETag / If-Match.
    revision: int


class WebhookSecretReply(msgspec.Struct, frozen=True, kw_only=True):
    """The creation's and a rotation's answer: the view and the secret, shown this once."""

    webhook: WebhookView
    # Null only on an Idempotency-Key replay (and a retry that finds the first attempt's
    # write): the secret is shown once, to the first answer; rotate it when it was lost.
    secret: str | None


class WebhookPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[WebhookView]
    next_cursor: str | None = None


# ---- deliveries ----------------------------------------------------------------------------
class DeliveriesListRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: WebhookId
    status: DeliveryStatus | None = None
    event_type: Annotated[str, msgspec.Meta(max_length=130)] | None = None
    cursor: Cursor | None = None
    limit: Limit = 50


class DeliveryRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: WebhookId
    delivery_id: DeliveryId


class ReplayRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST …/{id}/replay?since=&until=``: every matching event of the range again."""

    id: WebhookId
    since: dt.datetime
    until: dt.datetime | None = None


class AttemptView(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    at: dt.datetime
    # The request as sent (signature headers included: they are HMACs, not the secret).
    request_headers: dict[str, str]
    response_status: int | None
    # The first 64 KiB of the response body at most, decoded as text (lossy).
    response_body: str | None
    response_truncated: bool = False
    latency_ms: float | None
    error: str | None = None


class DeliveryView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    status: DeliveryStatus
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None = None
    attempts: list[AttemptView]


class DeliveryPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[DeliveryView]
    next_cursor: str | None = None


class ReplayReply(msgspec.Struct, frozen=True, kw_only=True):
    """``202``: how many deliveries the replay queued."""

    webhook_id: str
    queued: int


class WebhookTestReply(msgspec.Struct, frozen=True, kw_only=True):
    """``POST …/{id}/test``: what the receiver answered to a ``webhook.test`` event."""

    delivery_id: str
    ok: bool
    response_status: int | None
    latency_ms: float | None
    error: str | None = None
