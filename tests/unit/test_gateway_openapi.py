"""The OpenAPI document is built from the route table: every route, every $ref resolvable."""

from __future__ import annotations

from typing import Any

import pytest

from services.gateway.app import collected_routes
from services.gateway.domain.errors import TooManyRequests
from services.gateway.openapi import build_openapi, openapi_path, operation_id
from services.gateway.ratelimiter import RateLimiter


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"unresolved {ref}"
        node = node[part]
    return node


def test_document_is_openapi_3_1_with_every_route() -> None:
    routes = collected_routes()
    doc = build_openapi(routes, version="9.9.9")
    assert doc["openapi"] == "3.1.0" and doc["info"]["version"] == "9.9.9"
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"],
    }
    for route in routes:
        op = doc["paths"][openapi_path(route.path)][route.method.lower()]
        assert op["operationId"] == operation_id(route)
        assert op["tags"] == [route.tag]
        if route.roles is None:
            assert op["security"] == []
            assert "x-required-roles" not in op
        else:
            assert op["security"] == [{"bearer": []}]
            assert op["x-required-roles"] == sorted(route.roles)
            assert all(role in op["description"] for role in route.roles)
            for status in ("401", "403"):
                assert op["responses"][status]["$ref"].startswith("#/components/responses/")
        assert str(route.response_status) in op["responses"]
        if route.body is not None:
            assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert {"413", "415", "422"} <= set(op["responses"])
    operation_ids = [operation_id(route) for route in routes]
    assert len(operation_ids) == len(set(operation_ids))


def test_every_ref_resolves_and_errors_are_problem_json() -> None:
    doc = build_openapi(collected_routes(), version="1")
    refs = _refs(doc)
    assert refs
    for ref in refs:
        _resolve(doc, ref)
    for response in doc["components"]["responses"].values():
        schema = response["content"]["application/problem+json"]["schema"]
        assert _resolve(doc, schema["$ref"])["required"] == [
            "type",
            "title",
            "status",
            "detail",
            "code",
            "request_id",
        ]


def test_path_and_query_parameters_are_described() -> None:
    doc = build_openapi(collected_routes(), version="1")
    get_project = doc["paths"]["/api/v1/projects/{project}"]["get"]
    assert {"name": "project", "in": "path", "required": True, "schema": {"type": "string"}} in (
        get_project["parameters"]
    )
    listing = doc["paths"]["/api/v1/projects"]["get"]
    names = {p["name"]: p for p in listing["parameters"]}
    assert names["limit"]["schema"]["maximum"] == 500 and names["limit"]["in"] == "query"
    assert {"cursor", "include_archived"} <= set(names)
    create = doc["paths"]["/api/v1/projects"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])
    patch = doc["paths"]["/api/v1/projects/{project}"]["patch"]
    assert any(p["name"] == "If-Match" for p in patch["parameters"])


def test_route_table_has_no_duplicates_and_public_routes_are_the_expected_ones() -> None:
    routes = collected_routes()
    assert len({(r.method, r.path) for r in routes}) == len(routes)
    public = {(r.method, r.path) for r in routes if r.roles is None}
    assert {
        ("GET", "/api/openapi.json"),
        ("GET", "/api/docs"),
        ("GET", "/api/public-config"),
    } <= public


def test_rate_limiter_answers_retry_after_and_forgets_idle_clients() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0], max_tracked=4)
    limiter.check("a")
    limiter.check("a")
    with pytest.raises(TooManyRequests) as caught:
        limiter.check("a")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "1"
    now[0] = 1.0
    limiter.check("a")
    for client in "bcde":
        limiter.check(client)
    assert len(limiter) <= 4


def test_documents_answer_every_media_type_their_format_parameter_picks() -> None:
    from services.scanner.readside.handlers import _NOTICE, _SBOM

    doc = build_openapi(collected_routes(), version="1")
    for path, formats in (
        ("/api/v1/projects/{project}/sbom", _SBOM),
        ("/api/v1/projects/{project}/notice", _NOTICE),
    ):
        content = doc["paths"][path]["get"]["responses"]["200"]["content"]
        served = {media.split(";")[0] for media, _ in formats.values()}
        assert served == set(content), path
        for media_type, body in content.items():
            # An SBOM in JSON is an object, not a string.
            expected = "object" if media_type.endswith("+json") else "string"
            assert body["schema"] == {"type": expected}, media_type


def test_400_and_428_are_documented_where_they_can_be_answered() -> None:
    routes = collected_routes()
    doc = build_openapi(routes, version="1")
    bad_request = doc["components"]["responses"]["BadRequest"]
    # aiohttp answers an over-long request line or header itself, as text/plain.
    assert {"application/problem+json", "text/plain"} == set(bad_request["content"])
    for route in routes:
        responses = doc["paths"][openapi_path(route.path)][route.method.lower()]["responses"]
        assert responses["400"] == {"$ref": "#/components/responses/BadRequest"}, route.path
        if 428 in route.errors:
            assert responses["428"] == {"$ref": "#/components/responses/PreconditionRequired"}
    triage = doc["paths"]["/api/v1/findings/{finding_id}"]["patch"]
    assert "428" in triage["responses"]
    if_match = next(p for p in triage["parameters"] if p["name"] == "If-Match")
    assert if_match["in"] == "header" and if_match["required"] is True


def test_failed_authentications_throttle_unknown_tokens_of_one_address() -> None:
    from services.gateway.domain.errors import TooManyFailedAuthentications
    from services.gateway.ratelimiter import FailedAuthThrottle

    now = [0.0]
    throttle = FailedAuthThrottle(rate=0.5, burst=2, clock=lambda: now[0])
    throttle.check("a", known_token=False)
    throttle.failed("a")
    throttle.failed("a")
    with pytest.raises(TooManyFailedAuthentications) as caught:
        throttle.check("a", known_token=False)
    assert caught.value.code == "too_many_failed_authentications"
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "2"
    throttle.check("a", known_token=True)  # a token seen valid is still looked up
    throttle.check("b", known_token=False)  # another address is not affected
    now[0] = 2.0  # one failure refilled
    throttle.check("a", known_token=False)
