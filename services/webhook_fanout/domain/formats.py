"""The HTTP request of one delivery of one event, in each subscription format.

- ``standard``: body = the envelope JSON exactly as published; ``webhook-id`` (the delivery
  id), ``webhook-timestamp`` (this attempt), ``webhook-signature``.
- ``orbitalreg``: body = the envelope; ``X-Orbitalreg-Event``, ``X-Orbitalreg-Delivery``
  (the delivery UUID), ``X-Orbitalreg-Signature``.
- ``cloudevents``: CloudEvents 1.0 structured mode (``application/cloudevents+json``), signed
  like ``standard`` when the subscription has keys.
- ``slack``: an incoming-webhook message (see :mod:`.slack`); unsigned, as Slack expects (the
  incoming-webhook URL is itself the secret).
- ``github_repository_dispatch`` / ``github_workflow_dispatch`` (workflow triggers only): a
  GitHub Actions dispatch (see :mod:`.dispatch`), ``Authorization: Bearer`` with the token the
  trigger keeps as its secret.

The delivery id is the same on every attempt of a delivery, so receivers de-duplicate on it;
the timestamp is the attempt's, so a replayed old request fails the receiver's tolerance.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Final, Literal

import msgspec

from contracts.envelope import Event, RawEnvelope

from .dispatch import (
    DispatchOptions,
    dispatch_headers,
    repository_dispatch_body,
    workflow_dispatch_body,
)
from .signing import SigningKeys, orbitalreg_signature, sign, unix_seconds
from .slack import slack_message

WebhookFormat = Literal[
    "standard",
    "orbitalreg",
    "slack",
    "cloudevents",
    "github_repository_dispatch",
    "github_workflow_dispatch",
]
FORMATS: Final[tuple[WebhookFormat, ...]] = ("standard", "orbitalreg", "slack", "cloudevents")

JSON: Final = "application/json"
CLOUDEVENTS_JSON: Final = "application/cloudevents+json; charset=utf-8"
CLOUDEVENTS_SOURCE_PREFIX: Final = "/gatehouse/"


def user_agent(version: str) -> str:
    return f"Gatehouse-Webhooks/{version}"


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """What one attempt of one delivery needs besides the event. ``keys`` is None only for a
    format that is not signed (slack)."""

    delivery_id: uuid.UUID
    attempted_at: dt.datetime
    version: str
    api_base_url: str
    keys: SigningKeys | None = None
    # A dispatch format's ref / event_type (workflow triggers).
    dispatch: DispatchOptions | None = None


class OutboundRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A POST to the receiver: header names as sent, the exact body bytes signed."""

    headers: dict[str, str]
    body: bytes


class MissingKeys(ValueError):
    """A signed format was asked for without the subscription's keys: a bug, not input."""


def build_request(event: Event, *, format: WebhookFormat, delivery: Delivery) -> OutboundRequest:
    if format == "standard":
        return _standard(event, delivery)
    if format == "orbitalreg":
        return _orbitalreg(event, delivery)
    if format == "cloudevents":
        return _cloudevents(event, delivery)
    if format == "slack":
        return _slack(event, delivery)
    if format in ("github_repository_dispatch", "github_workflow_dispatch"):
        return _github_dispatch(event, delivery, workflow=format == "github_workflow_dispatch")
    raise ValueError(f"unknown webhook format {format!r}")


def _base_headers(delivery: Delivery, content_type: str) -> dict[str, str]:
    return {"Content-Type": content_type, "User-Agent": user_agent(delivery.version)}


def standard_headers(body: bytes, delivery: Delivery) -> dict[str, str]:
    """The Standard Webhooks headers of ``body`` for this attempt."""
    if delivery.keys is None:
        raise MissingKeys("a Standard Webhooks delivery is signed: keys are required")
    msg_id = str(delivery.delivery_id)
    timestamp = unix_seconds(delivery.attempted_at)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(msg_id, timestamp, body, delivery.keys.standard()),
    }


def _standard(event: Event, delivery: Delivery) -> OutboundRequest:
    body = event.raw
    headers = _base_headers(delivery, JSON) | standard_headers(body, delivery)
    return OutboundRequest(headers=headers, body=body)


def _orbitalreg(event: Event, delivery: Delivery) -> OutboundRequest:
    if delivery.keys is None:
        raise MissingKeys("an OrbitalReg delivery is signed: keys are required")
    body = event.raw
    headers = _base_headers(delivery, JSON) | {
        "X-Orbitalreg-Event": event.envelope.type,
        "X-Orbitalreg-Delivery": str(delivery.delivery_id),
        "X-Orbitalreg-Signature": orbitalreg_signature(body, delivery.keys.orbitalreg()),
    }
    return OutboundRequest(headers=headers, body=body)


class CloudEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """CloudEvents 1.0, JSON event format. ``schemaversion`` (an extension attribute) is the
    catalog's payload version; ``correlationid`` the request that led to the event."""

    # Required attributes carry no default: omit_defaults would drop them.
    specversion: Literal["1.0"]
    id: str
    source: str
    type: str
    time: str
    subject: str
    datacontenttype: str
    schemaversion: int
    correlationid: str | None = None
    data: msgspec.Raw


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def cloudevent(envelope: RawEnvelope) -> CloudEvent:
    """The CloudEvent of an envelope: ``id`` is the event's (the same for every subscription
    and attempt, as CloudEvents de-duplicates on source + id), ``type`` its catalog name,
    ``subject`` its aggregate and ``data`` its payload bytes as published."""
    return CloudEvent(
        specversion="1.0",
        id=envelope.id,
        source=CLOUDEVENTS_SOURCE_PREFIX + envelope.source,
        type=envelope.type,
        time=rfc3339(envelope.occurred_at),
        subject=envelope.aggregate,
        datacontenttype=JSON,
        schemaversion=envelope.schema_version,
        correlationid=envelope.correlation_id,
        data=envelope.data,
    )


_encoder = msgspec.json.Encoder()


def _cloudevents(event: Event, delivery: Delivery) -> OutboundRequest:
    body = _encoder.encode(cloudevent(event.envelope))
    headers = _base_headers(delivery, CLOUDEVENTS_JSON)
    if delivery.keys is not None:
        headers |= standard_headers(body, delivery)
    return OutboundRequest(headers=headers, body=body)


def _slack(event: Event, delivery: Delivery) -> OutboundRequest:
    message: dict[str, Any] = slack_message(event.envelope, api_base_url=delivery.api_base_url)
    return OutboundRequest(headers=_base_headers(delivery, JSON), body=_encoder.encode(message))


def _github_dispatch(event: Event, delivery: Delivery, *, workflow: bool) -> OutboundRequest:
    if delivery.keys is None:
        raise MissingKeys("a GitHub dispatch is authenticated: the token is required")
    options = delivery.dispatch or DispatchOptions()
    shape = workflow_dispatch_body if workflow else repository_dispatch_body
    body = _encoder.encode(shape(event.envelope, delivery_id=delivery.delivery_id, options=options))
    headers = _base_headers(delivery, JSON) | dispatch_headers(delivery.keys.current.text)
    return OutboundRequest(headers=headers, body=body)
