"""OpenAPI 3.1 from the route table and the Structs (``contracts.jsonschema.schema_components``).

Pure: the same routes always give the same document. Each operation carries its security
(bearer unless public), its required roles (``x-required-roles`` and the description), its
parameters (path, the query Struct's fields, Idempotency-Key, If-Match) and problem+json
error responses.
"""

from __future__ import annotations

import re
from typing import Any

from contracts.jsonschema import schema_components
from services.gateway.dto import Problem
from services.gateway.routing import Route

OPENAPI_VERSION = "3.1.0"
_REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")

# Problem responses by status: (component name, description).
_PROBLEMS: dict[int, tuple[str, str]] = {
    400: (
        "BadRequest",
        "The request is malformed. A request line or header over the HTTP server's limit "
        "(8190 bytes) is answered before routing, as text/plain",
    ),
    401: ("Unauthorized", "Missing, malformed, unknown, expired or revoked token"),
    403: ("Forbidden", "The token lacks the required role or project scope"),
    404: ("NotFound", "No such resource (or not visible to this token)"),
    409: ("Conflict", "The request conflicts with the current state"),
    412: ("PreconditionFailed", "If-Match does not match the current ETag"),
    428: ("PreconditionRequired", "If-Match is required: send the ETag you read (or *)"),
    413: ("PayloadTooLarge", "The request body exceeds the size limit"),
    415: ("UnsupportedMediaType", "The body is not application/json"),
    422: ("ValidationFailed", "The body or query does not match the schema (names the field)"),
    429: ("RateLimited", "Too many requests; retry after Retry-After seconds"),
    500: ("InternalError", "An unexpected error (never with internals)"),
    502: ("BadGateway", "A backing service answered unexpectedly"),
    503: (
        "Unavailable",
        "The database, the event bus or a backing service is unavailable; retry after "
        "Retry-After seconds",
    ),
    504: ("Timeout", "A backing service or the read model did not answer in time"),
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer challenge"}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}},
    503: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}},
}


def operation_id(route: Route) -> str:
    words = re.findall(r"[A-Za-z0-9]+", _PATH_PARAM.sub(r"by_\1", route.path))
    return "_".join([route.method.lower(), *words])


def openapi_path(path: str) -> str:
    """aiohttp's ``{name:regex}`` becomes OpenAPI's ``{name}``."""
    return _PATH_PARAM.sub(r"{\1}", path)


def build_openapi(routes: list[Route], *, version: str) -> dict[str, Any]:
    types: list[Any] = [Problem]
    for route in routes:
        types.extend(t for t in (route.query, route.body, route.response) if t is not None)
    unique = list(dict.fromkeys(types))
    refs, schemas = schema_components(unique, ref_template=_REF)
    ref_of = dict(zip(unique, refs, strict=True))

    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route, ref_of, schemas)
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = operation

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Gatehouse API",
            "version": version,
            "description": "Release gate for the software supply chain. Authenticate with "
            "`Authorization: Bearer <token>`; every error is RFC 9457 problem+json with a "
            "stable `code` and the `request_id`.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in sorted({route.tag for route in routes})],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": {
                name: _problem_response(status, description)
                for status, (name, description) in _PROBLEMS.items()
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key token (gh_…), created with POST /api/v1/api-keys",
                }
            },
        },
    }


def _problem_response(status: int, description: str) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/problem+json": {"schema": {"$ref": _REF.format(name="Problem")}}
    }
    if status == 400:
        # aiohttp's own answer to a request it cannot parse (no route, no middleware ran).
        content["text/plain"] = {"schema": {"type": "string"}}
    response: dict[str, Any] = {"description": description, "content": content}
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def _operation(
    route: Route, ref_of: dict[Any, dict[str, Any]], schemas: dict[str, Any]
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id(route),
        "summary": route.summary,
        "tags": [route.tag],
        "description": _description(route),
        "security": [] if route.roles is None else [{"bearer": []}],
        "parameters": _parameters(route, ref_of, schemas),
        "responses": {**_success(route, ref_of), **_errors(route)},
    }
    if route.roles is not None:
        operation["x-required-roles"] = sorted(route.roles)
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref_of[route.body]}},
        }
    elif route.upload:
        binary = {"type": "string", "format": "binary"}
        operation["requestBody"] = {
            "required": True,
            "content": {media_type: {"schema": binary} for media_type in route.upload},
        }
    operation.update({k: v for k, v in route.extra.items() if k.startswith("x-")})
    if not operation["parameters"]:
        del operation["parameters"]
    return operation


def _description(route: Route) -> str:
    if route.roles is None:
        return "Public: no token needed (rate-limited per client address)."
    text = f"Required roles: any of {', '.join(sorted(route.roles))}."
    if route.project_param:
        text += " A project-scoped token may only name its own project."
    elif not route.allow_project_scoped:
        text += " Not available to project-scoped tokens."
    return text


def _parameters(
    route: Route, ref_of: dict[Any, dict[str, Any]], schemas: dict[str, Any]
) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(route.path)
    ]
    if route.query is not None:
        name = ref_of[route.query]["$ref"].rsplit("/", 1)[-1]
        query_schema = schemas[name]
        required = set(query_schema.get("required", []))
        for field, schema in query_schema.get("properties", {}).items():
            param: dict[str, Any] = {
                "name": field,
                "in": "query",
                "required": field in required,
                "schema": schema,
            }
            if "description" in schema:
                param["description"] = schema["description"]
            params.append(param)
    if route.method == "POST" and route.roles is not None:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
                "description": "Replays the first response to the same request for 24 hours",
            }
        )
    if 412 in route.errors:
        params.append(
            {
                "name": "If-Match",
                "in": "header",
                # A route that answers 428 without it requires it.
                "required": 428 in route.errors,
                "schema": {"type": "string"},
                "description": "The ETag read last; 412 if the resource changed since",
            }
        )
    return params


def _success(route: Route, ref_of: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    status = str(route.response_status)
    if route.response_status == 204 or (route.response is None and route.response_status != 200):
        return {status: {"description": "Done, no content"}}
    content: dict[str, Any] = {}
    for media_type in (route.response_media_type, *route.also_media_types):
        if route.response is not None and media_type == "application/json":
            schema = ref_of[route.response]
        else:
            # A JSON document without a Struct of ours (an SBOM) is an object; the rest text.
            schema = {"type": "object" if is_json_media_type(media_type) else "string"}
        content[media_type] = {"schema": schema}
    success = {"description": "Success", "content": content}
    return {str(code): success for code in sorted({route.response_status, *route.also_succeeds})}


def is_json_media_type(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _errors(route: Route) -> dict[str, Any]:
    # 400: any request line or header can be too long for the HTTP server.
    statuses = {400, 429, 500}
    if route.roles is not None:
        statuses |= {401, 403}
    if route.body is not None or route.upload:
        statuses |= {413, 415, 422}
    # A path parameter no service could store (a NUL) is a 422 naming it.
    if route.query is not None or route.method == "POST" or "{" in route.path:
        statuses.add(422)
    if route.method == "POST" and route.roles is not None:
        statuses.add(409)  # Idempotency-Key still in progress
    statuses |= set(route.errors)
    responses: dict[str, Any] = {}
    for status in sorted(statuses):
        if status in _PROBLEMS:
            responses[str(status)] = {"$ref": f"#/components/responses/{_PROBLEMS[status][0]}"}
        else:
            responses[str(status)] = _problem_response(status, f"Error {status}")
    return responses
