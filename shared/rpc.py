"""Request/reply between services with ``nats.micro``: typed requests, typed replies.

A command or query for service ``S`` travels on ``svc.S.<operation>`` to a queue group, so any
number of replicas can answer. The reply is the JSON of the response Struct; an error reply
carries the micro error headers and RFC 9457 problem details in the body, which the caller
turns back into the same :class:`GatehouseError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

import msgspec
import nats.errors
import nats.micro
import structlog
from nats.micro.request import Request
from nats.micro.service import EndpointConfig, Service, ServiceConfig

from shared import faults
from shared.bus import Bus
from shared.edge_limits import RPC_MAX_DEPTH, refuse_too_deep, refuse_unstorable
from shared.errors import (
    BusUnavailable,
    GatehouseError,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationFailed,
    error_from_problem,
    outage_of,
)
from shared.http import field_error
from shared.logging import get_logger
from shared.metrics import RPC_LATENCY

log = get_logger(__name__)

REQUEST_ID_HEADER = "Gatehouse-Request-Id"
ACTOR_HEADER = "Gatehouse-Actor"
ROLES_HEADER = "Gatehouse-Roles"
COMMAND_HEADER = "Gatehouse-Command-Id"

Req = TypeVar("Req", bound=msgspec.Struct)
Resp = TypeVar("Resp", bound=msgspec.Struct)


class CallContext(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    actor: str
    roles: tuple[str, ...] = ()
    # The client's command (a request with an Idempotency-Key): the same on every attempt,
    # so the owner can tell a re-run from a new command (shared.commands.run_once).
    command_id: str = ""


def subject(service: str, operation: str) -> str:
    return f"svc.{service}.{operation}"


class Endpoint(msgspec.Struct, Generic[Req, Resp], frozen=True):
    operation: str
    request_type: type[Req]
    handler: Callable[[Req, CallContext], Awaitable[Resp]]
    # Requests of this endpoint answered at once by one process. nats-py hands a
    # subscription's messages over one by one, so 1 (the default) answers them in order; a
    # read-only endpoint whose handler waits on I/O (a database, a worker thread) may allow
    # more.
    concurrency: int = 1


# One row of a component's endpoint table: operation, request type, handler.
Operation = tuple[str, type[Any], Callable[[Any, CallContext], Awaitable[Any]]]


class RpcServer:
    """Registers typed endpoints of one service as a nats.micro service."""

    def __init__(self, bus: Bus, *, service: str, version: str, description: str = "") -> None:
        self.bus = bus
        self.service_name = service
        self.version = version
        self.description = description
        self._endpoints: list[Endpoint[Any, Any]] = []
        self._service: Service | None = None
        self._in_flight: set[asyncio.Task[None]] = set()

    def add(
        self,
        operation: str,
        request_type: type[Req],
        handler: Callable[[Req, CallContext], Awaitable[Resp]],
        *,
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            raise ValueError("an endpoint answers at least one request at a time")
        self._endpoints.append(Endpoint(operation, request_type, handler, concurrency))

    def add_all(self, endpoints: Sequence[Operation], *, concurrency: int = 1) -> None:
        """``add`` each ``(operation, request type, handler)`` of a component's table."""
        for operation, request_type, handler in endpoints:
            self.add(operation, request_type, handler, concurrency=concurrency)

    async def start(self) -> None:
        self._service = await nats.micro.add_service(
            self.bus.nc,
            config=ServiceConfig(
                name=self.service_name,
                version=self.version,
                description=self.description,
                queue_group=f"svc.{self.service_name}",
            ),
        )
        for endpoint in self._endpoints:
            await self._service.add_endpoint(
                EndpointConfig(
                    name=endpoint.operation.replace(".", "_"),
                    subject=subject(self.service_name, endpoint.operation),
                    handler=self._concurrent(endpoint.concurrency, self._wrap(endpoint)),
                )
            )
        # SUB is fire-and-forget: without the PING/PONG round trip a request sent the moment
        # start() returns (a replacement replica, a test) can reach the server before the
        # subscriptions and be answered "no responders".
        await self.bus.nc.flush()

    async def stop(self) -> None:
        if self._service is not None:
            await self._service.stop()
            self._service = None
        if self._in_flight:  # answer what was accepted before stopping
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _concurrent(
        self, limit: int, handle: Callable[[Request], Coroutine[Any, Any, None]]
    ) -> Callable[[Request], Awaitable[None]]:
        """``handle`` as is (limit 1), or started as a task once fewer than ``limit`` of this
        endpoint's requests are in flight: the subscription waits for a free slot, so the
        backlog stays in NATS, not in memory."""
        if limit == 1:
            return handle
        slots = asyncio.Semaphore(limit)

        async def dispatch(request: Request) -> None:
            await slots.acquire()
            task = asyncio.create_task(handle(request))
            self._in_flight.add(task)

            def done(finished: asyncio.Task[None]) -> None:
                self._in_flight.discard(finished)
                slots.release()

            task.add_done_callback(done)

        return dispatch

    def _wrap(self, endpoint: Endpoint[Any, Any]) -> Callable[[Request], Coroutine[Any, Any, None]]:
        decoder = msgspec.json.Decoder(endpoint.request_type)

        async def handle(request: Request) -> None:
            headers = request.headers or {}
            ctx = CallContext(
                request_id=headers.get(REQUEST_ID_HEADER, ""),
                actor=headers.get(ACTOR_HEADER, "system"),
                roles=tuple(r for r in headers.get(ROLES_HEADER, "").split(",") if r),
                command_id=headers.get(COMMAND_HEADER, ""),
            )
            started = time.perf_counter()
            outcome = "ok"
            with structlog.contextvars.bound_contextvars(
                request_id=ctx.request_id, correlation_id=ctx.request_id, rpc=endpoint.operation
            ):
                try:
                    body = _decode_request(decoder, request.data)
                    result = await endpoint.handler(body, ctx)
                    await request.respond(msgspec.json.encode(result))
                except GatehouseError as exc:
                    outcome = exc.code
                    await _respond_problem(request, exc)
                except Exception as exc:
                    # The database or the bus being away is answered as a 503 the gateway
                    # relays with Retry-After; anything else is a bug: log it here, answer a
                    # problem without details.
                    outage = outage_of(exc)
                    problem: GatehouseError
                    if outage is not None:
                        log.warning("rpc_unavailable", code=outage.code, error=type(exc).__name__)
                        problem = outage
                    else:
                        log.exception("rpc_handler_failed", error=type(exc).__name__)
                        problem = GatehouseError()
                    outcome = problem.code
                    await _respond_problem(request, problem)
                finally:
                    RPC_LATENCY.labels(self.service_name, endpoint.operation, outcome).observe(
                        time.perf_counter() - started
                    )

        return handle


def _decode_request(decoder: msgspec.json.Decoder[Req], data: bytes) -> Req:
    """The request as its Struct, held to the same limits as the HTTP edge: a command that
    reaches its owner without passing the gateway is refused before it can publish."""
    refuse_too_deep(data, limit=RPC_MAX_DEPTH)
    try:
        body = decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(str(exc), extra={"errors": [field_error(str(exc))]}) from exc
    except msgspec.DecodeError as exc:
        raise ValidationFailed(f"malformed JSON: {exc}", code="malformed_json") from exc
    refuse_unstorable(body, max_depth=RPC_MAX_DEPTH)
    return body


async def _respond_problem(request: Request, exc: GatehouseError) -> None:
    problem = {
        "status": exc.status,
        "code": exc.code,
        "title": exc.title,
        "detail": exc.detail,
        **exc.extra,
    }
    # The description travels in a header: a line break there would corrupt the header block.
    description = " ".join(exc.detail.split())[:200]
    await request.respond_error(str(exc.status), description, data=msgspec.json.encode(problem))


async def call(
    bus: Bus,
    service: str,
    operation: str,
    request: msgspec.Struct,
    response_type: type[Resp],
    *,
    ctx: CallContext,
    timeout: float,  # noqa: ASYNC109 - the NATS request deadline, not a cancel scope
) -> Resp:
    headers = {
        REQUEST_ID_HEADER: ctx.request_id,
        ACTOR_HEADER: ctx.actor,
        ROLES_HEADER: ",".join(ctx.roles),
    }
    if ctx.command_id:
        headers[COMMAND_HEADER] = ctx.command_id
    if faults.armed("rpc.after_send"):  # tests: the owner gets the request, we die
        await bus.nc.publish(
            subject(service, operation),
            msgspec.json.encode(request),
            reply=bus.nc.new_inbox(),
            headers=headers,
        )
        await bus.nc.flush()
        faults.point("rpc.after_send")
    reconnects = bus.reconnects
    try:
        msg = await bus.nc.request(
            subject(service, operation),
            msgspec.json.encode(request),
            timeout=timeout,
            headers=headers,
        )
    except nats.errors.NoRespondersError as exc:
        raise UpstreamUnavailable(f"service {service} is not running") from exc
    except nats.errors.TimeoutError as exc:
        if not bus.connected or bus.reconnects != reconnects:
            # The connection dropped while the call was out: the request or its reply was
            # lost with it. The bus is what failed, not the service.
            raise BusUnavailable(
                f"the event bus connection was lost while calling {service}"
            ) from exc
        raise UpstreamTimeout(f"service {service} did not answer within {timeout:g}s") from exc
    except (
        nats.errors.ConnectionClosedError,
        nats.errors.ConnectionReconnectingError,
        nats.errors.OutboundBufferLimitError,
    ) as exc:
        raise BusUnavailable("event bus unavailable") from exc
    if msg.headers and "Nats-Service-Error-Code" in msg.headers:
        try:
            problem = msgspec.json.decode(msg.data)
        except msgspec.DecodeError:
            problem = None
        if not isinstance(problem, dict):
            problem = {
                "status": 502,
                "code": "upstream_bad_reply",
                "detail": msg.headers.get("Nats-Service-Error", ""),
            }
        raise error_from_problem(problem)
    try:
        return msgspec.json.decode(msg.data, type=response_type)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise GatehouseError(
            f"service {service} answered {operation} with an unexpected reply: {exc}",
            code="upstream_bad_reply",
            status=502,
        ) from exc
