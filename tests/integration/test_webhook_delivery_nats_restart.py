"""A NATS restart in the middle of a burst: the fan-out (a child process) loses the broker
while its intake is still working through the stream and its sender is still delivering;
after the restart every event reached every receiver at least once, a duplicate carries the
same delivery id as the first copy, and events published after the restart arrive too.

Runs on a NATS and a PostgreSQL of this module's own (``private_infra``), so stopping the
broker disturbs no other test. Subscriptions are made the real way: ``webhook_create`` over
NATS request/reply, as the gateway's ``POST /api/admin/webhooks`` does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import nats
from aiohttp import web

from contracts.envelope import Envelope
from contracts.rpc import webhooks as rpc
from services.webhook_fanout.deliveries.outcomes import delivery_id
from shared.bus import Bus
from shared.rpc import CallContext, call
from shared.settings import Settings, load_settings
from tests.conftest import PrivateInfra, wait_until
from tests.integration.audit_support import cli_env, project_created, publish_burst
from tests.integration.webhook_delivery_support import serve_fanout

BEFORE = 600  # published before the restart
AFTER = 100  # published once the broker is back
NAMES = ("a", "b")
SECRET = "whsec_" + base64.b64encode(b"nats-restart-test-secret-0123456").decode()
ADMIN = CallContext(request_id="test-nats-restart", actor="apikey:test", roles=("admin",))


@dataclass
class Receiver:
    port: int = 0
    # (path, webhook-id, event id) of every request, duplicates included.
    received: list[tuple[str, str, str]] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def event_ids(self, path: str) -> set[str]:
        return {event for p, _, event in self.received if p == path}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(
            (request.match_info["path"], request.headers["webhook-id"], json.loads(body)["id"])
        )
        return web.Response(text="ok")


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/{path}", rec.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rec.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield rec
    finally:
        await runner.cleanup()


@asynccontextmanager
async def private_settings(private_infra: PrivateInfra) -> AsyncIterator[Settings]:
    name = f"nr_{uuid.uuid4().hex[:12]}"
    admin_url = private_infra.postgres.url("postgres")
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    settings = load_settings(
        {},
        nats_url=private_infra.nats.url,
        database_url=private_infra.postgres.url(name),
        stream_name=f"NATSRESTART_{uuid.uuid4().hex[:8].upper()}",
        http_port=0,
    )
    try:
        yield settings
    finally:
        # Two streams cannot share subjects: leave the server as this test found it.
        nc = await nats.connect(settings.nats_url)
        try:
            await nc.jetstream().delete_stream(settings.stream_name)
        finally:
            await nc.close()


async def _subscribe(bus: Bus, url: str) -> str:
    async def answered() -> bool:  # the service is up once its RPC endpoint answers
        try:
            await call(
                bus,
                rpc.SERVICE,
                rpc.WEBHOOK_LIST,
                rpc.WebhookListRequest(),
                rpc.WebhookPage,
                ctx=ADMIN,
                timeout=2,
            )
        except Exception:
            return False
        return True

    await wait_until(answered, timeout=30, interval=0.1)
    reply = await call(
        bus,
        rpc.SERVICE,
        rpc.WEBHOOK_CREATE,
        rpc.WebhookCreateRequest(
            body=rpc.WebhookBody(url=url, events=["project.*"], secret=SECRET)
        ),
        rpc.WebhookSecretReply,
        ctx=ADMIN,
        timeout=10,
    )
    return reply.webhook.id


async def _queued(settings: Settings) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM webhook_fanout.deliveries"))
    finally:
        await conn.close()


async def test_nats_restart_mid_burst_delivers_everything_at_least_once(
    private_infra: PrivateInfra,
) -> None:
    async with private_settings(private_infra) as settings, receiving() as rec:
        env = cli_env(
            settings,
            GATEHOUSE_OUTBOUND_ALLOW_CIDRS="127.0.0.0/8",
            GATEHOUSE_WEBHOOK_LEASE_SECONDS="2",
            # Small batches: the intake is still reading the stream when the broker goes.
            GATEHOUSE_PROJECTION_BATCH_SIZE="10",
        )
        bus = await Bus.connect(settings, name="test-publisher")
        await bus.ensure_stream()
        fanout = await serve_fanout(env)
        try:
            subs = [await _subscribe(bus, rec.url(name)) for name in NAMES]
            before: list[Envelope] = [project_created() for _ in range(BEFORE)]
            await publish_burst(bus, before)

            async def under_way() -> bool:
                return len(rec.received) >= BEFORE // 4

            await wait_until(under_way, timeout=30, interval=0.005)
            await asyncio.to_thread(private_infra.nats.stop)
            stopped_at = len(rec.received)
            queued = await _queued(settings)
            print(f"broker stopped: {stopped_at} received, {queued} deliveries queued")
            assert stopped_at < len(NAMES) * BEFORE, "the restart did not land mid-burst"
            await asyncio.to_thread(private_infra.nats.start)

            async def bus_back() -> bool:
                return bus.connected

            await wait_until(bus_back, timeout=30, interval=0.05)
            after: list[Envelope] = [project_created() for _ in range(AFTER)]
            await publish_burst(bus, after)
            wanted = {e.id for e in before + after}

            async def all_in() -> bool:
                return all(rec.event_ids(name) == wanted for name in NAMES)

            await wait_until(all_in, timeout=40, interval=0.05)
            assert fanout.returncode is None, "the fan-out died with the broker"
            for name, sid in zip(NAMES, subs, strict=True):
                for path, webhook_id, event_id in rec.received:
                    if path == name:
                        assert webhook_id == str(delivery_id(sid, event_id))
            assert {p for p, _, _ in rec.received} == set(NAMES)
        finally:
            if fanout.returncode is None:
                fanout.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(fanout.wait(), 20)
                except TimeoutError:
                    fanout.kill()
                    await fanout.wait()
            await bus.close()
        assert fanout.returncode == 0
