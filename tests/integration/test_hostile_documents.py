"""Hostile documents through the real scanner, gateway and release-decision (issue 9, §2):
each ends promptly as a refusal with its location, nothing wedges, the next upload still
works, and a malformed snapshot is never a SHIP."""

from __future__ import annotations

from typing import Any

import aiohttp

from shared.service import Runtime
from shared.settings import Settings
from tests.bench.sbom_micro import generate
from tests.conftest import StartService, wait_until
from tests.integration.test_release_decision_support import gate_stack, sha
from tests.integration.test_scan_support import ScanApi, cyclonedx_json, scan_api
from tests.integration.test_vulndb_support import ZIP, fetch, osv, vulndb_api, zip_of
from tests.unit.test_scanner_hostile_documents import nested_json, nested_xml


def with_nul_name() -> bytes:
    return cyclonedx_json().replace(b'"name": "django"', b'"name": "dja\\u0000ngo"', 1)


async def test_hostile_sboms_fail_with_a_location_and_the_next_upload_works(
    start_service: StartService,
) -> None:
    hostile: list[tuple[bytes, str, str]] = [
        # 10,000 components deep: ran the scanner to 2.3 GB and wedged the scans projection
        (nested_xml(10_000), "sbom_malformed", "/bom/components"),
        (nested_json(10_000), "sbom_malformed", "$"),  # a RecursionError: crashed 5 times
        (nested_xml(40), "sbom_malformed", "/bom/components/component[1]/components"),
        # a NUL in a component's name: running forever (the projection could not insert it)
        (with_nul_name(), "sbom_malformed", "$.components[0].name"),
    ]
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        for body, code, location in hostile:
            scan = await s.scan(project["slug"], body, content_type="text/plain")
            assert scan["status"] == "failed", scan
            assert scan["error"]["code"] == code, scan["error"]
            assert (scan["error"]["location"] or "").startswith(location), scan["error"]
        assert (await s.call("GET", f"/api/v1/projects/{project['slug']}/snapshots")).body[
            "items"
        ] == []
        # nothing wedged: the next upload is scanned
        fine = await s.scan(project["slug"], cyclonedx_json())
        assert fine["status"] == "succeeded", fine
        snapshots = await s.call("GET", f"/api/v1/projects/{project['slug']}/snapshots")
        assert [item["scan_id"] for item in snapshots.body["items"]] == [fine["id"]]


# Within every limit of the readers (a valid CycloneDX document of 25,000 components, 21 MB),
# yet reading it takes the reader's process to ~200 MiB of address space and ~0.5 s.
def expensive_sbom() -> bytes:
    return generate(25_000)


async def _scan_expensive(s: ScanApi, project: str) -> dict[str, Any]:
    reply = await s.upload_sbom(project, expensive_sbom())
    assert reply.status == 202, reply.body
    return await s.finished(reply.body["scan_id"], timeout=120.0)


async def _ready(runtime: Runtime) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{runtime.http_port}/health/ready") as resp,
    ):
        return resp.status


async def _attempts(runtime: Runtime, scan_id: str) -> list[int]:
    sql = "SELECT attempts FROM scanner.jobs WHERE payload->>'scan_id' = $1"
    rows = await fetch(runtime.settings, sql, scan_id)
    return [row["attempts"] for row in rows]


async def test_a_document_beyond_the_read_memory_bound_fails_too_large_and_the_scanner_stays_up(
    start_service: StartService,
) -> None:
    # The child starts at ~60 MiB of address space: room for a small SBOM, not for this one.
    async with scan_api(start_service, scan_read_memory_bytes=128 * 1_048_576) as s:
        project = await s.api.new_project()
        scan = await _scan_expensive(s, project["slug"])
        assert (scan["status"], scan["error"]["code"]) == ("failed", "too_large"), scan
        assert "GATEHOUSE_SCAN_READ_MEMORY_BYTES" in scan["error"]["message"], scan["error"]
        assert await _attempts(s.scanner, scan["id"]) == [1]  # failed, never crashed
        assert await _ready(s.scanner) == 200
        # the next upload is read by a new child, in the same scanner
        fine = await s.scan(project["slug"], cyclonedx_json())
        assert fine["status"] == "succeeded", fine
        snapshots = await s.call("GET", f"/api/v1/projects/{project['slug']}/snapshots")
        assert [item["scan_id"] for item in snapshots.body["items"]] == [fine["id"]]


async def test_a_read_beyond_the_time_bound_fails_too_large(start_service: StartService) -> None:
    async with scan_api(start_service, scan_read_seconds=0.05) as s:
        project = await s.api.new_project()
        scan = await _scan_expensive(s, project["slug"])
        assert (scan["status"], scan["error"]["code"]) == ("failed", "too_large"), scan
        assert "longer than its 0.05 s" in scan["error"]["message"], scan["error"]
        assert "GATEHOUSE_SCAN_READ_SECONDS" in scan["error"]["message"], scan["error"]
        assert await _attempts(s.scanner, scan["id"]) == [1]
        assert await _ready(s.scanner) == 200


async def test_with_the_bounds_off_the_scanner_reads_in_its_own_process(
    start_service: StartService,
) -> None:
    async with scan_api(start_service, scan_read_memory_bytes=0) as s:
        project = await s.api.new_project()
        fine = await s.scan(project["slug"], cyclonedx_json())
        assert fine["status"] == "succeeded", fine
        hostile = await s.scan(project["slug"], with_nul_name())
        assert hostile["error"]["code"] == "sbom_malformed", hostile


async def test_a_malformed_snapshot_is_never_a_ship(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/hostile")
        commit = sha()
        scan = await g.s.scan(
            project["slug"], with_nul_name(), query=f"repo=acme/hostile&commit={commit}"
        )
        assert (scan["status"], scan["error"]["code"]) == ("failed", "sbom_malformed"), scan
        blockers: list[tuple[str, str]] = []

        async def decided_without_evidence() -> bool:
            # NO_SHIP comes first with `evidence_pending` (the scan was queued); the failed
            # scan then leaves the commit without evidence, still NO_SHIP.
            reply = await g.decision("acme/hostile", commit)
            if reply.status != 200:
                return False
            assert reply.body["decision"] == "NO_SHIP", reply.body
            blockers[:] = [(b["code"], b["ref"]) for b in reply.body["blockers"]]
            return ("no_evidence", "sbom") in blockers

        await wait_until(decided_without_evidence, timeout=20)
        assert ("evidence_pending", scan["id"]) not in blockers


async def test_an_advisory_the_database_cannot_hold_is_rejected_not_lost(
    start_service: StartService, settings: Settings
) -> None:
    bad: dict[str, Any] = {
        "nul.json": osv("GHSA-nul-0001", summary="a\u0000b"),
        "early.json": osv("GHSA-early-0001", published="0001-01-01T00:00:00+14:00"),
        "late.json": osv("GHSA-late-0001", published="9999-12-31T23:59:59-14:00"),
        "ok.json": osv("GHSA-ok-0001"),
    }
    async with vulndb_api(start_service) as api:
        reply = await api.call("POST", "/api/v1/vulndb/import", data=zip_of(bad), headers=ZIP)
        assert reply.status == 200, reply.body
        assert reply.body["counts"]["added"] == 1
        assert reply.body["counts"]["rejected"] == 3
        rejected = {r["id"]: (r["code"], r["location"]) for r in reply.body["rejected"]}
        assert rejected == {
            "GHSA-nul-0001": ("osv_malformed", "$.summary"),
            "GHSA-early-0001": ("osv_malformed", "$.published"),
            "GHSA-late-0001": ("osv_malformed", "$.published"),
        }
        # what was acknowledged is there; what was refused was never written
        assert (await api.call("GET", "/api/v1/vulndb/advisories/GHSA-ok-0001")).status == 200
        missing = await api.call("GET", "/api/v1/vulndb/advisories/GHSA-nul-0001")
        assert missing.status == 404
        rows = await fetch(settings, "SELECT id FROM scanner.advisories ORDER BY id")
        assert [r["id"] for r in rows] == ["GHSA-ok-0001"]
        # and the import after it is applied (the projection did not stop on it)
        again = await api.call(
            "POST",
            "/api/v1/vulndb/import",
            data=zip_of({"b.json": osv("GHSA-ok-0002")}),
            headers=ZIP,
        )
        assert (again.status, again.body["counts"]["added"]) == (200, 1), again.body
