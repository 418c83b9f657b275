"""The event envelope, the registry and the catalog built from them."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, ClassVar

import msgspec
import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import given
from hypothesis import strategies as st

from contracts.catalog import (
    ENVELOPE_FIELD_DESCRIPTIONS,
    EventCatalog,
    catalog_entries,
    event_catalog,
    event_schema,
)
from contracts.envelope import (
    Envelope,
    EventPayload,
    UnknownEventType,
    decode_event,
    encode_envelope,
    event_description,
    make_envelope,
    payload_type,
    register,
    registry,
    subject_for,
)
from contracts.events.identity import ROLES, ApiKeyCreated, ProjectCreated, ProjectUpdated
from contracts.ids import new_id
from services.gateway.routes.events import ROUTES
from services.gateway.routing import RequestContext

EVENT_TYPE = re.compile(r"^[a-z][a-z0-9]*\.[a-z][a-z0-9-]*$")
WHEN = dt.datetime(2024, 5, 17, 12, 30, 15, 123456, tzinfo=dt.UTC)


def _envelope(payload: EventPayload, **fields: Any) -> Envelope:
    defaults: dict[str, Any] = {
        "source": "gateway",
        "aggregate": "project:p1",
        "actor": "apikey:k1",
        "occurred_at": WHEN,
    }
    return make_envelope(payload, **{**defaults, **fields})


# ---- envelope ---------------------------------------------------------------------------------


def test_an_event_survives_the_wire() -> None:
    payload = ProjectCreated(project_id="p1", slug="web-shop", name="Web shop", repos=["acme/web"])
    envelope = _envelope(payload, correlation_id="req-1", causation_id="evt-0")
    event = decode_event(encode_envelope(envelope), sequence=42)

    assert event.payload == payload
    assert event.sequence == 42
    assert event.id == envelope.id and event.type == "project.created"
    assert event.envelope.schema_version == 1
    assert event.envelope.occurred_at == WHEN
    assert (event.envelope.source, event.envelope.aggregate, event.envelope.actor) == (
        "gateway",
        "project:p1",
        "apikey:k1",
    )
    assert (event.envelope.correlation_id, event.envelope.causation_id) == ("req-1", "evt-0")
    assert event.raw == encode_envelope(envelope)


def test_the_encoding_is_canonical_sorted_compact_and_utc() -> None:
    local = dt.datetime(2024, 5, 17, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    envelope = _envelope(ProjectUpdated(project_id="p1", name="New"), occurred_at=local)
    raw = encode_envelope(envelope)
    decoded = msgspec.json.decode(raw)
    assert list(decoded) == sorted(decoded)
    assert list(decoded["data"]) == ["name", "project_id"]  # unset fields are left out
    assert b" " not in raw.replace(b"New", b"")
    assert decoded["occurred_at"] == "2024-05-17T12:30:00Z"
    assert encode_envelope(envelope) == raw


def test_make_envelope_assigns_a_fresh_uuid7_unless_given_one() -> None:
    first = _envelope(ProjectUpdated(project_id="p1"))
    second = _envelope(ProjectUpdated(project_id="p1"))
    assert first.id != second.id
    assert first.id[14] == "7"
    chosen = new_id()
    assert _envelope(ProjectUpdated(project_id="p1"), event_id=chosen).id == chosen


slugs = st.from_regex(r"^[a-z0-9][a-z0-9-]{0,62}$", fullmatch=True)
texts = st.text(max_size=40)


@given(
    slug=slugs,
    name=texts,
    description=texts,
    repos=st.lists(texts, max_size=3),
    badge=st.sampled_from(["public", "private"]),
)
def test_project_created_round_trips_for_any_valid_value(
    slug: str, name: str, description: str, repos: list[str], badge: str
) -> None:
    payload = ProjectCreated(
        project_id=new_id(),
        slug=slug,
        name=name,
        description=description,
        repos=repos,
        badge=badge,  # type: ignore[arg-type]
    )
    event = decode_event(encode_envelope(_envelope(payload)), sequence=1)
    assert event.payload == payload


@given(roles=st.lists(st.sampled_from(ROLES), min_size=1, unique=True))
def test_api_key_created_round_trips(roles: list[str]) -> None:
    payload = ApiKeyCreated(
        key_id="k1",
        name="ci",
        prefix="gh_ab",
        token_sha256="0" * 64,
        roles=roles,  # type: ignore[arg-type]
        expires_at=WHEN,
    )
    assert decode_event(encode_envelope(_envelope(payload)), sequence=7).payload == payload


# ---- decode errors ----------------------------------------------------------------------------


def _raw(**changes: Any) -> bytes:
    wire = msgspec.json.decode(
        encode_envelope(_envelope(ProjectCreated(project_id="p", slug="ok", name="Ok")))
    )
    wire.update(changes)
    return msgspec.json.encode(wire)


def test_an_unknown_event_type_is_refused_by_name() -> None:
    with pytest.raises(UnknownEventType, match=r"'project\.exploded' v1"):
        decode_event(_raw(type="project.exploded"), sequence=1)


def test_an_unknown_schema_version_is_refused() -> None:
    with pytest.raises(UnknownEventType, match="v99"):
        decode_event(_raw(schema_version=99), sequence=1)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"project_id": "p", "slug": "Has Spaces", "name": "x"}, "$.slug"),
        ({"project_id": "p", "name": "x"}, "slug"),
        ({"project_id": "p", "slug": "ok", "name": "x", "badge": "secret"}, "$.badge"),
        ("not an object", "object"),
    ],
)
def test_a_payload_that_fails_validation_names_the_field(data: Any, path: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=re.escape(path)):
        decode_event(_raw(data=data), sequence=1)


@pytest.mark.parametrize("raw", [b"", b"\x00garbage", b"[1, 2]", b'{"id": "x"}'])
def test_garbage_and_envelopes_missing_fields_are_refused(raw: bytes) -> None:
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError)):
        decode_event(raw, sequence=1)


# ---- registry ---------------------------------------------------------------------------------


def test_every_registered_event_is_named_versioned_and_described() -> None:
    assert registry(), "importing contracts.events registers the catalog"
    for (event_type, version), cls in registry().items():
        assert EVENT_TYPE.match(event_type), event_type
        assert version >= 1 and cls.schema_version == version
        assert cls.event_type == event_type
        assert event_description(cls), f"{cls.__name__} needs a docstring"
        assert payload_type(event_type, version) is cls
        assert subject_for(event_type) == event_type


def test_a_payload_field_named_description_keeps_the_event_description() -> None:
    assert "description" in ProjectCreated.__struct_fields__
    assert event_description(ProjectCreated) == "A project was created."


def test_registering_a_second_class_under_the_same_type_and_version_fails() -> None:
    class Impostor(EventPayload, frozen=True, kw_only=True):
        event_type: ClassVar[str] = "project.created"
        project_id: str

    with pytest.raises(ValueError, match="registered twice"):
        register(Impostor)
    assert registry()[("project.created", 1)] is ProjectCreated
    assert register(ProjectCreated) is ProjectCreated  # registering the same class is harmless


# ---- catalog ----------------------------------------------------------------------------------


def test_the_catalog_lists_every_event_once_in_order() -> None:
    entries = catalog_entries()
    keys = [(e.type, e.schema_version) for e in entries]
    assert keys == sorted(registry())
    created = next(e for e in entries if e.type == "project.created")
    assert created.subject == "project.created"
    assert created.description == "A project was created."


def test_an_event_schema_is_the_envelope_with_the_payload_as_data() -> None:
    schema = event_schema(ProjectCreated)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert set(schema["properties"]) == set(Envelope.__struct_fields__)
    assert set(ENVELOPE_FIELD_DESCRIPTIONS) == set(Envelope.__struct_fields__)
    assert set(schema["required"]) == {
        "id",
        "type",
        "schema_version",
        "occurred_at",
        "source",
        "aggregate",
        "actor",
        "data",
    }
    assert schema["properties"]["type"]["const"] == "project.created"
    assert schema["properties"]["occurred_at"]["format"] == "date-time"
    data_ref = schema["properties"]["data"]["$ref"]
    payload = schema["definitions"][data_ref.rsplit("/", 1)[-1]]
    assert set(payload["properties"]) == set(ProjectCreated.__struct_fields__)
    assert payload["properties"]["slug"]["pattern"] == r"^[a-z0-9][a-z0-9-]{0,62}$"
    assert set(payload["required"]) == {"project_id", "slug", "name"}


def test_nested_payload_structs_land_in_the_definitions() -> None:
    from contracts.events.identity import UserCreated

    schema = event_schema(UserCreated)
    assert "UserEmail" in schema["definitions"]
    assert "$defs" not in msgspec.json.encode(schema).decode()


# ---- GET /api/v1/events/catalog ---------------------------------------------------------------


async def test_the_catalog_route_serves_every_event_to_any_role() -> None:
    [route] = ROUTES
    assert (route.method, route.path) == ("GET", "/api/v1/events/catalog")
    assert route.roles == frozenset(ROLES)
    assert route.response is EventCatalog

    request = make_mocked_request("GET", route.path)
    response = await route.handler(
        RequestContext(request=request, request_id="req-1", runtime=None)  # type: ignore[arg-type]
    )
    assert response.status == 200
    assert response.content_type == "application/json"
    body = msgspec.json.decode(response.body, type=EventCatalog)  # type: ignore[attr-defined]
    assert body == event_catalog()
    assert {item.type for item in body.items} == {t for t, _ in registry()}
    item = body.items[0]
    assert msgspec.structs.asdict(item).keys() == {
        "type",
        "schema_version",
        "subject",
        "description",
        "schema",
    }

    etag = response.headers["ETag"]
    for if_none_match, status in [
        (etag, 304),
        (f'"other", W/{etag}', 304),
        ("*", 304),
        ('"other"', 200),
    ]:
        again = await route.handler(
            RequestContext(
                request=make_mocked_request(
                    "GET", route.path, headers={"If-None-Match": if_none_match}
                ),
                request_id="req-2",
                runtime=None,  # type: ignore[arg-type]
            )
        )
        assert again.status == status, if_none_match
