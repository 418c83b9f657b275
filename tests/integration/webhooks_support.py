"""Helpers of the webhook subscription tests (no tests here): the gateway plus the
webhook-fanout, and the raw bytes of the stream's webhook events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from shared.service import Runtime
from tests.conftest import StartService
from tests.integration.test_gateway_support import Api, gateway_api

# A public address literal: accepted without resolving a name (the tests have no DNS).
RECEIVER = "https://93.184.216.34/hooks/gatehouse"


@asynccontextmanager
async def webhooks_stack(
    start_service: StartService, **overrides: Any
) -> AsyncIterator[tuple[Api, Runtime]]:
    fanout = await start_service("webhook-fanout", **overrides)
    async with gateway_api(start_service) as api:
        yield api, fanout


async def stream_bytes(runtime: Runtime) -> bytes:
    """Every message of the stream, concatenated (to look for what must never be there)."""
    js = runtime.bus.js
    sub = await js.pull_subscribe(">", stream=runtime.bus.stream)
    found: list[bytes] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(200, timeout=0.3)
            except TimeoutError:
                break
            for msg in msgs:
                found.append(msg.data)
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return b"\n".join(found)


async def new_webhook(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"url": RECEIVER, "events": ["release.decided"], **fields}
    reply = await api.call("POST", "/api/admin/webhooks", json=body)
    assert reply.status == 201, reply.body
    return dict(reply.body)
