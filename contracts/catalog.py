"""The public event catalog, derived from the registered payload Structs.

Pure functions over :func:`contracts.envelope.registry`: for every event type and schema
version its subject, description and JSON Schema (the wire envelope with ``data`` = the
payload), and the AsyncAPI 3.0 document for the NATS channels. ``python -m contracts.generate``
writes them to ``contracts/schemas/`` and ``contracts/asyncapi.yaml``; a unit test keeps the
checked-in files in sync with the Structs.

The JSON Schemas are draft-07 (the schema format every AsyncAPI tool understands): shared
definitions live under ``definitions`` and the root is the envelope object itself.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

from contracts import events as _events  # noqa: F401  (registers the catalog)
from contracts.envelope import Envelope, EventPayload, event_description, registry, subject_for
from contracts.jsonschema import schema_components

STREAM_NAME = "GATEHOUSE"
# Bumped by hand when the catalog changes in a way subscribers should notice.
CATALOG_VERSION = "1.0.0"
JSON_SCHEMA_DIALECT = "http://json-schema.org/draft-07/schema#"
ASYNCAPI_SCHEMA_FORMAT = "application/schema+json;version=draft-07"
SCHEMAS_DIR = "schemas"
_DEFINITIONS_REF = "#/definitions/{name}"

# What every envelope field means; the envelope schema carries these as descriptions.
ENVELOPE_FIELD_DESCRIPTIONS: dict[str, str] = {
    "id": "Event id, a UUIDv7 (time-ordered), or a UUIDv5 derived from what the event "
    "records when a retry must publish the same id (a command_id, a scan step). Also sent "
    "as the Nats-Msg-Id header, so JetStream drops a re-publish of the same event inside "
    "the stream's duplicate window.",
    "type": "Event type, the catalog name <domain>.<event>; also the NATS subject.",
    "schema_version": "Version of the payload schema. Payload changes are additive; a "
    "breaking change is a new schema_version and consumers accept both.",
    "occurred_at": "When the event happened, RFC 3339 in UTC.",
    "source": "The service that published the event.",
    "aggregate": "The aggregate the event belongs to, as <kind>:<id> (e.g. release:<uuid>).",
    "actor": "Who caused the event: a principal id (apikey:<id>) or 'system'.",
    "correlation_id": "The HTTP request id of the request that led to this event.",
    "causation_id": "The id of the event that caused this one, if any.",
    "command_id": "The client command (a request with an Idempotency-Key) that published "
    "this event, if any: every attempt of the command carries the same id, and its events "
    "have ids derived from it, so a retry after a crash never publishes them twice.",
    "data": "The typed payload of this event type and schema version.",
}


class CatalogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event type at one schema version, as listed by ``GET /api/v1/events/catalog``."""

    type: str
    schema_version: int
    subject: str
    description: str
    schema: dict[str, Any]


class EventCatalog(msgspec.Struct, frozen=True, kw_only=True):
    items: list[CatalogEntry]


def schema_file_name(event_type: str, schema_version: int) -> str:
    return f"{event_type}.v{schema_version}.json"


def message_id(event_type: str, schema_version: int) -> str:
    return f"{event_type}.v{schema_version}"


def _event_types() -> list[type[EventPayload]]:
    return [cls for _, cls in sorted(registry().items())]


def _envelope_struct(cls: type[EventPayload]) -> type[msgspec.Struct]:
    """The wire envelope of one event type: the fields of :class:`Envelope`, ``data`` typed."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for info in msgspec.structs.fields(Envelope):
        description = ENVELOPE_FIELD_DESCRIPTIONS.get(info.name)
        if description is None:
            raise ValueError(f"envelope field {info.name!r} has no catalog description")
        meta = msgspec.Meta(description=description)
        field_type: Any = info.type
        if info.name == "id":
            meta = msgspec.Meta(description=description, extra_json_schema={"format": "uuid"})
        elif info.name == "occurred_at":
            field_type = dt.datetime
            meta = msgspec.Meta(description=description, tz=True)
        elif info.name == "data":
            field_type = cls
        annotated = Annotated[field_type, meta]
        if info.name == "data" or info.required:
            fields.append((info.name, annotated))
        else:
            fields.append((info.name, annotated, info.default))
    return msgspec.defstruct(f"{cls.__name__}Envelope", fields, kw_only=True, frozen=True)


def event_schema(cls: type[EventPayload]) -> dict[str, Any]:
    """The JSON Schema of one event as it travels on the bus (envelope + payload)."""
    envelope = _envelope_struct(cls)
    _, components = schema_components([envelope], ref_template=_DEFINITIONS_REF)
    root = dict(components.pop(envelope.__name__))
    properties = dict(root["properties"])
    # msgspec cannot express "this exact string" for a dynamic value: pin type and version.
    properties["type"] = {**properties["type"], "const": cls.event_type}
    properties["schema_version"] = {
        **properties["schema_version"],
        "type": "integer",
        "const": cls.schema_version,
    }
    root["properties"] = properties
    root["title"] = f"{cls.event_type} v{cls.schema_version}"
    root["description"] = event_description(cls)
    # The envelope accepts unknown fields (additive changes), as the decoders do.
    return {"$schema": JSON_SCHEMA_DIALECT, **root, "definitions": components}


def catalog_entries() -> list[CatalogEntry]:
    """Every registered event, ordered by type then schema version."""
    return [
        CatalogEntry(
            type=cls.event_type,
            schema_version=cls.schema_version,
            subject=subject_for(cls.event_type),
            description=event_description(cls),
            schema=event_schema(cls),
        )
        for cls in _event_types()
    ]


def event_catalog() -> EventCatalog:
    return EventCatalog(items=catalog_entries())


def _summary(description: str) -> str:
    first = description.split("\n\n", 1)[0]
    return " ".join(first.split())


def asyncapi_document(entries: list[CatalogEntry]) -> dict[str, Any]:
    """The AsyncAPI 3.0 document: one channel per subject, one message per schema version,
    one ``receive`` operation per channel (what a subscriber does)."""
    by_subject: dict[str, list[CatalogEntry]] = {}
    for entry in entries:
        by_subject.setdefault(entry.subject, []).append(entry)

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for subject, versions in sorted(by_subject.items()):
        domain = subject.split(".", 1)[0]
        channel_messages = {}
        for entry in versions:
            mid = message_id(entry.type, entry.schema_version)
            channel_messages[mid] = {"$ref": f"#/components/messages/{mid}"}
            messages[mid] = {
                "name": entry.type,
                "title": f"{entry.type} v{entry.schema_version}",
                "summary": _summary(entry.description),
                "description": entry.description,
                "contentType": "application/json",
                "tags": [{"name": domain}],
                "headers": {"$ref": "#/components/schemas/NatsHeaders"},
                "correlationId": {"$ref": "#/components/correlationIds/requestId"},
                "payload": {
                    "schemaFormat": ASYNCAPI_SCHEMA_FORMAT,
                    "schema": {
                        "$ref": f"{SCHEMAS_DIR}/"
                        f"{schema_file_name(entry.type, entry.schema_version)}"
                    },
                },
            }
        channels[subject] = {
            "address": subject,
            "title": subject,
            "description": (
                f"`{subject}` events on the {STREAM_NAME} JetStream stream. "
                + " ".join(_summary(e.description) for e in versions[-1:])
            ),
            "servers": [{"$ref": "#/servers/nats"}],
            "messages": channel_messages,
        }
        operations[f"receive.{subject}"] = {
            "action": "receive",
            "title": f"Receive {subject}",
            "summary": f"Consume {subject} events from the {STREAM_NAME} stream.",
            "channel": {"$ref": f"#/channels/{subject}"},
            "messages": [
                {"$ref": f"#/channels/{subject}/messages/{mid}"} for mid in channel_messages
            ],
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Gatehouse events",
            "version": CATALOG_VERSION,
            "description": (
                "Every Gatehouse domain event, published on NATS JetStream. All events are "
                f"stored on the `{STREAM_NAME}` stream; the subject of an event is its type, "
                "`<domain>.<event>`, so a subscriber can consume one event (`artifact.promoted`),"
                " one level (`artifact.*`) or a whole domain (`finding.>`) with a durable "
                "consumer. Every message is the JSON envelope described by its schema; the "
                "`Nats-Msg-Id` header carries the event id."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": (
                    f"The Gatehouse NATS server with JetStream; events live on the "
                    f"{STREAM_NAME} stream."
                ),
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": {
                "NatsHeaders": {
                    "type": "object",
                    "properties": {
                        "Nats-Msg-Id": {
                            "type": "string",
                            "description": "The event id; JetStream de-duplicates on it.",
                        }
                    },
                    "required": ["Nats-Msg-Id"],
                }
            },
            "correlationIds": {
                "requestId": {
                    "description": "The HTTP request id that led to the event.",
                    "location": "$message.payload#/correlation_id",
                }
            },
        },
    }
