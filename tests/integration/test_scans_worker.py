"""The scan worker's guarantees: a scanner killed mid-scan (kill -9) is replaced and the scan
completes exactly once; `gatehouse replay scanner` rebuilds identical tables; late and
repeated events change nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from contracts.events.scans import FindingTriaged, ScanCompleted, SeverityCounts
from services.scanner.scans.ids import scan_event_id
from services.scanner.scans.store import PROJECTION_TABLES
from shared.settings import Settings
from tests.conftest import ROOT, StartService, table_digest, wait_until
from tests.integration.test_gateway_support import Api, gateway_api
from tests.integration.test_scan_findings import PKGS, advisories
from tests.integration.test_scan_support import (
    ScanApi,
    cyclonedx_json,
    fetch,
    scan_api,
    spdx_json,
    subject_counts,
)
from tests.integration.test_vulndb_support import T1, ZIP, osv
from tests.integration.test_vulndb_support import zip_of as osv_zip

# Read-model tables a replay must rebuild identically (jobs also hold worker bookkeeping:
# attempts and leases, which a replay does not know).
DIGESTED = [t for t in PROJECTION_TABLES if t != "jobs"]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "GATEHOUSE_NATS_URL": settings.nats_url,
        "GATEHOUSE_DATABASE_URL": settings.database_url,
        "GATEHOUSE_HTTP_PORT": "0",
        "GATEHOUSE_LOG_LEVEL": "warning",
        **extra,
    }


@asynccontextmanager
async def scanner_process(
    settings: Settings, **env: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "serve",
        "scanner",
        cwd=ROOT,
        env=_env(settings, **env),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def test_a_scanner_killed_mid_scan_is_replaced_and_the_scan_completes_once(
    start_service: StartService, settings: Settings
) -> None:
    async with gateway_api(start_service) as api:
        project = await api.new_project()
        async with scanner_process(
            settings,
            GATEHOUSE_SCAN_STAGE_PAUSE_SECONDS="1.0",
            GATEHOUSE_JOB_LEASE_SECONDS="1.0",
        ) as proc:
            accepted: dict[str, str] = {}

            async def submitted() -> bool:  # the subprocess answers once it has started
                reply = await api.call(
                    "POST",
                    f"/api/v1/projects/{project['slug']}/sboms",
                    data=cyclonedx_json(),
                    headers={"Content-Type": "application/json"},
                )
                accepted.update(reply.body if reply.status == 202 else {})
                return reply.status == 202

            await wait_until(submitted, timeout=60, interval=0.2)
            scan_id = accepted["scan_id"]

            async def running() -> bool:
                reply = await api.call("GET", f"/api/v1/scans/{scan_id}")
                return bool(reply.body.get("status") == "running")

            await wait_until(running, timeout=60)
            # Mid-scan: the worker pauses a second after each of its three stages.
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()

        replacement = await start_service("scanner", job_lease_seconds=1.0)
        s = ScanApi(api=api, scanner=replacement)
        scan = await s.finished(scan_id, timeout=60)
        assert scan["status"] == "succeeded", scan
        counts = await subject_counts(replacement, "scan.>")
        # The re-run re-published started and parse with the same ids: JetStream dropped them.
        assert counts == {
            "scan.queued": 1,
            "scan.started": 1,
            "scan.progressed": 3,
            "scan.completed": 1,
            "scan.findings-announced": 1,
        }, counts
        job = await fetch(replacement, "SELECT status, attempts FROM scanner.jobs")
        assert [(r["status"], r["attempts"]) for r in job] == [("done", 2)]
        log = await api.call("GET", f"/api/v1/scans/{scan_id}/log")
        assert [e["event"] for e in log.body["items"]].count("scan.started") == 1


async def test_a_scanner_killed_between_completed_and_announced_announces_once(
    start_service: StartService, settings: Settings
) -> None:
    async with gateway_api(start_service) as api:
        project = await api.new_project()
        async with scanner_process(
            settings,
            GATEHOUSE_SCAN_STAGE_PAUSE_SECONDS="1.0",
            GATEHOUSE_JOB_LEASE_SECONDS="1.0",
        ) as proc:

            async def imported() -> bool:
                reply = await api.call(
                    "POST", "/api/v1/vulndb/import", data=osv_zip(advisories()), headers=ZIP
                )
                return reply.status == 200

            await wait_until(imported, timeout=60, interval=0.2)
            reply = await api.call(
                "POST",
                f"/api/v1/projects/{project['slug']}/sboms",
                data=cyclonedx_json(PKGS),
                headers={"Content-Type": "application/json"},
            )
            assert reply.status == 202, reply.body
            scan_id = reply.body["scan_id"]

            async def succeeded() -> bool:
                got = await api.call("GET", f"/api/v1/scans/{scan_id}")
                return bool(got.body.get("status") == "succeeded")

            await wait_until(succeeded, timeout=60)
            # Paused a second after scan.completed, before announcing: kill it there.
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()

        replacement = await start_service("scanner", job_lease_seconds=1.0)
        s = ScanApi(api=api, scanner=replacement)
        await s.finished(scan_id, timeout=60)
        counts = await subject_counts(replacement, "finding.>")
        assert counts == {"finding.created": 2}, counts  # django and sqlparse, once each
        announced = await subject_counts(replacement, "scan.findings-announced")
        assert announced == {"scan.findings-announced": 1}
        job = await fetch(replacement, "SELECT status, attempts FROM scanner.jobs")
        assert [(r["status"], r["attempts"]) for r in job] == [("done", 2)]


async def _replay(settings: Settings) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli",
        "replay",
        "scanner",
        cwd=ROOT,
        env=_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_replay_rebuilds_identical_tables(
    start_service: StartService, settings: Settings
) -> None:
    """Every kind of row: succeeded, failed, deleted and labelled scans, findings from the
    result blobs, triage carried forward, findings resolved by a later snapshot and by a
    re-match, and the jobs, all rebuilt from the stream and the blobs."""
    async with scan_api(start_service) as s:
        imported = await s.call(
            "POST", "/api/v1/vulndb/import", data=osv_zip(advisories()), headers=ZIP
        )
        assert imported.status == 200, imported.body
        first, second = await s.api.new_project(), await s.api.new_project()
        done = await s.scan(first["slug"], cyclonedx_json(PKGS), query="label=v1.0.0")
        found = await s.call("GET", f"/api/v1/projects/{first['slug']}/vulnerabilities")
        django = next(f for f in found.body["items"] if f["package"] == "PyPI:django")
        _, seq = await s.scanner.bus.publish(
            FindingTriaged(
                finding_id=django["id"],
                project_id=first["id"],
                scan_id=done["id"],
                package=django["package"],
                vulnerability_id=django["vulnerability_id"],
                from_state="new",
                to_state="not_affected",
                justification="code_not_reachable",
                detail="admin only",
                version=2,
            ),
            aggregate=f"finding:{django['id']}",
            actor="test",
        )
        await s.scanner.runners["scans"].wait_for(seq, timeout=10)
        await s.scan(first["slug"], cyclonedx_json(PKGS))  # inherits the triage
        await s.scan(first["slug"], cyclonedx_json(PKGS[1:]))  # resolves django
        await s.scan(second["slug"], b'{"bomFormat": "CycloneDX", "specVersion": "1.5"')
        deleted = await s.scan(second["slug"], spdx_json())
        assert (await s.call("DELETE", f"/api/v1/scans/{deleted['id']}")).status == 204
        await s.scan(second["slug"], cyclonedx_json(PKGS))
        # A re-match: sqlparse's advisory withdrawn for both projects.
        withdrawn = osv("GHSA-sq01", name="sqlparse", modified=T1, withdrawn=T1)
        reply = await s.call(
            "POST", "/api/v1/vulndb/import", data=osv_zip({"w.json": withdrawn}), headers=ZIP
        )
        assert reply.status == 200, reply.body

        async def rematched() -> bool:
            return (await subject_counts(s.scanner, "scan.rematched")).get("scan.rematched") == 2

        await wait_until(rematched)
        await s.scanner.runners["scans"].wait_for(await s.scanner.bus.last_sequence(), timeout=10)
        await s.scanner.stop()

    before = await table_digest(settings.database_url, "scanner", DIGESTED)
    rows = {t: len(await _all(settings, f"SELECT 1 FROM scanner.{t}")) for t in PROJECTION_TABLES}
    assert rows["scans"] == 6 and rows["triage"] == 1 and rows["jobs"] == 8, rows
    resolved = await _all(
        settings,
        "SELECT resolved_reason, count(*) AS n FROM scanner.findings "
        "WHERE resolved_reason IS NOT NULL GROUP BY 1 ORDER BY 1",
    )
    assert [(r["resolved_reason"], r["n"]) for r in resolved] == [
        ("advisory_withdrawn", 2),
        ("not_in_new_snapshot", 1),
    ]
    output = await _replay(settings)
    assert "scanner.scans: rebuilt from sequence 0" in output, output
    assert await table_digest(settings.database_url, "scanner", DIGESTED) == before
    jobs = await _all(settings, "SELECT id, status FROM scanner.jobs ORDER BY id")
    assert {r["status"] for r in jobs} == {"done"} and len(jobs) == 8


async def _all(settings: Settings, sql: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return [dict(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def test_late_and_repeated_events_change_nothing(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        scan = await s.scan(project["slug"], cyclonedx_json())
        before = await s.call("GET", f"/api/v1/scans/{scan['id']}")
        # A stale worker's scan.completed (a different id: outside JetStream's window).
        runner = s.scanner.runners["scans"]
        completed = ScanCompleted(
            scan_id=scan["id"],
            project_id=project["id"],
            kind="sbom",
            sbom_digest=scan["sbom_digest"],
            result_digest=scan["result_digest"],
            format="cyclonedx-json",
            spec_version="1.5",
            component_count=99,
            finding_count=0,
            severity_counts=SeverityCounts(),
            epss_threshold=0.1,
        )
        _, seq = await s.scanner.bus.publish(
            completed, aggregate=f"scan:{scan['id']}", actor="system", event_id="late-1"
        )
        await runner.wait_for(seq, timeout=10)
        after = await s.call("GET", f"/api/v1/scans/{scan['id']}")
        assert after.body == before.body
        # The same event id again is dropped by JetStream itself.
        _, again = await s.scanner.bus.publish(
            completed,
            aggregate=f"scan:{scan['id']}",
            actor="system",
            event_id=scan_event_id(scan["id"], "completed"),
        )
        assert again <= seq
        assert (await s.call("GET", f"/api/v1/scans/{scan['id']}")).body == before.body
        assert (await _dead_letters(s.api)) == 0


async def _dead_letters(api: Api) -> int:
    rows = await _all(api.runtime.settings, "SELECT count(*) AS n FROM scanner.dead_letter")
    return int(rows[0]["n"])
