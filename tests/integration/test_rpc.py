"""Request/reply between services over a real NATS server (nats.micro)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from shared.bus import Bus
from shared.errors import (
    Conflict,
    GatehouseError,
    NotFound,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationFailed,
)
from shared.rpc import CallContext, RpcServer, call
from shared.settings import Settings


class Greet(msgspec.Struct, frozen=True):
    name: str
    times: int = 1


class Greeting(msgspec.Struct, frozen=True):
    text: str
    request_id: str
    actor: str
    roles: list[str]


class WrongShape(msgspec.Struct, frozen=True):
    name: int


class Other(msgspec.Struct, frozen=True):
    count: int


CTX = CallContext(request_id="req-42", actor="apikey:k1", roles=("ADMIN", "VIEWER"))


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    connected = await Bus.connect(settings, name="rpc-test")
    try:
        yield connected
    finally:
        await connected.close()


@pytest.fixture
async def service(bus: Bus) -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A service with a unique name: greet, fail, crash and a slow endpoint held by an event."""
    name = f"svc-{uuid.uuid4().hex[:8]}"
    release_slow = asyncio.Event()
    server = RpcServer(bus, service=name, version="1.0.0", description="test service")

    async def greet(req: Greet, ctx: CallContext) -> Greeting:
        return Greeting(
            text=" ".join([f"hello {req.name}"] * req.times),
            request_id=ctx.request_id,
            actor=ctx.actor,
            roles=list(ctx.roles),
        )

    async def fail(req: Greet, ctx: CallContext) -> Greeting:
        if req.name == "ghost":
            raise NotFound(f"no such name {req.name}")
        raise Conflict(
            f"name {req.name} is taken\nby someone else",
            code="name_taken",
            extra={"taken_by": "someone"},
        )

    async def crash(req: Greet, ctx: CallContext) -> Greeting:
        raise RuntimeError("secret connection string postgres://user:hunter2@db")

    async def slow(req: Greet, ctx: CallContext) -> Greeting:
        await release_slow.wait()
        return await greet(req, ctx)

    server.add("greet", Greet, greet)
    server.add("fail", Greet, fail)
    server.add("crash", Greet, crash)
    server.add("slow.greet", Greet, slow)
    await server.start()
    try:
        yield name, release_slow
    finally:
        release_slow.set()
        await server.stop()


async def test_a_typed_request_gets_a_typed_reply_with_the_call_context(
    bus: Bus, service: tuple[str, asyncio.Event]
) -> None:
    name, _ = service
    reply = await call(bus, name, "greet", Greet(name="ada", times=2), Greeting, ctx=CTX, timeout=5)
    assert reply == Greeting(
        text="hello ada hello ada",
        request_id="req-42",
        actor="apikey:k1",
        roles=["ADMIN", "VIEWER"],
    )


async def test_an_error_raised_in_a_handler_arrives_as_the_same_error(
    bus: Bus, service: tuple[str, asyncio.Event]
) -> None:
    name, _ = service
    with pytest.raises(Conflict) as conflict:
        await call(bus, name, "fail", Greet(name="ada"), Greeting, ctx=CTX, timeout=5)
    assert conflict.value.code == "name_taken"
    assert conflict.value.status == 409
    assert conflict.value.detail == "name ada is taken\nby someone else"
    assert conflict.value.extra == {"taken_by": "someone"}

    with pytest.raises(NotFound) as missing:
        await call(bus, name, "fail", Greet(name="ghost"), Greeting, ctx=CTX, timeout=5)
    assert (missing.value.code, missing.value.status) == ("not_found", 404)


async def test_a_request_that_does_not_match_the_schema_is_a_422(
    bus: Bus, service: tuple[str, asyncio.Event]
) -> None:
    name, _ = service
    with pytest.raises(ValidationFailed) as invalid:
        await call(bus, name, "greet", WrongShape(name=7), Greeting, ctx=CTX, timeout=5)
    assert invalid.value.status == 422
    assert "$.name" in invalid.value.detail


async def test_a_bug_in_a_handler_is_a_500_without_details(
    bus: Bus, service: tuple[str, asyncio.Event]
) -> None:
    name, _ = service
    with pytest.raises(GatehouseError) as crashed:
        await call(bus, name, "crash", Greet(name="ada"), Greeting, ctx=CTX, timeout=5)
    assert (crashed.value.code, crashed.value.status) == ("internal_error", 500)
    assert "hunter2" not in crashed.value.detail


async def test_a_reply_of_the_wrong_shape_is_a_502(
    bus: Bus, service: tuple[str, asyncio.Event]
) -> None:
    name, _ = service
    with pytest.raises(GatehouseError) as bad:
        await call(bus, name, "greet", Greet(name="ada"), Other, ctx=CTX, timeout=5)
    assert (bad.value.code, bad.value.status) == ("upstream_bad_reply", 502)


async def test_no_responders_is_upstream_unavailable(bus: Bus) -> None:
    with pytest.raises(UpstreamUnavailable) as unavailable:
        await call(bus, "nobody-home", "greet", Greet(name="ada"), Greeting, ctx=CTX, timeout=5)
    assert unavailable.value.status == 503


async def test_a_slow_handler_is_upstream_timeout(
    bus: Bus, service: tuple[str, asyncio.Event]
) -> None:
    name, release = service
    with pytest.raises(UpstreamTimeout) as late:
        await call(bus, name, "slow.greet", Greet(name="ada"), Greeting, ctx=CTX, timeout=0.2)
    assert late.value.status == 504
    release.set()
    reply = await call(bus, name, "slow.greet", Greet(name="bo"), Greeting, ctx=CTX, timeout=5)
    assert reply.text == "hello bo"


async def test_replicas_share_the_work_as_a_queue_group(bus: Bus, settings: Settings) -> None:
    name = f"svc-{uuid.uuid4().hex[:8]}"
    answered_by: list[str] = []
    servers = []
    for replica in ("r1", "r2"):

        async def greet(req: Greet, ctx: CallContext, replica: str = replica) -> Greeting:
            answered_by.append(replica)
            return Greeting(text=replica, request_id=ctx.request_id, actor=ctx.actor, roles=[])

        server = RpcServer(bus, service=name, version="1.0.0")
        server.add("greet", Greet, greet)
        await server.start()
        servers.append(server)
    try:
        for _ in range(40):
            await call(bus, name, "greet", Greet(name="x"), Greeting, ctx=CTX, timeout=5)
        assert len(answered_by) == 40  # each request answered once
        assert set(answered_by) == {"r1", "r2"}
    finally:
        for server in servers:
            await server.stop()


class Hostile(msgspec.Struct, frozen=True):
    """A Greet as a caller that skipped the gateway could send it (msgspec does not check
    values when encoding)."""

    name: Any
    times: int = 1


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (Hostile(name="a\x00b"), "$.name"),
        (Hostile(name="ada", times=2**63), "$.times"),
        (Hostile(name="ada", times=-(2**63) - 1), "$.times"),
    ],
)
async def test_a_request_no_consumer_could_store_is_refused_before_the_handler(
    bus: Bus, service: tuple[str, asyncio.Event], request_: Hostile, field: str
) -> None:
    name, _ = service
    with pytest.raises(ValidationFailed) as invalid:
        await call(bus, name, "greet", request_, Greeting, ctx=CTX, timeout=5)
    assert (invalid.value.status, invalid.value.code) == (422, "validation_failed")
    assert invalid.value.extra["errors"][0]["field"] == field


@pytest.mark.parametrize("depth", [10_000, 100_000])
async def test_a_deeply_nested_request_is_too_deep_not_a_crash(
    bus: Bus, service: tuple[str, asyncio.Event], depth: int
) -> None:
    name, _ = service
    raw = b'{"name": ' + b"[" * depth + b"]" * depth + b"}"
    reply = await bus.nc.request(f"svc.{name}.greet", raw, timeout=5)
    assert reply.headers is not None and reply.headers["Nats-Service-Error-Code"] == "422"
    problem = msgspec.json.decode(reply.data)
    assert problem["code"] == "too_deep"
    assert problem["errors"][0]["field"].startswith("$.name[0][0]")
