"""The release gate fails closed on missing knowledge, through the real scanner, release
decision and gateway: an SBOM matched against an empty vulnerability database is NO_SHIP
``vulndb_missing`` (and health says so) until an import re-matches it; a database older
than the policy's ``max_vulndb_age_hours`` is ``vulndb_stale``; a finding of UNKNOWN
severity blocks unless ``block_on_unknown_severity`` is off; an advisory without CVSS takes
the severity of its CVE alias, also when the alias is imported later."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.conftest import StartService, wait_until
from tests.integration.test_release_decision_support import (
    CLEAN,
    Gate,
    advisories,
    sha,
)
from tests.integration.test_scan_support import Pkg, scan_api
from tests.integration.test_vulndb_support import CVSS_CRITICAL, ZIP, osv, zip_of


@asynccontextmanager
async def empty_gate(start_service: StartService) -> AsyncIterator[Gate]:
    """The gate's services with nothing imported into the vulnerability database."""
    decisions = await start_service("release-decision")
    async with scan_api(start_service) as s:
        yield Gate(s=s, decisions=decisions)


async def import_osv(g: Gate, files: dict[str, Any]) -> dict[str, Any]:
    reply = await g.call("POST", "/api/v1/vulndb/import", data=zip_of(files), headers=ZIP)
    assert reply.status == 200, reply.body
    return reply.body


async def put_policy(g: Gate, **body: Any) -> dict[str, Any]:
    reply = await g.call("PUT", "/api/v1/releases/policy", json=body)
    assert reply.status == 200, reply.body
    return reply.body


def codes(view: dict[str, Any]) -> list[str]:
    return [b["code"] for b in view["blockers"]]


async def test_an_empty_database_is_no_ship_until_an_import(start_service: StartService) -> None:
    async with empty_gate(start_service) as g:
        project = await g.project("acme/web")
        commit = sha()
        health = await g.call("GET", "/api/v1/releases/health")
        assert health.status == 200, health.body
        assert health.body["vulndb"]["status"] == "missing" and health.body["ok"] is False

        scan = await g.scan(project["slug"], "acme/web", commit, CLEAN)
        assert scan["status"] == "succeeded", scan
        view = await g.decided("acme/web", commit, decision="NO_SHIP")
        assert [(b["code"], b["ref"]) for b in view["blockers"]] == [("vulndb_missing", scan["id"])]
        assert view["evidence"]["vulndb"] == {"source": "osv"}  # nothing matched, nothing known

        # The import re-matches the snapshot that was matched against nothing, although the
        # import names none of its packages' versions as affected.
        await import_osv(g, advisories())
        shipped = await g.decided("acme/web", commit, decision="SHIP")
        vulndb = shipped["evidence"]["vulndb"]
        assert vulndb["source"] == "osv" and vulndb["advisory_count"] == 2, vulndb
        assert vulndb["version"] > 0 and vulndb["matched_version"] >= vulndb["version"]
        assert vulndb["digest"].startswith("sha256:") and vulndb["imported_at"]
        health = await g.call("GET", "/api/v1/releases/health?repo=acme/web")
        assert health.body["vulndb"]["status"] == "fresh", health.body
        assert health.body["vulndb"]["max_age_hours"] == 72


async def test_a_stale_database_is_no_ship_per_policy(start_service: StartService) -> None:
    async with empty_gate(start_service) as g:
        await import_osv(g, advisories())
        project = await g.project("acme/web")
        commit = sha()
        await g.scan(project["slug"], "acme/web", commit, CLEAN)
        view = await g.decided("acme/web", commit, decision="SHIP")
        imported_at = dt.datetime.fromisoformat(view["evidence"]["vulndb"]["imported_at"])

        # The policy's limit is one second: once two have passed since the import, the
        # policy change (decided at its own time) finds the database stale.
        async def two_seconds_old() -> bool:
            return dt.datetime.now(dt.UTC) - imported_at > dt.timedelta(seconds=2)

        await wait_until(two_seconds_old, timeout=10)
        policy = await put_policy(g, max_vulndb_age_hours=1 / 3600)
        assert policy["effective"]["max_vulndb_age_hours"] == 1 / 3600
        stale = await g.decided("acme/web", commit, decision="NO_SHIP")
        assert codes(stale) == ["vulndb_stale"], stale
        assert "is older than 0.000277778 hours" in stale["blockers"][0]["message"]
        health = await g.call("GET", "/api/v1/releases/health")
        assert health.body["vulndb"]["status"] == "stale" and health.body["ok"] is False

        # 0 turns the check off; a fresh import would do as well.
        await put_policy(g, max_vulndb_age_hours=0)
        await g.decided("acme/web", commit, decision="SHIP")


async def test_unknown_severity_blocks_and_aliases_rate_it(start_service: StartService) -> None:
    async with empty_gate(start_service) as g:
        # A PyPA-style advisory without any CVSS: its finding is UNKNOWN.
        await import_osv(
            g,
            {
                "PYSEC-2099-1.json": osv(
                    "PYSEC-2099-1",
                    name="flask",
                    aliases=("CVE-2099-0001",),
                    events=[{"introduced": "0"}, {"fixed": "2.0.3"}],
                )
            },
        )
        project = await g.project("acme/web")
        commit = sha()
        await g.scan(project["slug"], "acme/web", commit, (Pkg("flask", "2.0.0"),))
        view = await g.decided("acme/web", commit, decision="NO_SHIP")
        assert codes(view) == ["vulnerability"], view
        assert "(UNKNOWN)" in view["blockers"][0]["message"]

        await put_policy(g, block_on_unknown_severity=False)
        await g.decided("acme/web", commit, decision="SHIP")

        # The CVE record arrives later, naming no package of the SBOM but carrying CVSS: the
        # re-match rates the open finding CRITICAL, which blocks whatever UNKNOWN does.
        summary = await import_osv(
            g,
            {
                "CVE-2099-0001.json": osv(
                    "CVE-2099-0001",
                    affected=[],
                    severity=[{"type": "CVSS_V3", "score": CVSS_CRITICAL}],
                )
            },
        )
        assert summary["counts"]["added"] == 1, summary
        rated = await g.decided("acme/web", commit, decision="NO_SHIP")
        assert codes(rated) == ["vulnerability"], rated
        assert "(CRITICAL)" in rated["blockers"][0]["message"]
        finding = await g.call("GET", f"/api/v1/findings/{rated['blockers'][0]['ref']}")
        assert finding.body["severity"] == "CRITICAL", finding.body

        # A new scan of the same SBOM is rated from the alias at once.
        again = sha()
        await g.scan(project["slug"], "acme/web", again, (Pkg("flask", "2.0.0"),))
        fresh = await g.decided("acme/web", again, decision="NO_SHIP")
        assert "(CRITICAL)" in fresh["blockers"][0]["message"], fresh
