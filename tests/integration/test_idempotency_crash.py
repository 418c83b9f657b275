"""kill -9 at each step of an Idempotency-Key write, and a retry with the same key: it gets
the answer the first attempt would have given, and the stream holds one event.

Services run as real processes (``gatehouse serve``) that SIGKILL themselves at a named step
(``GATEHOUSE_FAULT_POINT``, ``shared/faults.py``):

* the gateway after publishing its own event (API keys, projects), before its projection
  applied it;
* the gateway with the answer in hand, before storing it;
* the gateway after handing an upload to the scanner, before the scanner answered;
* the scanner after publishing ``scan.queued``, before its projection applied it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from contracts.envelope import decode_event
from shared.bus import Bus
from shared.embedded import free_port
from shared.faults import ENV as FAULT_ENV
from shared.settings import Settings
from tests.conftest import ROOT, StartService, wait_until
from tests.integration.test_gateway_support import Reply, gateway_api
from tests.integration.test_scan_support import cyclonedx_json

SBOM_TYPE = {"Content-Type": "application/json"}


@asynccontextmanager
async def service(
    settings: Settings, name: str, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "serve",
        name,
        cwd=ROOT,
        env={
            **{k: v for k, v in os.environ.items() if k != FAULT_ENV},
            "GATEHOUSE_NATS_URL": settings.nats_url,
            "GATEHOUSE_DATABASE_URL": settings.database_url,
            "GATEHOUSE_BOOTSTRAP_TOKEN": settings.bootstrap_token,
            "GATEHOUSE_RATE_LIMIT_PER_TOKEN": "10000",
            "GATEHOUSE_RATE_LIMIT_PER_IP": "10000",
            "GATEHOUSE_HTTP_PORT": "0",
            "GATEHOUSE_LOG_LEVEL": "warning",
            **env,
        },
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


class Client:
    def __init__(self, http: aiohttp.ClientSession, base: str, token: str) -> None:
        self.http, self.base, self.token = http, base, token

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        async with self.http.request(
            method, self.base + path, json=json, data=data, headers=sent
        ) as resp:
            body = await resp.json(content_type=None) if resp.content_length != 0 else None
            return Reply(resp.status, resp.headers, body)

    async def ready(self) -> bool:
        try:
            async with self.http.get(self.base + "/health/ready") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False


@asynccontextmanager
async def gateway(
    settings: Settings, http: aiohttp.ClientSession, **env: str
) -> AsyncIterator[tuple[Client, asyncio.subprocess.Process]]:
    port = free_port()
    async with service(settings, "gateway", GATEHOUSE_HTTP_PORT=str(port), **env) as proc:
        client = Client(http, f"http://127.0.0.1:{port}", settings.bootstrap_token)
        await wait_until(client.ready, timeout=60, interval=0.1)
        yield client, proc


async def _killed(proc: asyncio.subprocess.Process) -> None:
    assert await asyncio.wait_for(proc.wait(), timeout=30) == -signal.SIGKILL


@asynccontextmanager
async def bus_of(settings: Settings) -> AsyncIterator[Bus]:
    bus = await Bus.connect(settings, name="test-observer")
    try:
        yield bus
    finally:
        await bus.close()


async def _count(bus: Bus, subject: str) -> int:
    info = await bus.js.stream_info(bus.stream, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def _last(bus: Bus, subject: str) -> Any:
    msg = await bus.js.get_last_msg(bus.stream, subject)
    return decode_event(msg.data, sequence=int(msg.seq or 0)).payload


CREATES = {
    "api-keys": (
        "/api/v1/api-keys",
        lambda: {"name": "ci", "roles": ["VIEWER"]},
        "apikey.created",
        "key_id",
    ),
    "projects": (
        "/api/v1/projects",
        lambda: {"slug": f"crash-{uuid.uuid4().hex[:8]}", "name": "Crash"},
        "project.created",
        "project_id",
    ),
}


@pytest.mark.parametrize("fault", ["command.after_publish", "idempotency.before_store"])
@pytest.mark.parametrize("resource", sorted(CREATES))
async def test_a_gateway_killed_mid_create_is_retried_into_the_first_answer(
    settings: Settings, resource: str, fault: str
) -> None:
    path, make_body, event_type, id_field = CREATES[resource]
    body, key = make_body(), {"Idempotency-Key": f"crash-{uuid.uuid4().hex}"}
    async with aiohttp.ClientSession() as http, bus_of(settings) as bus:
        async with gateway(settings, http, **{FAULT_ENV: fault}) as (client, proc):
            before = await _count(bus, event_type)  # the bootstrap admin key, for api-keys
            with pytest.raises(aiohttp.ClientError):
                await client.call("POST", path, json=body, headers=key)
            await _killed(proc)
        assert await _count(bus, event_type) == before + 1
        made = getattr(await _last(bus, event_type), id_field)

        async with gateway(settings, http) as (client, _):
            # At once, not 409 in_progress: the attempt's process is gone.
            retry = await client.call("POST", path, json=body, headers=key)
            assert retry.status == 201, retry.body
            assert retry.body["id"] == made
            assert retry.headers["Location"].endswith(f"/{made}")
            if resource == "api-keys":
                assert retry.body["token"] is None  # made by the dead attempt, shown to nobody
            replay = await client.call("POST", path, json=body, headers=key)
            assert replay.status == 201 and replay.headers["Idempotent-Replayed"] == "true"
            assert replay.body == retry.body
        assert await _count(bus, event_type) == before + 1


async def test_a_gateway_killed_after_handing_over_an_upload_is_retried_into_the_same_scan(
    settings: Settings, start_service: StartService
) -> None:
    await start_service("scanner")
    key = {**SBOM_TYPE, "Idempotency-Key": f"upload-{uuid.uuid4().hex}"}
    async with aiohttp.ClientSession() as http, bus_of(settings) as bus:
        async with gateway(settings, http, **{FAULT_ENV: "rpc.after_send"}) as (client, proc):
            created = await client.call(
                "POST", "/api/v1/projects", json={"slug": "uploads", "name": "U"}
            )
            assert created.status == 201
            path = "/api/v1/projects/uploads/sboms"
            with pytest.raises(aiohttp.ClientError):
                await client.call("POST", path, data=cyclonedx_json(), headers=key)
            await _killed(proc)

        async def queued() -> bool:  # the scanner got the request and went on without us
            return await _count(bus, "scan.queued") == 1

        await wait_until(queued, timeout=30)
        first = await _last(bus, "scan.queued")
        async with gateway(settings, http) as (client, _):
            retry = await client.call("POST", path, data=cyclonedx_json(), headers=key)
            assert retry.status == 202, retry.body
            assert retry.body == {
                "scan_id": first.scan_id,
                "status": "queued",
                "format": first.format,
            }
        assert await _count(bus, "scan.queued") == 1


async def test_a_scanner_killed_between_publishing_and_applying_an_upload_queues_it_once(
    settings: Settings, start_service: StartService
) -> None:
    async with gateway_api(start_service, rpc_timeout_seconds=3.0) as api:
        project = await api.new_project()
        path = f"/api/v1/projects/{project['slug']}/sboms"
        key = {**SBOM_TYPE, "Idempotency-Key": f"upload-{uuid.uuid4().hex}"}
        async with service(settings, "scanner", **{FAULT_ENV: "command.after_publish"}) as proc:

            async def answering() -> bool:
                reply = await api.call("GET", f"/api/v1/projects/{project['slug']}/scans")
                return reply.status == 200

            await wait_until(answering, timeout=60, interval=0.1)
            first = await api.call("POST", path, data=cyclonedx_json(), headers=key)
            assert first.status >= 500  # no answer: the scanner died
            await _killed(proc)
        async with bus_of(settings) as bus:
            assert await _count(bus, "scan.queued") == 1
            queued = await _last(bus, "scan.queued")
            await start_service("scanner")
            retry = await api.call("POST", path, data=cyclonedx_json(), headers=key)
            assert retry.status == 202, retry.body
            assert retry.body["scan_id"] == queued.scan_id
            assert await _count(bus, "scan.queued") == 1
