"""kill -9 of webhook-fanout in the middle of a burst: after a restart every event reached
every receiver at least once, in stream order per subscription, and a duplicate carries
the same delivery id as the first copy."""

from __future__ import annotations

import asyncio
import json
import signal

import asyncpg

from services.webhook_fanout.deliveries.outcomes import delivery_id
from shared.bus import Bus
from shared.settings import Settings
from tests.conftest import wait_until
from tests.integration.audit_support import cli_env
from tests.integration.webhook_delivery_support import (
    publish_projects,
    receiver,
    serve_fanout,
    subscribe,
)

COUNT = 600


async def _migrated(settings: Settings) -> bool:
    try:
        conn = await asyncpg.connect(settings.database_url)
    except (OSError, asyncpg.PostgresError):
        return False
    try:
        return bool(await conn.fetchval("SELECT to_regclass('webhook_fanout.delivery_intake')"))
    finally:
        await conn.close()


async def test_kill_9_mid_burst_delivers_everything_at_least_once_in_order(
    settings: Settings,
) -> None:
    env = cli_env(
        settings,
        GATEHOUSE_OUTBOUND_ALLOW_CIDRS="127.0.0.0/8",
        GATEHOUSE_WEBHOOK_LEASE_SECONDS="2",
        GATEHOUSE_PROJECTION_BATCH_SIZE="20",
    )
    bus = await Bus.connect(settings, name="test-publisher")
    await bus.ensure_stream()
    first = await serve_fanout(env)
    second: asyncio.subprocess.Process | None = None
    try:
        async with receiver() as rec:
            await wait_until(lambda: _migrated(settings), timeout=30, interval=0.1)
            subs = [
                (await subscribe(bus, url=rec.url(name), events=["project.*"]))[0]
                for name in ("a", "b")
            ]
            events = await publish_projects(bus, COUNT)

            async def under_way() -> bool:
                return len(rec.received) >= COUNT // 2

            await wait_until(under_way, timeout=60, interval=0.005)
            first.send_signal(signal.SIGKILL)
            await first.wait()
            killed_at = len(rec.received)
            assert killed_at < 2 * COUNT, "the kill did not land in the middle of the burst"

            second = await serve_fanout(env)

            async def all_in() -> bool:
                return all(
                    {json.loads(r.body)["id"] for r in rec.at(name)} == {e.id for e in events}
                    for name in ("a", "b")
                )

            await wait_until(all_in, timeout=60, interval=0.05)
            for name, sid in zip(("a", "b"), subs, strict=True):
                got = rec.at(name)
                for request in got:
                    event_id = json.loads(request.body)["id"]
                    assert request.headers["webhook-id"] == str(delivery_id(sid, event_id))
                firsts: list[str] = []
                for request in got:
                    event_id = json.loads(request.body)["id"]
                    if event_id not in firsts:
                        firsts.append(event_id)
                assert firsts == [e.id for e in events], "out of stream order"
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        await bus.close()
    assert second is not None and second.returncode == 0
