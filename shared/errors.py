"""The one error root of Gatehouse.

Each error knows its problem ``code``, HTTP status and whether it is transient. One function
maps errors to HTTP (``shared.http``), one maps them to NATS ack decisions
(``shared.projection``).
"""

from __future__ import annotations

from typing import Any


class GatehouseError(Exception):
    code: str = "internal_error"
    status: int = 500
    title: str = "Internal error"
    transient: bool = False

    def __init__(
        self,
        detail: str = "",
        *,
        code: str | None = None,
        status: int | None = None,
        title: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        if title is not None:
            self.title = title
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra or {}
        self.headers = headers or {}


class BadRequest(GatehouseError):
    code, status, title = "bad_request", 400, "Bad request"


class ValidationFailed(GatehouseError):
    code, status, title = "validation_failed", 422, "Request does not match the schema"


class Unauthorized(GatehouseError):
    code, status, title = "unauthorized", 401, "Authentication required"


class Forbidden(GatehouseError):
    code, status, title = "forbidden", 403, "Not allowed"


class NotFound(GatehouseError):
    code, status, title = "not_found", 404, "Not found"


class Conflict(GatehouseError):
    code, status, title = "conflict", 409, "Conflict"


class PreconditionFailed(GatehouseError):
    code, status, title = "precondition_failed", 412, "Precondition failed"


class PayloadTooLarge(GatehouseError):
    code, status, title = "payload_too_large", 413, "Request body too large"


class UnsupportedMediaType(GatehouseError):
    code, status, title = "unsupported_media_type", 415, "Unsupported media type"


class RateLimited(GatehouseError):
    code, status, title = "rate_limited", 429, "Too many requests"
    transient = True


class UpstreamUnavailable(GatehouseError):
    code, status, title = "upstream_unavailable", 503, "A backing service is unavailable"
    transient = True


class UpstreamTimeout(GatehouseError):
    code, status, title = "upstream_timeout", 504, "A backing service did not answer in time"
    transient = True


class PermanentEventError(GatehouseError):
    """An event that can never be applied (bad shape, violates an invariant): dead-letter it."""

    code, status, title = "event_rejected", 500, "Event cannot be applied"


_BY_STATUS: dict[int, type[GatehouseError]] = {
    cls.status: cls
    for cls in (
        BadRequest,
        ValidationFailed,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimited,
        UpstreamUnavailable,
        UpstreamTimeout,
    )
}


def error_from_problem(problem: dict[str, Any]) -> GatehouseError:
    """Rebuild an error from problem details received from another service."""
    status = int(problem.get("status", 500))
    cls = _BY_STATUS.get(status, GatehouseError)
    known = {"type", "title", "status", "detail", "code", "request_id", "instance"}
    extra = {k: v for k, v in problem.items() if k not in known}
    return cls(
        str(problem.get("detail", "")),
        code=str(problem.get("code", cls.code)),
        status=status,
        # The owner's title names the problem ("Invalid release candidate version"), more
        # precisely than the status's generic one.
        title=str(problem["title"]) if problem.get("title") else None,
        extra=extra,
    )
