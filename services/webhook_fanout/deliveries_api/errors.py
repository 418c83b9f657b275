"""The errors of the deliveries API, each with its stable problem ``code`` (an unknown
subscription is ``domain.errors.WebhookNotFound``, the service's one)."""

from __future__ import annotations

from shared.errors import Conflict, NotFound, ValidationFailed


class DeliveryNotFound(NotFound):
    """The subscription has no delivery of this id (a delivery of another subscription
    answers the same: ids are not a way to learn about other subscriptions)."""

    code, title = "delivery_not_found", "The webhook subscription has no delivery of this id"


class DeliveryInFlight(Conflict):
    """A sender holds the delivery right now; redeliver once its attempt has ended."""

    code, title = "delivery_in_flight", "The delivery is being sent right now"


class InvalidTimeRange(ValidationFailed):
    code, title = "invalid_time_range", "The time range is empty or reversed"
