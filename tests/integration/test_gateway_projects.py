"""Projects over HTTP: create, read-your-writes, list, If-Match, archive, project scope."""

from __future__ import annotations

from tests.conftest import StartService
from tests.integration.test_gateway_support import gateway_api


async def test_create_then_read_sees_it_every_time(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        for i in range(20):
            project = await api.new_project(f"ryw-{i}")
            reply = await api.call("GET", f"/api/v1/projects/ryw-{i}")
            assert reply.status == 200, reply.body
            assert reply.body["id"] == project["id"]
            assert reply.headers["ETag"] == f'"v{project["version"]}"'
