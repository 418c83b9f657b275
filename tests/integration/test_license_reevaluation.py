"""License categories over time: a new scan classifies with the effective policy (org merged
with the project's override, waivers active now); a policy change or a waiver granted,
revoked or expired re-evaluates the latest snapshot off the request path
(``scan.relicensed``), and a replay rebuilds identical tables."""

from __future__ import annotations

import datetime as dt

from contracts.events.licensing import LicenseWaiverExpired, ScanRelicensed
from services.scanner.licensing.store import PROJECTION_TABLES as LICENSING_TABLES
from services.scanner.scans.store import PROJECTION_TABLES as SCANS_TABLES
from shared.settings import Settings
from tests.conftest import StartService, table_digest, wait_until
from tests.integration.test_license_support import (
    categories,
    events,
    gate,
    grant_waiver,
    put_policy,
    relicensed,
    settled,
)
from tests.integration.test_scan_support import Pkg, cyclonedx_json, fetch, scan_api
from tests.integration.test_scans_worker import _replay

PKGS = (
    Pkg("django", "3.2.0"),  # MIT
    Pkg("sqlparse", "0.4.4", license="BSD-3-Clause"),
    Pkg("readline", "6.2.4", license="GPL-3.0-only"),
    Pkg("gnureadline", "8.1.2", license="GPL-3.0-only"),
    Pkg("mystery", "1.0.0", license=None),
)
ORG_POLICY = {
    "allowed": ["MIT", "BSD-3-Clause"],
    "forbidden": ["GPL-3.0-only"],
    "no_license": "conditional",
}


async def test_a_new_scan_uses_the_effective_policy(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        slug = project["slug"]
        assert (await put_policy(s, ORG_POLICY)).status == 200
        override = {"conditional": ["BSD-3-Clause"], "unknown": "forbidden"}
        assert (await put_policy(s, override, project=slug)).status == 200
        await grant_waiver(s, slug, "GPL-3.0-only", purl="pkg:pypi/gnureadline")

        scan = await s.scan(slug, cyclonedx_json(PKGS))
        assert scan["status"] == "succeeded"
        assert scan["summary"]["forbidden_license_count"] == 1  # readline; gnureadline waived
        assert await categories(s, slug) == {
            "django": "allowed",
            "sqlparse": "conditional",  # the project's override wins
            "readline": "forbidden",
            "gnureadline": "allowed",  # waived
            "mystery": "conditional",  # no_license from the org policy
        }
        verdict = await gate(s, slug)
        assert verdict["gate"] == "fail" and verdict["forbidden_license_count"] == 1
        assert verdict["conditional_license_count"] == 2 and verdict["scan_id"] == scan["id"]
        assert "readline (GPL-3.0-only)" in verdict["reason"]
        forbidden = await s.call(
            "GET", f"/api/v1/projects/{slug}/components?license_category=forbidden"
        )
        assert [c["name"] for c in forbidden.body["items"]] == ["readline"]

        # The snapshot records the policy it was classified with.
        rows = await fetch(
            s.scanner,
            "SELECT evaluation_source, org_policy_version, project_policy_version, "
            "project_override, cardinality(waiver_ids) AS waivers FROM scanner.license_scans "
            "WHERE scan_id = $1",
            scan["id"],
        )
        assert [tuple(r) for r in rows] == [("scan", 1, 1, True, 1)]


async def test_policy_change_reevaluates_the_latest_snapshot(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        project, bystander = await s.api.new_project(), await s.api.new_project()
        slug = project["slug"]
        permissive = {"allowed": ["MIT", "BSD-3-Clause", "GPL-3.0-only"], "no_license": "allowed"}
        assert (await put_policy(s, permissive)).status == 200
        older = await s.scan(slug, cyclonedx_json(PKGS))
        latest = await s.scan(slug, cyclonedx_json(PKGS))
        other = await s.scan(bystander["slug"], cyclonedx_json(PKGS[:2]))
        await settled(s)
        passed = await gate(s, slug)
        assert passed["gate"] == "pass" and passed["forbidden_license_count"] == 0, passed
        assert passed["scan_id"] == latest["id"]

        changed = await put_policy(s, ORG_POLICY, headers={"If-Match": '"v1"'})
        assert changed.status == 200
        # Off the request path: every project's latest snapshot is evaluated again.
        await relicensed(s, 2)

        failed = await gate(s, slug)
        assert failed["gate"] == "fail" and failed["forbidden_license_count"] == 2, failed
        assert failed["conditional_license_count"] == 1  # mystery: no license
        assert await categories(s, slug) == {
            "django": "allowed",
            "sqlparse": "allowed",
            "readline": "forbidden",
            "gnureadline": "forbidden",
            "mystery": "conditional",
        }
        # The older snapshot keeps the categories it had; a pin reads them.
        pinned = await gate(s, slug, f"scan_id={older['id']}")
        assert pinned["gate"] == "pass" and pinned["scan_id"] == older["id"]

        relicenses = await events(s.scanner, "scan.relicensed")
        assert all(isinstance(e, ScanRelicensed) for e in relicenses)
        by_scan = {e.scan_id: e for e in relicenses}
        assert set(by_scan) == {latest["id"], other["id"]}
        mine = by_scan[latest["id"]]
        assert (mine.cause, mine.org_policy_version, mine.forbidden_license_count) == (
            "policy_changed",
            2,
            2,
        )
        assert (mine.changed_count, mine.counts.conditional) == (3, 1)
        assert by_scan[other["id"]].changed_count == 0
        log = await s.call("GET", f"/api/v1/scans/{latest['id']}/log?limit=100")
        line = log.body["items"][-1]
        assert line["event"] == "scan.relicensed", line
        assert line["message"].startswith("licenses evaluated again (policy changed): 3 changed")

        # A project override that forbids MIT fails only that project, again off the path.
        override = await put_policy(s, {"forbidden": ["MIT"]}, project=slug)
        assert override.status == 200
        await relicensed(s, 3)
        assert (await categories(s, slug))["django"] == "forbidden"
        assert (await categories(s, bystander["slug"]))["django"] == "allowed"
        # Removing it restores the org policy.
        assert (await s.call("DELETE", f"/api/v1/projects/{slug}/license-policy")).status == 204
        await relicensed(s, 4)
        assert (await categories(s, slug))["django"] == "allowed"


async def test_waivers_with_purl_scope_and_expiry(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        slug = project["slug"]
        assert (await put_policy(s, ORG_POLICY)).status == 200
        scan = await s.scan(slug, cyclonedx_json(PKGS))
        await settled(s)
        assert (await gate(s, slug))["forbidden_license_count"] == 2

        scoped = await grant_waiver(s, slug, "GPL-3.0-only", purl="pkg:pypi/readline")
        await relicensed(s, 1)
        assert (await categories(s, slug))["readline"] == "allowed"
        assert (await categories(s, slug))["gnureadline"] == "forbidden"
        listed = await s.call("GET", f"/api/v1/projects/{slug}/licenses")
        assert listed.status == 200 and listed.body["scan_id"] == scan["id"]
        gpl = [i for i in listed.body["items"] if i["license"] == "GPL-3.0-only"]
        assert [(i["category"], i["component_count"], i["waived"]) for i in gpl] == [
            ("forbidden", 1, False),
            ("allowed", 1, True),
        ]
        assert gpl[1]["waiver_ids"] == [scoped["id"]] and "waived by" in gpl[1]["reason"]
        assert listed.body["policy"]["source"] == "relicensed"
        assert listed.body["policy"]["waiver_ids"] == [scoped["id"]]

        # A waiver for every GPL-3.0-only component, ending in a moment.
        short = await grant_waiver(
            s, slug, "GPL-3.0-only", expires_in=dt.timedelta(seconds=2), reason="until the fix"
        )
        await relicensed(s, 2)
        passing = await gate(s, slug)
        assert passing["forbidden_license_count"] == 0 and passing["gate"] == "warn", passing

        async def expired() -> bool:
            found = await s.call(
                "GET", f"/api/v1/projects/{slug}/license-policy/waivers/{short['id']}"
            )
            return bool(found.body["status"] == "expired")

        await wait_until(expired, timeout=15)
        await relicensed(s, 3)
        ended = [e for e in await events(s.scanner, "license.waiver-expired")]
        assert [e.waiver_id for e in ended if isinstance(e, LicenseWaiverExpired)] == [short["id"]]
        assert (await categories(s, slug))["gnureadline"] == "forbidden"
        assert (await categories(s, slug))["readline"] == "allowed"  # its own waiver holds

        revoked = await s.call(
            "DELETE", f"/api/v1/projects/{slug}/license-policy/waivers/{scoped['id']}"
        )
        assert revoked.status == 204
        await relicensed(s, 4)
        final = await gate(s, slug)
        assert final["gate"] == "fail" and final["forbidden_license_count"] == 2
        causes = [e.cause for e in await events(s.scanner, "scan.relicensed")]
        assert causes == ["waiver_granted", "waiver_granted", "waiver_expired", "waiver_revoked"]


async def test_replay_rebuilds_identical_license_tables(
    start_service: StartService, settings: Settings
) -> None:
    async with scan_api(start_service) as s:
        first, second = await s.api.new_project(), await s.api.new_project()
        assert (await put_policy(s, ORG_POLICY)).status == 200
        await s.scan(first["slug"], cyclonedx_json(PKGS))
        await s.scan(second["slug"], cyclonedx_json(PKGS[:3]))
        waiver = await grant_waiver(s, first["slug"], "GPL-3.0-only", purl="pkg:pypi/readline")
        assert (await put_policy(s, {"forbidden": ["MIT"]}, project=second["slug"])).status == 200
        assert (await put_policy(s, {**ORG_POLICY, "allowed": ["MIT"]})).status == 200
        revoke = f"/api/v1/projects/{first['slug']}/license-policy/waivers/{waiver['id']}"
        assert (await s.call("DELETE", revoke)).status == 204
        third = await s.scan(first["slug"], cyclonedx_json(PKGS[1:]))
        assert (await s.call("DELETE", f"/api/v1/scans/{third['id']}")).status == 204
        await settled(s)
        await s.scanner.stop()

    tables = [t for t in (*SCANS_TABLES, *LICENSING_TABLES) if t not in ("jobs", "license_jobs")]
    before = await table_digest(settings.database_url, "scanner", tables)
    jobs_before = await _jobs(settings)
    assert len(jobs_before) == 5 and {status for _, status in jobs_before} == {"done"}
    output = await _replay(settings)
    assert "scanner.licensing: rebuilt from sequence 0" in output, output
    assert await table_digest(settings.database_url, "scanner", tables) == before
    assert await _jobs(settings) == jobs_before


async def _jobs(settings: Settings) -> list[tuple[str, str]]:
    import asyncpg

    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch("SELECT id, status FROM scanner.license_jobs ORDER BY id")
        return [(row["id"], row["status"]) for row in rows]
    finally:
        await conn.close()


async def test_a_scan_that_raced_a_policy_change_is_evaluated_again(
    start_service: StartService,
) -> None:
    # The worker pauses after each stage: the policy changes after the scan classified.
    async with scan_api(start_service, scan_stage_pause_seconds=0.5) as s:
        project = await s.api.new_project()
        slug = project["slug"]
        upload = await s.upload_sbom(slug, cyclonedx_json(PKGS))
        scan_id = upload.body["scan_id"]

        async def parsed() -> bool:
            log = await s.call("GET", f"/api/v1/scans/{scan_id}/log")
            return any(line["stage"] == "parse" for line in log.body["items"])

        await wait_until(parsed, timeout=15)
        assert (await put_policy(s, ORG_POLICY)).status == 200
        scan = await s.finished(scan_id)
        assert scan["summary"]["forbidden_license_count"] == 0  # classified before the change
        await relicensed(s, 1)
        (event,) = await events(s.scanner, "scan.relicensed")
        assert isinstance(event, ScanRelicensed) and event.scan_id == scan_id
        assert (event.cause, event.forbidden_license_count) == ("scan_raced_change", 2)
        assert (await gate(s, slug))["forbidden_license_count"] == 2
