"""Helpers of the webhook delivery tests (no tests here): a real local aiohttp receiver whose
answers each test scripts per path, subscriptions made through the fan-out's own request
(``webhook_create``), the gateway in front of the fan-out, deliveries seeded into the
delivery log, and reads of the deliveries tables."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from contracts.envelope import Envelope, encode_envelope
from contracts.rpc import webhooks as rpc
from services.webhook_fanout.deliveries.outcomes import delivery_id
from shared.bus import Bus
from shared.db import connect
from shared.embedded import die_with_parent
from shared.errors import UpstreamUnavailable
from shared.rpc import CallContext, call
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService
from tests.integration.audit_support import CLI, CLI_CWD, project_created, publish_burst
from tests.integration.test_gateway_support import Api, gateway_api

FANOUT_SETTINGS: dict[str, Any] = {
    "outbound_allow_cidrs": "127.0.0.0/8",
    # The three-day schedule in about three seconds.
    "webhook_retry_schedule_scale": 0.00001,
    "webhook_lease_seconds": 3.0,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Records every request; ``script[path]`` answers it (200 when absent)."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    script: dict[str, Handler] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        body = await request.read()
        loop = asyncio.get_running_loop()
        self.received.append(Received(path, dict(request.headers), body, loop.time()))
        handler = self.script.get(path)
        if handler is None:
            return web.Response(status=200, text="ok")
        return await handler(request)


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/{path}", rec.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield rec
    finally:
        rec.release.set()
        await runner.cleanup()


def statuses(*codes: int, then: int = 200, headers: dict[str, str] | None = None) -> Handler:
    """Answer ``codes`` in turn, then ``then`` for ever."""
    queue = list(codes)

    async def answer(_request: web.Request) -> web.StreamResponse:
        code = queue.pop(0) if queue else then
        return web.Response(status=code, text=f"answer {code}", headers=headers)

    return answer


def secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


async def subscribe(
    bus: Bus,
    *,
    url: str,
    events: list[str],
    format: str = "standard",
    secret_text: str | None = None,
    project_id: str | None = None,
    enabled: bool = True,
) -> tuple[str, str]:
    """A subscription made the real way (``svc.webhook-fanout.webhook_create``, as the
    gateway's ``POST /api/admin/webhooks`` asks it), with a known secret; answers once the
    subscriptions projection holds it. Retried while the fan-out is still starting.
    Returns (id, secret)."""
    text = secret_text or secret()
    request = rpc.WebhookCreateRequest(
        project_id=project_id,
        body=rpc.WebhookBody(
            url=url,
            events=events,
            project=project_id,
            format=format,  # type: ignore[arg-type]
            secret=text,
            enabled=enabled,
        ),
    )
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            reply = await call(
                bus,
                rpc.SERVICE,
                rpc.WEBHOOK_CREATE,
                request,
                rpc.WebhookSecretReply,
                ctx=CallContext(request_id="test", actor="apikey:test"),
                timeout=10,
            )
        except UpstreamUnavailable:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
            continue
        return reply.webhook.id, text


async def subscribe_outside_policy(
    start_service: StartService, *, urls: list[str], events: list[str]
) -> list[str]:
    """Subscriptions to receivers that the fan-out under test will refuse, as if their names
    resolved elsewhere since creation: made by a fan-out that allowed them, stopped before
    the test starts its own. Call it before starting the fan-out under test."""
    admitting = await start_service(
        "webhook-fanout",
        outbound_allow_cidrs="127.0.0.0/8,10.0.0.0/8,169.254.0.0/16,::1/128",
    )
    try:
        return [(await subscribe(admitting.bus, url=url, events=events))[0] for url in urls]
    finally:
        await admitting.stop()


async def publish_projects(bus: Bus, count: int) -> list[Envelope]:
    envelopes = [project_created() for _ in range(count)]
    await publish_burst(bus, envelopes)
    return envelopes


async def rows(settings: Settings, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = await connect(settings.database_url)
    try:
        return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def deliveries_of(settings: Settings, subscription_id: str) -> list[dict[str, Any]]:
    return await rows(
        settings,
        "SELECT * FROM webhook_fanout.deliveries WHERE subscription_id = $1 ORDER BY stream_seq",
        subscription_id,
    )


async def attempts_of(settings: Settings, delivery: uuid.UUID) -> list[dict[str, Any]]:
    return await rows(
        settings,
        "SELECT * FROM webhook_fanout.delivery_attempts WHERE delivery_id = $1 ORDER BY attempt",
        delivery,
    )


async def events_of_type(bus: Bus, event_type: str) -> list[bytes]:
    """Every event of ``event_type`` on the stream, as published."""
    found: list[bytes] = []
    last = await bus.last_sequence()
    for seq in range(1, last + 1):
        msg = await bus.js.get_msg(bus.stream, seq)
        if msg.subject == event_type and msg.data is not None:
            found.append(msg.data)
    return found


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# ---- the gateway in front of the fan-out, and a seeded delivery log -------------------------
@dataclass
class Stack:
    api: Api
    fanout: Runtime

    async def sql(self) -> asyncpg.Connection:
        return await connect(self.fanout.settings.database_url)


@asynccontextmanager
async def deliveries_stack(start_service: StartService) -> AsyncIterator[Stack]:
    fanout = await start_service("webhook-fanout", outbound_allow_cidrs="127.0.0.0/8")
    async with gateway_api(start_service) as api:
        yield Stack(api=api, fanout=fanout)


# Above any real stream sequence of a test: seeded events come after every subscription.
_SEQ = iter(range(1_000_000, 2_000_000))


async def seed_event(
    stack: Stack,
    event_type: str,
    *,
    occurred_at: dt.datetime,
    data: dict[str, Any] | None = None,
) -> str:
    """An event as the intake records it (``delivery_events``), at a chosen time."""
    event_id = str(uuid.uuid4())
    raw = encode_envelope(
        Envelope(
            id=event_id,
            type=event_type,
            schema_version=1,
            occurred_at=occurred_at,
            source="release-decision",
            aggregate="release:x",
            actor="system",
            data=data or {"project_id": "p1"},
        )
    )
    conn = await stack.sql()
    try:
        await conn.execute(
            "INSERT INTO webhook_fanout.delivery_events VALUES ($1, $2, $3, $4, $5)",
            event_id,
            event_type,
            next(_SEQ),
            occurred_at,
            raw,
        )
    finally:
        await conn.close()
    return event_id


async def seed_delivery(
    stack: Stack,
    hook_id: str,
    event_id: str,
    *,
    status: str,
    created_at: dt.datetime,
    attempts: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> str:
    """A delivery of a seeded event, in ``status``, with ``attempts`` in its log (kept state
    the sender writes; seeded to test the log's reads at chosen times and statuses)."""
    delivery = delivery_id(hook_id, event_id)
    conn = await stack.sql()
    try:
        event = await conn.fetchrow(
            "SELECT stream_seq, event_type FROM webhook_fanout.delivery_events WHERE event_id = $1",
            event_id,
        )
        await conn.execute(
            "INSERT INTO webhook_fanout.deliveries (id, subscription_id, event_id, event_type,"
            " stream_seq, status, attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            delivery,
            hook_id,
            event_id,
            event["event_type"],
            event["stream_seq"],
            status,
            len(attempts),
            created_at,
        )
        for number, attempt in enumerate(attempts, start=1):
            await conn.execute(
                "INSERT INTO webhook_fanout.delivery_attempts (delivery_id, attempt, at,"
                " request_headers, response_status, response_body, latency_ms, error)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                delivery,
                number,
                created_at + dt.timedelta(seconds=number),
                attempt.get("headers", {"webhook-id": str(delivery)}),
                attempt.get("status"),
                attempt.get("body"),
                attempt.get("latency_ms", 12.5),
                attempt.get("error"),
            )
    finally:
        await conn.close()
    return str(delivery)


async def delivery_row(stack: Stack, delivery: str) -> asyncpg.Record:
    conn = await stack.sql()
    try:
        row = await conn.fetchrow(
            "SELECT * FROM webhook_fanout.deliveries WHERE id = $1", uuid.UUID(delivery)
        )
        assert row is not None
        return row
    finally:
        await conn.close()


async def serve_fanout(env: dict[str, str]) -> asyncio.subprocess.Process:
    """``gatehouse serve webhook-fanout`` as a child process (killed with its parent), for
    the tests that kill it or its broker mid-burst."""
    return await asyncio.create_subprocess_exec(
        *CLI,
        "serve",
        "webhook-fanout",
        cwd=CLI_CWD,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
