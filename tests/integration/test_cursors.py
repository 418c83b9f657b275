"""A hand-made cursor whose key parts are of the wrong kinds (text where the list sorts by
a number, numbers beyond bigint) is 422 invalid_cursor on every kind of list, never a 500:
lists keyed by a sequence, by text, by mixed sort expressions, and the release lists."""

from __future__ import annotations

from urllib.parse import quote

from shared.pagination import encode_cursor
from tests.conftest import StartService
from tests.integration.test_scan_support import cyclonedx_json, scan_api


async def test_wrong_kinds_of_cursor_are_422_everywhere(start_service: StartService) -> None:
    await start_service("release-decision")
    async with scan_api(start_service) as s:
        await s.api.new_project("cursors", repos=["acme/cursors"])
        scanned = await s.scan("cursors", cyclonedx_json())
        assert scanned["status"] == "succeeded", scanned

        def cursor(*key: str | int) -> str:
            return quote(encode_cursor(key))

        paths = [
            f"/api/v1/projects/cursors/scans?cursor={cursor('x')}",
            f"/api/v1/projects/cursors/scans?cursor={cursor(2**63)}",
            f"/api/v1/projects/cursors/components?cursor={cursor(1, 2)}",
            f"/api/v1/projects/cursors/vulnerabilities?cursor={cursor('a', 'b', 'c')}",
            f"/api/v1/projects/cursors/license-policy/waivers?cursor={cursor('x')}",
            f"/api/v1/projects?cursor={cursor(5)}",
            f"/api/releases/cursors/releases?cursor={cursor('x')}",
            f"/api/v1/releases/promotions?repo=acme/cursors&cursor={cursor('x', 'y')}",
        ]
        for path in paths:
            reply = await s.call("GET", path)
            assert (reply.status, reply.code) == (422, "invalid_cursor"), (path, reply.body)
