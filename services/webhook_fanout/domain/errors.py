"""The errors webhook-fanout's domain raises, each with a stable problem ``code``.

All are permanent: the same input fails the same way again. The one ``WebhookNotFound`` of
the service is here (subscriptions, deliveries and the deliveries API all answer with it).
"""

from __future__ import annotations

from shared.errors import NotFound, Unauthorized, ValidationFailed


class WebhookNotFound(NotFound):
    """No live subscription has this id (never created, or deleted)."""

    code, title = "webhook_not_found", "No webhook subscription has this id"


class InvalidWebhookSecret(ValidationFailed):
    """A secret given at creation or rotation that cannot sign this subscription's format.
    The detail says what is wrong without repeating the secret."""

    code, title = "invalid_webhook_secret", "Invalid webhook secret"


class InvalidEventPattern(ValidationFailed):
    """An event pattern that names no event of the catalog (nor a known upcoming one)."""

    code, title = "unknown_event_type", "Unknown event type"


class InvalidReceiverUrl(ValidationFailed):
    """A receiver URL refused by its shape (scheme, credentials, fragment, length)."""

    code, title = "invalid_webhook_url", "Invalid webhook receiver URL"


class SignatureRejected(Unauthorized):
    """An inbound (or test) delivery whose signature does not verify. ``code`` says why:
    ``webhook_headers_missing``, ``webhook_timestamp_invalid``, ``webhook_timestamp_too_old``,
    ``webhook_timestamp_too_new``, ``webhook_signature_mismatch``."""

    code, title = "webhook_signature_mismatch", "Webhook signature does not verify"
