"""Findings: matching against imported advisories (alias groups, severity, EPSS, not
evaluated), the scan.completed summary, finding events, triage carried forward, findings
resolved by the next snapshot, re-matching after a vulnerability-database import, and the
real python-legacy-app SBOM against the real PyPI advisories."""

from __future__ import annotations

import asyncio
from typing import Any

from contracts.envelope import decode_event
from contracts.events.scans import FindingTriaged
from shared.service import Runtime
from tests.bench.synthetic_osv import folder_bundle
from tests.conftest import StartService, shared_data, wait_until
from tests.integration.test_scan_support import (
    Pkg,
    ScanApi,
    cyclonedx_json,
    fetch,
    scan_api,
    subject_counts,
)
from tests.integration.test_vulndb_support import CSV, CVSS_CRITICAL, T1, ZIP, osv, zip_of

PKGS = (
    Pkg("django", "2.2.0", deps=("pypi-sqlparse-0.2.4",)),
    Pkg("sqlparse", "0.2.4", license="BSD-3-Clause"),
    Pkg("pytest", "7.0.0", scope="optional"),
    Pkg("requests", "2.19.1"),
)


def advisories() -> dict[str, Any]:
    """django: one weakness in two databases (GHSA + PYSEC, one CVE); sqlparse: a MODERATE
    one; pytest: a GIT range (cannot be evaluated)."""
    git_range = osv(
        "GHSA-pt01",
        name="pytest",
        range_type="GIT",
        events=[{"introduced": "0"}, {"fixed": "a" * 40}],
    )
    git_range["affected"][0]["ranges"][0]["repo"] = "https://github.com/pytest-dev/pytest"
    return {
        "GHSA-dj01.json": osv(
            "GHSA-dj01",
            name="Django",
            aliases=("CVE-2020-0001",),
            events=[{"introduced": "0"}, {"fixed": "2.2.10"}],
            severity=[{"type": "CVSS_V3", "score": CVSS_CRITICAL}],
        ),
        "PYSEC-2020-1.json": osv(
            "PYSEC-2020-1",
            name="django",
            aliases=("CVE-2020-0001", "GHSA-dj01"),
            events=[{"introduced": "2.0"}, {"fixed": "2.2.10"}],
        ),
        "GHSA-sq01.json": osv(
            "GHSA-sq01",
            name="sqlparse",
            aliases=("CVE-2021-0002",),
            events=[{"introduced": "0"}, {"fixed": "0.4.2"}],
            database_specific={"severity": "MODERATE"},
        ),
        "GHSA-pt01.json": git_range,
    }


EPSS = (
    "#model_version:v2023.03.01,score_date:2024-05-02T00:00:00+0000\n"
    "cve,epss,percentile\n"
    "CVE-2020-0001,0.50000,0.97000\n"
    "CVE-2021-0002,0.01000,0.40000\n"
)


async def _import(s: ScanApi, files: dict[str, Any]) -> dict[str, Any]:
    reply = await s.call("POST", "/api/v1/vulndb/import", data=zip_of(files), headers=ZIP)
    assert reply.status == 200, reply.body
    return dict(reply.body)


async def _events(runtime: Runtime, subject: str) -> list[Any]:
    """Every event of ``subject`` on the stream, decoded, oldest first."""
    js = runtime.bus.js
    sub = await js.subscribe(subject, ordered_consumer=True, stream=runtime.bus.stream)
    total = (await subject_counts(runtime, subject)).get(subject, 0)
    found = []
    try:
        while len(found) < total:
            msg = await sub.next_msg(timeout=5)
            found.append(decode_event(msg.data, sequence=int(msg.metadata.sequence.stream)))
    finally:
        await sub.unsubscribe()
    return [event.payload for event in found]


async def _vulns(s: ScanApi, slug: str, query: str = "") -> list[dict[str, Any]]:
    reply = await s.call("GET", f"/api/v1/projects/{slug}/vulnerabilities?{query}")
    assert reply.status == 200, reply.body
    return list(reply.body["items"])


async def test_findings_severity_epss_and_summary(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        imported = await _import(s, advisories())
        assert imported["counts"]["added"] == 4, imported
        epss = await s.call("POST", "/api/v1/vulndb/epss", data=EPSS.encode(), headers=CSV)
        assert epss.status == 200, epss.body
        project = await s.api.new_project()
        slug = project["slug"]
        scan = await s.scan(slug, cyclonedx_json(PKGS), query="repo=acme/web&commit=abc1234")
        assert scan["status"] == "succeeded", scan
        summary = scan["summary"]
        assert summary["finding_count"] == 2
        assert summary["severity_counts"] == {
            "CRITICAL": 1,
            "HIGH": 0,
            "MEDIUM": 1,
            "LOW": 0,
            "UNKNOWN": 0,
        }
        assert summary["highest_epss"] == 0.5 and summary["epss_threshold"] == 0.1
        assert summary["epss_over_threshold_count"] == 1
        assert summary["not_evaluated_count"] == 1
        assert summary["blocking_finding_total"] == 1

        items = await _vulns(s, slug)
        by_package = {f["package"]: f for f in items}
        django = by_package["PyPI:django"]
        assert django["vulnerability_id"] == "CVE-2020-0001"
        assert django["advisory_ids"] == ["GHSA-dj01", "PYSEC-2020-1"]
        assert set(django["aliases"]) == {"GHSA-dj01", "PYSEC-2020-1"}
        assert (django["severity"], django["cvss_score"]) == ("CRITICAL", 9.8)
        assert (django["epss"], django["epss_percentile"]) == (0.5, 0.97)
        assert django["state"] == "new" and django["effective"] is True
        assert django["direct"] is True and django["component_version"] == "2.2.0"
        assert summary["blocking_finding_ids"] == [django["id"]]
        sqlparse = by_package["PyPI:sqlparse"]
        assert (sqlparse["severity"], sqlparse["cvss_score"]) == ("MEDIUM", None)
        assert sqlparse["direct"] is False
        pytest_ = by_package["PyPI:pytest"]
        assert pytest_["match"] == "not_evaluated" and pytest_["effective"] is False
        assert "GIT" in pytest_["match_reason"]
        assert "PyPI:requests" not in by_package
        assert [f["package"] for f in items] == ["PyPI:django", "PyPI:sqlparse", "PyPI:pytest"]

        assert [f["package"] for f in await _vulns(s, slug, "severity=CRITICAL")] == ["PyPI:django"]
        assert [f["package"] for f in await _vulns(s, slug, "min_epss=0.05")] == ["PyPI:django"]
        by_epss = await _vulns(s, slug, "sort=epss&order=asc")
        assert [f["package"] for f in by_epss] == ["PyPI:pytest", "PyPI:sqlparse", "PyPI:django"]
        assert len(await _vulns(s, slug, "status=new")) == 3
        assert await _vulns(s, slug, "status=fixed") == []
        by_component = await _vulns(s, slug, "sort=component&limit=1")
        assert [f["component_name"] for f in by_component] == ["django"]

        comps = await s.call("GET", f"/api/v1/projects/{slug}/components?severity=CRITICAL")
        assert [c["name"] for c in comps.body["items"]] == ["django"]
        assert comps.body["items"][0]["highest_severity"] == "CRITICAL"
        assert comps.body["items"][0]["finding_count"] == 1
        ranked = await s.call("GET", f"/api/v1/projects/{slug}/components?sort=severity")
        assert [c["name"] for c in ranked.body["items"]][:2] == ["django", "sqlparse"]

        one = await s.call("GET", f"/api/v1/findings/{django['id']}")
        assert one.status == 200 and one.body == django and one.headers["ETag"] == '"v1"'
        cached = await s.call(
            "GET", f"/api/v1/findings/{django['id']}", headers={"If-None-Match": '"v1"'}
        )
        assert cached.status == 304
        missing = await s.call("GET", "/api/v1/findings/nope")
        assert (missing.status, missing.code) == (404, "finding_not_found")

        created = await _events(s.scanner, "finding.created")
        assert sorted(e.package for e in created) == ["PyPI:django", "PyPI:sqlparse"]
        assert {e.cause for e in created} == {"scan"}
        exceeded = await _events(s.scanner, "finding.threshold-exceeded")
        assert [(e.finding_id, e.epss, e.threshold) for e in exceeded] == [(django["id"], 0.5, 0.1)]
        completed = await _events(s.scanner, "scan.completed")
        assert completed[0].repo == "acme/web" and completed[0].commit == "abc1234"
        assert completed[0].vulndb_advisories == 4
        assert str(completed[0].epss_as_of) == "2024-05-02"


async def _triage(
    s: ScanApi, finding: dict[str, Any], to_state: str, *, version: int, detail: str = ""
) -> None:
    """What the triage endpoint publishes (the VEX part owns it): a finding.triaged event."""
    _, seq = await s.scanner.bus.publish(
        FindingTriaged(
            finding_id=finding["id"],
            project_id=finding["project_id"],
            scan_id=finding["scan_id"],
            package=finding["package"],
            vulnerability_id=finding["vulnerability_id"],
            from_state=finding["state"],
            to_state=to_state,  # type: ignore[arg-type]
            justification="code_not_reachable" if to_state == "not_affected" else None,
            detail=detail,
            version=version,
        ),
        aggregate=f"finding:{finding['id']}",
        actor="test",
    )
    await s.scanner.runners["scans"].wait_for(seq, timeout=10)


async def test_triage_carries_forward_and_the_next_snapshot_resolves(
    start_service: StartService,
) -> None:
    async with scan_api(start_service) as s:
        await _import(s, advisories())
        project = await s.api.new_project()
        slug = project["slug"]
        first = await s.scan(slug, cyclonedx_json(PKGS))
        found = {f["package"]: f for f in await _vulns(s, slug)}
        await _triage(s, found["PyPI:django"], "not_affected", version=2, detail="admin only")
        triaged = await s.call("GET", f"/api/v1/findings/{found['PyPI:django']['id']}")
        assert triaged.body["state"] == "not_affected" and triaged.headers["ETag"] == '"v2"'
        assert triaged.body["justification"] == "code_not_reachable"
        assert triaged.body["effective"] is False

        second = await s.scan(slug, cyclonedx_json(PKGS))
        assert second["summary"]["finding_count"] == 1  # django is triaged away
        assert second["summary"]["blocking_finding_ids"] == []
        again = {f["package"]: f for f in await _vulns(s, slug)}
        inherited = again["PyPI:django"]
        assert inherited["id"] != found["PyPI:django"]["id"]
        assert (inherited["state"], inherited["detail"]) == ("not_affected", "admin only")
        assert inherited["version"] == 1
        assert inherited["discovered_at"] == found["PyPI:django"]["discovered_at"]
        # Nothing new relative to the first snapshot: no finding.created from the second.
        created = await _events(s.scanner, "finding.created")
        assert {e.scan_id for e in created} == {first["id"]}

        # django upgraded past the fix: the second snapshot's django finding is resolved.
        upgraded = [Pkg("django", "3.0.0", deps=("pypi-sqlparse-0.2.4",)), *PKGS[1:]]
        third = await s.scan(slug, cyclonedx_json(upgraded))
        resolved = await _events(s.scanner, "finding.resolved")
        assert [(e.finding_id, e.reason, e.resolved_by_scan_id) for e in resolved] == [
            (inherited["id"], "not_in_new_snapshot", third["id"])
        ]
        old = await s.call(
            "GET",
            f"/api/v1/projects/{slug}/vulnerabilities?scan_id={second['id']}"
            "&include_resolved=true&severity=CRITICAL",
        )
        assert old.body["items"][0]["resolved_reason"] == "not_in_new_snapshot"
        assert [f["package"] for f in await _vulns(s, slug)] == ["PyPI:sqlparse", "PyPI:pytest"]


async def test_a_vulndb_import_rematches_latest_snapshots(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        await _import(s, advisories())
        web, other = await s.api.new_project(), await s.api.new_project()
        old = await s.scan(web["slug"], cyclonedx_json(PKGS))
        latest = await s.scan(web["slug"], cyclonedx_json(PKGS))
        await s.scan(other["slug"], cyclonedx_json([Pkg("flask", "1.0")]))
        before = {f["package"]: f for f in await _vulns(s, web["slug"])}

        # A new advisory for requests; django's weakness withdrawn from both databases.
        await _import(
            s,
            {
                "GHSA-rq01.json": osv(
                    "GHSA-rq01",
                    name="requests",
                    aliases=("CVE-2023-0003",),
                    events=[{"introduced": "0"}, {"fixed": "2.20.0"}],
                    database_specific={"severity": "HIGH"},
                ),
                "GHSA-dj01.json": osv("GHSA-dj01", name="Django", modified=T1, withdrawn=T1),
                "PYSEC-2020-1.json": osv("PYSEC-2020-1", name="django", modified=T1, withdrawn=T1),
            },
        )

        async def rematched() -> bool:
            return (await subject_counts(s.scanner, "scan.rematched")).get("scan.rematched") == 1

        await wait_until(rematched, timeout=20)
        done = await _events(s.scanner, "scan.rematched")
        assert [(e.scan_id, e.created, e.resolved) for e in done] == [(latest["id"], 1, 1)]
        created = [e for e in await _events(s.scanner, "finding.created") if e.cause == "rematch"]
        assert [(e.scan_id, e.package, e.vulnerability_id, e.severity) for e in created] == [
            (latest["id"], "PyPI:requests", "CVE-2023-0003", "HIGH")
        ]
        resolved = await _events(s.scanner, "finding.resolved")
        assert [(e.finding_id, e.reason) for e in resolved] == [
            (before["PyPI:django"]["id"], "advisory_withdrawn")
        ]
        # The re-match is long work off the request path: scan.rematched is on the stream
        # before the findings read model has applied the events that came with it (this
        # read raced it and failed once in CI); wait for the read model, not the stream.
        now: dict[str, dict[str, Any]] = {}

        async def applied() -> bool:
            now.clear()
            now.update({f["package"]: f for f in await _vulns(s, web["slug"])})
            return set(now) == {"PyPI:requests", "PyPI:sqlparse", "PyPI:pytest"}

        await wait_until(applied, timeout=20)
        assert now["PyPI:requests"]["scan_id"] == latest["id"]
        gone = await _vulns(s, web["slug"], "include_resolved=true&severity=CRITICAL")
        assert gone[0]["resolved_reason"] == "advisory_withdrawn"
        # The older snapshot and the project without those packages were left alone.
        pinned = await _vulns(s, web["slug"], f"scan_id={old['id']}")
        assert {f["package"] for f in pinned} == {"PyPI:django", "PyPI:sqlparse", "PyPI:pytest"}
        jobs = await fetch(
            s.scanner, "SELECT kind, status FROM scanner.jobs WHERE kind = 'rematch'"
        )
        assert [(r["kind"], r["status"]) for r in jobs] == [("rematch", "done")]


async def test_the_python_legacy_app_against_the_real_pypi_advisories(
    start_service: StartService,
) -> None:
    sbom = shared_data("sbom", "cyclonedx", "python-legacy-app.cdx-1.5.json").read_bytes()
    pypi = shared_data("osv", "PyPI")
    async with scan_api(start_service) as s:
        data = await asyncio.to_thread(folder_bundle, pypi)
        reply = await s.call("POST", "/api/v1/vulndb/import", data=data, headers=ZIP)
        assert reply.status == 200, reply.body
        project = await s.api.new_project()
        scan = await s.scan(project["slug"], sbom)
        assert scan["status"] == "succeeded", scan
        assert scan["summary"]["component_count"] == 12
        items = await _vulns(s, project["slug"], "limit=500")
        packages = {f["package"] for f in items}
        assert {"PyPI:django", "PyPI:requests", "PyPI:urllib3"} <= packages, packages
        assert scan["summary"]["finding_count"] == len(items)
        django = [f for f in items if f["package"] == "PyPI:django"]
        assert len(django) > 10  # 2.2.0 is years behind
        assert all(f["component_version"] == "2.2.0" for f in django)
        # One finding per weakness: no CVE appears twice for one component.
        assert len({f["vulnerability_id"] for f in django}) == len(django)
        # The PyPA database rarely rates severity: most findings are UNKNOWN, and counted.
        assert sum(scan["summary"]["severity_counts"].values()) == len(items)
        assert all(f["advisory_ids"] and f["state"] == "new" for f in items)


async def test_absurd_versions_are_not_evaluated_never_missed(start_service: StartService) -> None:
    """A version its ecosystem cannot order is "not evaluated" with the reason, never a
    silent miss. (PyPI has no such version: like OSV.dev, a non-PEP 440 version takes its
    place in setuptools' legacy order.)"""
    async with scan_api(start_service) as s:
        await _import(
            s,
            {
                "GHSA-lp01.json": osv(
                    "GHSA-lp01",
                    ecosystem="npm",
                    name="left-pad",
                    range_type="SEMVER",
                    events=[{"introduced": "0"}, {"fixed": "1.3.1"}],
                )
            },
        )
        project = await s.api.new_project()
        weird = [Pkg("left-pad", "banana", purl_type="npm"), Pkg("left-pad", "1.3.0", "npm")]
        scan = await s.scan(project["slug"], cyclonedx_json(weird))
        assert scan["status"] == "succeeded", scan
        items = {f["component_version"]: f for f in await _vulns(s, project["slug"])}
        assert (items["banana"]["match"], items["banana"]["effective"]) == (
            "not_evaluated",
            False,
        )
        assert "banana" in items["banana"]["match_reason"], items["banana"]["match_reason"]
        assert items["1.3.0"]["match"] == "affected"
        summary = scan["summary"]
        assert (summary["not_evaluated_count"], summary["finding_count"]) == (1, 1)
