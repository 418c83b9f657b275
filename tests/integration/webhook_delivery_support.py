"""Helpers of the webhook delivery tests: a real local aiohttp receiver whose answers each
test scripts per path, subscriptions, and reads of the deliveries tables."""

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

from contracts.envelope import Envelope
from contracts.events.webhooks import WebhookCreated
from shared.bus import Bus
from shared.db import connect
from shared.settings import Settings
from tests.integration.audit_support import project_created, publish_burst

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
    settings: Settings,
    *,
    url: str,
    events: list[str],
    format: str = "standard",
    secret_text: str | None = None,
    project_id: str | None = None,
) -> tuple[str, str]:
    """Publish ``webhook.created`` and write the subscription's rows.

    TEST-ONLY STAND-IN: the subscriptions projection (another part, merged separately)
    writes ``subscriptions`` from ``webhook.created``; until it is here the row is written
    directly, as that projection will (``ON CONFLICT DO NOTHING``, so both can run).
    ``subscription_secrets`` is written as the subscription handlers do, before publishing.
    """
    sid = f"wh_{uuid.uuid4().hex}"
    text = secret_text or secret()
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO webhook_fanout.subscription_secrets (subscription_id, version, secret, "
            "created_at) VALUES ($1, 1, $2, now())",
            sid,
            text,
        )
        envelope, seq = await bus.publish(
            WebhookCreated(id=sid, url=url, events=events, format=format, project_id=project_id),  # type: ignore[arg-type]
            aggregate=f"webhook:{sid}",
            actor="apikey:test",
        )
        await conn.execute(
            "INSERT INTO webhook_fanout.subscriptions (id, url, events, project_id, enabled, "
            "format, secret_version, created_at, updated_at, revision, created_seq) "
            "VALUES ($1, $2, $3, $4, true, $5, 1, $6, $6, 1, $7) ON CONFLICT (id) DO NOTHING",
            sid,
            url,
            events,
            project_id,
            format,
            envelope.occurred_at,
            seq,
        )
    finally:
        await conn.close()
    return sid, text


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
