"""HTTP helpers every service uses: problem+json errors, request ids, metrics, health.

One function (:func:`problem_response`) maps errors to HTTP. The middleware binds
``request_id`` / ``correlation_id`` into the log context, echoes ``X-Request-ID``, times the
request by route and status, and turns every exception into RFC 9457 problem details — never
a stack trace.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, TypeVar

import msgspec
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.edge_limits import refuse_too_deep, refuse_unstorable
from shared.errors import (
    GatehouseError,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    outage_of,
)
from shared.logging import get_logger
from shared.metrics import HTTP_LATENCY

log = get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
REQUEST_ID_KEY = web.AppKey("request_id_header", str)
SERVICE_KEY = web.AppKey("service_name", str)
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)
_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_json = msgspec.json.Encoder()


def json_response(
    body: Any, *, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_json.encode(body), status=status, headers=headers, content_type="application/json"
    )


def request_id_of(request: web.Request) -> str:
    return str(request.get(REQUEST_ID, ""))


def problem_body(exc: GatehouseError, *, request_id: str, instance: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://gatehouse.dev/problems/{exc.code}",
        "title": exc.title,
        "status": exc.status,
        "detail": exc.detail,
        "code": exc.code,
        "request_id": request_id,
    }
    if instance:
        body["instance"] = instance
    for key, value in exc.extra.items():
        body.setdefault(key, value)
    return body


def problem_response(exc: GatehouseError, *, request_id: str, instance: str = "") -> web.Response:
    headers = {"X-Request-ID": request_id, **exc.headers}
    if exc.retry_after is not None:
        headers.setdefault("Retry-After", str(exc.retry_after))
    return web.Response(
        body=_json.encode(problem_body(exc, request_id=request_id, instance=instance)),
        status=exc.status,
        headers=headers,
        content_type=PROBLEM_JSON,
    )


def _route_label(request: web.Request) -> str:
    info = request.match_info
    resource = info.route.resource if info and info.route else None
    if resource is None:
        return "unmatched"
    return resource.canonical or "unmatched"


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    request_id = incoming if _REQUEST_ID_OK.match(incoming) else str(uuid.uuid4())
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    with structlog.contextvars.bound_contextvars(request_id=request_id, correlation_id=request_id):
        try:
            response = await handler(request)
            status = response.status
        except GatehouseError as exc:
            status = exc.status
            response = problem_response(exc, request_id=request_id, instance=request.path)
        except web.HTTPException as exc:
            status = exc.status
            response = problem_response(
                _from_http_exception(exc), request_id=request_id, instance=request.path
            )
        except Exception as exc:
            response = problem_response(
                unexpected_error(exc, path=request.path),
                request_id=request_id,
                instance=request.path,
            )
            status = response.status
        if not response.prepared:
            response.headers["X-Request-ID"] = request_id
        elapsed = time.perf_counter() - started
        HTTP_LATENCY.labels(
            request.app.get(SERVICE_KEY, "unknown"),
            request.method,
            _route_label(request),
            str(status),
        ).observe(elapsed)
        if elapsed > 1.0 or status >= 500:
            log.info(
                "http_request",
                method=request.method,
                path=request.path,
                status=status,
                duration_ms=round(elapsed * 1000, 1),
            )
        return response


def unexpected_error(exc: Exception, *, path: str) -> GatehouseError:
    """What an exception that is not a GatehouseError is answered as: a 503 with
    ``Retry-After`` when the database or the bus is unavailable (logged as a warning: the
    client retries, nobody has to fix anything), otherwise a 500 (a bug: logged with its
    traceback, answered without details)."""
    outage = outage_of(exc)
    if outage is not None:
        log.warning("request_unavailable", path=path, code=outage.code, error=type(exc).__name__)
        return outage
    log.exception("request_failed", path=path, error=type(exc).__name__)
    return GatehouseError()


def _from_http_exception(exc: web.HTTPException) -> GatehouseError:
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        400: "bad_request",
    }
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        # RFC 9110: a 405 names the methods the resource does support.
        headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
    return GatehouseError(
        exc.reason,
        code=codes.get(exc.status, f"http_{exc.status}"),
        status=exc.status,
        title=HTTPStatus(exc.status).phrase,
        headers=headers,
    )


async def read_body(request: web.Request, *, max_bytes: int) -> bytes:
    length = request.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {max_bytes}")
    data = bytearray()
    async for chunk in request.content.iter_chunked(65536):
        data.extend(chunk)
        if len(data) > max_bytes:
            raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
    return bytes(data)


async def decode_json_body(request: web.Request, type_: type[T], *, max_bytes: int) -> T:
    """Decode a JSON request body into ``type_``: 415, 413 or 422 naming the field."""
    ctype = request.headers.get("Content-Type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"expected Content-Type application/json, got {media or 'none'!r}"
        )
    raw = await read_body(request, max_bytes=max_bytes)
    return decode_json(raw, type_)


def decode_json(raw: bytes, type_: type[T]) -> T:
    """JSON bytes as ``type_``, or a 422 naming the field: beyond the schema, a body nested
    deeper than ``MAX_JSON_DEPTH`` (``too_deep``, found before decoding) and any value a
    consumer could not store (NUL, an integer beyond bigint, a datetime out of range)."""
    refuse_too_deep(raw)
    try:
        value = msgspec.json.decode(raw, type=type_)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(str(exc), extra={"errors": [field_error(str(exc))]}) from exc
    except msgspec.DecodeError as exc:
        raise ValidationFailed(f"malformed JSON: {exc}", code="malformed_json") from exc
    refuse_unstorable(value)
    return value


def field_error(message: str) -> dict[str, str]:
    """``{field, message}`` from a msgspec validation message, the field as a JSON path."""
    match = re.search(r"- at `(\$[^`]*)`", message)
    path = match.group(1) if match else "$"
    # "Object missing required field `x`" / "contains unknown field `x`" are reported at the
    # enclosing object: name the field itself.
    named = re.match(r"Object (?:missing required|contains unknown) field `([^`]*)`", message)
    if named:
        path = f"{path}.{named.group(1)}"
    return {"field": path, "message": message.split(" - at ")[0]}


_field_error = field_error  # the name it had first


def add_health_routes(
    app: web.Application,
    readiness: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]],
    *,
    instance: str = "",
) -> None:
    """``instance`` names this process (or the `gatehouse up` run it belongs to): whoever
    waits for readiness can tell that the server answering on a port is the one it started."""

    async def live(_: web.Request) -> web.Response:
        return json_response({"status": "ok", "instance": instance})

    async def ready(_: web.Request) -> web.Response:
        ok, checks = await readiness()
        # Degraded (dead letters wait for an operator) still serves: 200, see Runtime.readiness.
        status = "unavailable" if not ok else "degraded" if checks.get("degraded") else "ok"
        return json_response(
            {"status": status, "instance": instance, "checks": checks},
            status=200 if ok else 503,
        )

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", metrics)
