"""Helpers of the deliveries API tests (no tests here): the gateway plus webhook-fanout, a
local receiver, and subscriptions and deliveries seeded in the fan-out's tables."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from contracts.envelope import Envelope, encode_envelope
from contracts.events.webhooks import WebhookCreated
from services.webhook_fanout.deliveries_api.queue import delivery_id_for
from shared.db import connect
from shared.service import Runtime
from tests.conftest import StartService
from tests.integration.test_gateway_support import Api, gateway_api


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local HTTP receiver: records every request and answers ``answer(request)``."""

    url: str
    got: list[Received] = field(default_factory=list)


@asynccontextmanager
async def receiver(
    answer: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None,
) -> AsyncIterator[Receiver]:
    found = Receiver(url="")

    async def handle(request: web.Request) -> web.StreamResponse:
        found.got.append(Received(dict(request.headers), await request.read()))
        if answer is not None:
            return await answer(request)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    found.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield found
    finally:
        await runner.cleanup()


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


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# ---- TEST HELPER: stands in for the subscriptions projection (arrives at the merge) -----
async def seed_subscription(
    stack: Stack,
    url: str,
    *,
    events: tuple[str, ...] = ("release.*",),
    format: str = "standard",
    project_id: str | None = None,
    secret: str | None = None,
) -> tuple[str, str]:
    """A subscription as the subscriptions part will make it: ``webhook.created`` published,
    its row and its secret written by SQL. Returns (id, secret)."""
    hook_id = "wh_" + uuid.uuid4().hex
    secret = secret or new_secret()
    published = await stack.fanout.bus.publish_acked(
        WebhookCreated(
            id=hook_id, url=url, events=list(events), project_id=project_id, format=format
        ),  # type: ignore[arg-type]
        aggregate=f"webhook:{hook_id}",
        actor="test",
    )
    now = dt.datetime.now(dt.UTC)
    conn = await stack.sql()
    try:
        await conn.execute(
            "INSERT INTO webhook_fanout.subscriptions (id, url, events, project_id, enabled,"
            " format, secret_version, created_at, updated_at, revision, created_seq)"
            " VALUES ($1, $2, $3, $4, true, $5, 1, $6, $6, 1, $7)",
            hook_id,
            url,
            list(events),
            project_id,
            format,
            now,
            published.sequence,
        )
        await conn.execute(
            "INSERT INTO webhook_fanout.subscription_secrets VALUES ($1, 1, $2, $3)",
            hook_id,
            secret,
            now,
        )
    finally:
        await conn.close()
    return hook_id, secret


# ---- seeded deliveries (the engine writes these at the merge) ----------------------------
_SEQ = iter(range(1_000_000, 2_000_000))


async def seed_event(
    stack: Stack,
    event_type: str,
    *,
    occurred_at: dt.datetime,
    data: dict[str, Any] | None = None,
) -> str:
    """An event recorded by the intake (delivery_events), as published."""
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
    delivery_id = delivery_id_for(hook_id, event_id)
    conn = await stack.sql()
    try:
        seq = await conn.fetchval(
            "SELECT stream_seq FROM webhook_fanout.delivery_events WHERE event_id = $1", event_id
        )
        event_type = await conn.fetchval(
            "SELECT event_type FROM webhook_fanout.delivery_events WHERE event_id = $1", event_id
        )
        await conn.execute(
            "INSERT INTO webhook_fanout.deliveries (id, subscription_id, event_id, event_type,"
            " stream_seq, status, attempts, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            delivery_id,
            hook_id,
            event_id,
            event_type,
            seq,
            status,
            len(attempts),
            created_at,
        )
        for number, attempt in enumerate(attempts, start=1):
            await conn.execute(
                "INSERT INTO webhook_fanout.delivery_attempts (delivery_id, attempt, at,"
                " request_headers, response_status, response_body, latency_ms, error)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                delivery_id,
                number,
                created_at + dt.timedelta(seconds=number),
                attempt.get("headers", {"webhook-id": str(delivery_id)}),
                attempt.get("status"),
                attempt.get("body"),
                attempt.get("latency_ms", 12.5),
                attempt.get("error"),
            )
    finally:
        await conn.close()
    return str(delivery_id)


async def delivery_row(stack: Stack, delivery_id: str) -> asyncpg.Record:
    conn = await stack.sql()
    try:
        row = await conn.fetchrow(
            "SELECT * FROM webhook_fanout.deliveries WHERE id = $1", uuid.UUID(delivery_id)
        )
        assert row is not None
        return row
    finally:
        await conn.close()
