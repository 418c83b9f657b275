"""The one error root of Gatehouse.

Each error knows its problem ``code``, HTTP status and whether it is transient. One function
maps errors to HTTP (``shared.http``), one maps them to NATS ack decisions
(``shared.projection``).

An outage of the database or the bus is not a bug: :func:`outage_of` recognises the drivers'
own exceptions (asyncpg, nats-py) and turns them into a 503 with ``Retry-After``, which every
HTTP edge and every request/reply endpoint answers instead of a 500.
"""

from __future__ import annotations

import traceback
from typing import Any

import asyncpg
import nats.errors
import nats.js.errors


class GatehouseError(Exception):
    code: str = "internal_error"
    status: int = 500
    title: str = "Internal error"
    transient: bool = False
    # Seconds a client should wait before trying again (the ``Retry-After`` header), if any.
    retry_after: int | None = None

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
    # A restart of PostgreSQL, NATS or a service takes about a second.
    retry_after = 1


class DatabaseUnavailable(UpstreamUnavailable):
    code, title = "database_unavailable", "The database is unavailable"


class BusUnavailable(UpstreamUnavailable):
    code, title = "bus_unavailable", "The event bus is unavailable"


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


# The server went away, is starting or stopping, or refuses more connections: class 08
# (connection exception), 57P01-57P03 (admin/crash shutdown, cannot connect now), 53300.
_DATABASE_DOWN: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)
_BUS_DOWN: tuple[type[BaseException], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
    nats.errors.FlushTimeoutError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)


def _raised_inside(exc: BaseException, package: str) -> bool:
    """Whether ``exc`` came out of ``package``'s code (one of its frames is on the way)."""
    prefix = package + "."
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        if module == package or module.startswith(prefix):
            return True
    return False


def _lost_connection(exc: BaseException) -> bool:
    """Whether an asyncpg ``InterfaceError`` was raised because the connection it used is
    closed: the server went away while a transaction held it (the pool only hands out open
    connections, so a closed one was lost, not misused)."""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        owner = frame.f_locals.get("self")
        conn = owner if isinstance(owner, asyncpg.Connection) else None
        if conn is None:
            conn = getattr(owner, "_connection", None)
        if isinstance(conn, asyncpg.Connection) and conn.is_closed():
            return True
    return False


def outage_of(exc: BaseException) -> UpstreamUnavailable | None:
    """The 503 an exception stands for when it means PostgreSQL or NATS is unavailable (the
    server restarting, unreachable, shutting down), or None: anything else stays what it is,
    and an unexpected exception a 500.

    A refused or reset socket, or a timeout, counts only when the driver raised it (a pool
    reconnecting, ``pool.acquire(timeout=)``): the same exception from elsewhere is a bug.
    """
    if isinstance(exc, GatehouseError):
        return None  # already says what it is
    if isinstance(exc, _DATABASE_DOWN):
        return DatabaseUnavailable(f"database unavailable: {type(exc).__name__}")
    if isinstance(exc, (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)) and (
        _lost_connection(exc)
        # Releasing a connection the server just terminated trips the driver's own state
        # checks, raised while the outage itself is being handled.
        or (exc.__context__ is not None and outage_of(exc.__context__) is not None)
    ):
        return DatabaseUnavailable(f"database connection lost: {type(exc).__name__}")
    if isinstance(exc, _BUS_DOWN):
        return BusUnavailable(f"event bus unavailable: {type(exc).__name__}")
    if isinstance(exc, (OSError, TimeoutError)):
        if _raised_inside(exc, "asyncpg"):
            return DatabaseUnavailable(f"database unavailable: {type(exc).__name__}")
        if _raised_inside(exc, "nats"):
            return BusUnavailable(f"event bus unavailable: {type(exc).__name__}")
    return None
