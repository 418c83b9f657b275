"""The four not-yet-domain services start, migrate, report health and metrics."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import StartService


@pytest.mark.parametrize(
    "name", ["scanner", "signature-verifier", "release-decision", "webhook-fanout"]
)
async def test_service_starts_and_reports_ready(start_service: StartService, name: str) -> None:
    runtime = await start_service(name)
    async with aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{runtime.http_port}"
        async with http.get(f"{base}/health/live") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/health/ready") as resp:
            body = await resp.json()
            assert resp.status == 200, body
            assert body["checks"]["bus"] is True and body["checks"]["migrations"] is True
        async with http.get(f"{base}/metrics") as resp:
            assert "gatehouse_http_request_duration_seconds" in await resp.text()
