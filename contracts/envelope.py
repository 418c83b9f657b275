"""The event envelope shared by every Gatehouse event, and the registry of payload types.

On the wire an event is the JSON encoding of :class:`Envelope`. Consumers first decode a
:class:`RawEnvelope` (payload left as raw bytes), look the payload type up by ``type`` and
``schema_version`` and decode ``data`` into it, so an unknown or malformed event is found
before any state is touched.
"""

from __future__ import annotations

import datetime as dt
import inspect
from typing import Any, ClassVar, TypeVar

import msgspec

from contracts.ids import new_id


class EventPayload(msgspec.Struct, frozen=True, kw_only=True):
    """Base class of every event payload.

    Subclasses set ``event_type`` (the catalog name ``<domain>.<event>``) and, for a breaking
    change, a new ``schema_version``. The subclass docstring is the event's description in the
    catalog, its JSON Schema and the AsyncAPI document (see :func:`event_description`).
    """

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


P = TypeVar("P", bound=EventPayload)


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """``command_id`` names the client's command (an ``Idempotency-Key`` request) that
    published the event: every attempt of one command carries the same one, and its events
    have ids derived from it (``shared.commands``), so a re-run after a crash re-publishes
    the same ids and finds what the first attempt did. None for everything else."""

    id: str
    type: str
    schema_version: int
    occurred_at: dt.datetime
    source: str
    aggregate: str
    actor: str
    correlation_id: str | None = None
    causation_id: str | None = None
    command_id: str | None = None
    data: Any = None


class RawEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    schema_version: int
    occurred_at: dt.datetime
    source: str
    aggregate: str
    actor: str
    correlation_id: str | None = None
    causation_id: str | None = None
    command_id: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"null")


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded event: envelope fields plus the typed payload and its stream sequence."""

    envelope: RawEnvelope
    payload: EventPayload
    sequence: int
    raw: bytes

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def type(self) -> str:
        return self.envelope.type


class UnknownEventType(ValueError):
    pass


_REGISTRY: dict[tuple[str, int], type[EventPayload]] = {}


def register(cls: type[P]) -> type[P]:
    key = (cls.event_type, cls.schema_version)
    if key in _REGISTRY and _REGISTRY[key] is not cls:
        raise ValueError(f"event type {key} registered twice")
    _REGISTRY[key] = cls
    return cls


def registry() -> dict[tuple[str, int], type[EventPayload]]:
    return dict(_REGISTRY)


def event_description(cls: type[EventPayload]) -> str:
    """The catalog description of an event: its docstring.

    A plain ``description = "..."`` class attribute is accepted too, but only on payloads that
    have no ``description`` field of their own: a field of that name replaces the class
    attribute, which is why the docstring is the place for it.
    """
    doc = cls.__dict__.get("__doc__")
    if isinstance(doc, str) and doc.strip():
        return inspect.cleandoc(doc)
    attribute = cls.__dict__.get("description")
    return attribute.strip() if isinstance(attribute, str) else ""


def payload_type(event_type: str, schema_version: int) -> type[EventPayload]:
    try:
        return _REGISTRY[(event_type, schema_version)]
    except KeyError:
        raise UnknownEventType(f"unknown event type {event_type!r} v{schema_version}") from None


def subject_for(event_type: str) -> str:
    """The NATS subject of an event type is its catalog name, ``<domain>.<event>``."""
    return event_type


def domains() -> list[str]:
    return sorted({t.split(".", 1)[0] for t, _ in _REGISTRY})


_encoder = msgspec.json.Encoder(order="sorted")
_raw_decoder = msgspec.json.Decoder(RawEnvelope)


def make_envelope(
    payload: EventPayload,
    *,
    source: str,
    aggregate: str,
    actor: str,
    occurred_at: dt.datetime,
    event_id: str | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    command_id: str | None = None,
) -> Envelope:
    return Envelope(
        id=event_id or new_id(),
        type=payload.event_type,
        schema_version=payload.schema_version,
        occurred_at=occurred_at.astimezone(dt.UTC),
        source=source,
        aggregate=aggregate,
        actor=actor,
        correlation_id=correlation_id,
        causation_id=causation_id,
        command_id=command_id,
        data=payload,
    )


def encode_envelope(envelope: Envelope) -> bytes:
    """Canonical bytes: sorted keys, no whitespace. The audit hash chain depends on this."""
    return _encoder.encode(envelope)


def decode_event(raw: bytes, *, sequence: int) -> Event:
    """Decode bytes from the bus; raises msgspec.ValidationError / UnknownEventType."""
    env = _raw_decoder.decode(raw)
    cls = payload_type(env.type, env.schema_version)
    payload = msgspec.json.decode(env.data, type=cls)
    return Event(envelope=env, payload=payload, sequence=sequence, raw=raw)


class OpaquePayload(EventPayload, frozen=True, kw_only=True):
    """The payload of an event read by its envelope alone (see :func:`decode_envelope`); the
    payload's JSON is still in ``Event.raw``. Never registered, never published."""

    event_type = ""


def decode_envelope(raw: bytes, *, sequence: int) -> Event:
    """Decode the envelope only, whatever the event type or payload shape.

    For consumers that record every event rather than interpret it (the audit log): an event
    type newer than this code, or a payload that does not match its Struct, is still a fact on
    the stream. Raises msgspec.DecodeError / ValidationError when the bytes are no envelope.
    """
    env = _raw_decoder.decode(raw)
    return Event(envelope=env, payload=OpaquePayload(), sequence=sequence, raw=raw)
