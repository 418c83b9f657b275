"""``GET /api/v1/detection/findings`` through the gateway over HTTP: findings of every
project's latest snapshot (never an older one), each filter (project by id, slug, repeated
or comma list; git repo and registry repository; severity list and minimum; VEX state; EPSS;
package name and purl prefix), the stable order and its pages, a project-scoped key, the
422s; and the plan: one index range of findings_detection per snapshot, on a table whose
statistics know nothing of the rows (issue 13's stale-statistics lesson)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from contracts.rpc.scanner_scans import DetectionFindingsRequest
from services.scanner.scans.queries import detection_statement, latest_snapshot_ids
from tests.conftest import StartService
from tests.integration.registry_meta_support import registry
from tests.integration.test_scan_support import Pkg, ScanApi, cyclonedx_json, fetch
from tests.integration.test_vulndb_support import CSV, CVSS_CRITICAL, ZIP, osv, zip_of

ADVISORIES = {
    "GHSA-dj01.json": osv(
        "GHSA-dj01",
        name="django",
        aliases=("CVE-2020-0001",),
        events=[{"introduced": "0"}, {"fixed": "2.2.10"}],
        severity=[{"type": "CVSS_V3", "score": CVSS_CRITICAL}],
    ),
    "GHSA-sq01.json": osv(
        "GHSA-sq01",
        name="sqlparse",
        aliases=("CVE-2021-0002",),
        events=[{"introduced": "0"}, {"fixed": "0.4.2"}],
        database_specific={"severity": "MODERATE"},
    ),
    "GHSA-rq01.json": osv(
        "GHSA-rq01",
        name="requests",
        aliases=("CVE-2022-0003",),
        events=[{"introduced": "0"}, {"fixed": "2.20.0"}],
        database_specific={"severity": "HIGH"},
    ),
}
EPSS = (
    "#model_version:v2023.03.01,score_date:2024-05-02T00:00:00+0000\n"
    "cve,epss,percentile\n"
    "CVE-2020-0001,0.50000,0.97000\n"
    "CVE-2021-0002,0.01000,0.40000\n"
)
RANK = {"CRITICAL": 4, "HIGH": 3, "MEDIUM": 2, "LOW": 1, "UNKNOWN": 0}


def _order(items: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(RANK[f["severity"]], f["id"]) for f in items]


async def test_findings_across_projects(start_service: StartService) -> None:
    async with registry(start_service) as r:
        s = ScanApi(api=r.api, scanner=r.scanner)
        for path, data, headers in (
            ("/api/v1/vulndb/import", zip_of(ADVISORIES), ZIP),
            ("/api/v1/vulndb/epss", EPSS.encode(), CSV),
        ):
            reply = await s.call("POST", path, data=data, headers=headers)
            assert reply.status == 200, reply.body
        shop = await r.api.new_project("shop", repos=["acme/shop"])
        blog = await r.api.new_project("blog")
        await r.api.new_project("empty")
        # An older snapshot of shop: its findings are history, not "the findings".
        await s.scan("shop", cyclonedx_json([Pkg("requests", "2.19.1")]))
        latest = await s.scan(
            "shop",
            cyclonedx_json([Pkg("django", "2.2.0"), Pkg("sqlparse", "0.2.4")]),
            query="repo=acme/shop&commit=" + "a" * 40,
        )
        await s.scan("blog", cyclonedx_json([Pkg("django", "2.2.0"), Pkg("requests", "2.19.1")]))
        blog_files = await r.new_repo("blog", "files", format="generic")

        async def get(query: str = "", **kwargs: Any) -> Any:
            reply = await s.call("GET", f"/api/v1/detection/findings?{query}", **kwargs)
            assert reply.status == 200, (query, reply.body)
            return reply.body

        async def packages(query: str = "", **kwargs: Any) -> list[tuple[str, str]]:
            body = await get(query + "&limit=500", **kwargs)
            return sorted((f["package"], f["project_id"]) for f in body["items"])

        everything = await get("limit=500")
        assert everything["snapshots"] == 2 and everything["next_cursor"] is None
        found = sorted((f["package"], f["project_id"]) for f in everything["items"])
        assert found == sorted(
            [
                ("PyPI:django", shop["id"]),
                ("PyPI:sqlparse", shop["id"]),
                ("PyPI:django", blog["id"]),
                ("PyPI:requests", blog["id"]),
            ]
        ), "the latest snapshot of each project, never shop's older one"
        assert {f["scan_id"] for f in everything["items"] if f["project_id"] == shop["id"]} == {
            latest["id"]
        }
        order = _order(everything["items"])
        assert order == sorted(order, reverse=True), "most severe first, then id descending"

        # ---- pages of one are the one page, in order -----------------------------------
        paged, cursor = [], ""
        while True:
            body = await get(f"limit=1{cursor}")
            paged += body["items"]
            if body["next_cursor"] is None:
                break
            cursor = "&cursor=" + quote(body["next_cursor"])
        assert paged == everything["items"]

        # ---- projects --------------------------------------------------------------------
        shop_only = [(p, shop["id"]) for p in ("PyPI:django", "PyPI:sqlparse")]
        assert await packages("project=shop") == shop_only
        assert await packages(f"project={shop['id']}") == shop_only
        assert await packages("project=shop,blog") == found
        assert await packages("project=shop&project=blog") == found
        assert await packages("project=empty") == []

        # ---- severity, state, EPSS, package ----------------------------------------------
        assert {f["severity"] for f in (await get("min_severity=HIGH"))["items"]} == {
            "CRITICAL",
            "HIGH",
        }
        assert {f["severity"] for f in (await get("severity=MEDIUM,HIGH"))["items"]} == {
            "MEDIUM",
            "HIGH",
        }
        assert [p for p, _ in await packages("epss_min=0.1")] == ["PyPI:django"] * 2
        assert [p for p, _ in await packages("package=Django")] == ["PyPI:django"] * 2
        assert await packages("package=pkg:pypi/sqlparse") == [("PyPI:sqlparse", shop["id"])]
        assert len(await packages("package=pkg:pypi/")) == 4
        assert await packages("package=pkg:npm/") == []
        sqlparse = (await get("package=sqlparse"))["items"][0]
        triaged = await s.call(
            "PATCH",
            f"/api/v1/findings/{sqlparse['id']}",
            json={"state": "not_affected", "justification": "code_not_reachable", "detail": "d"},
            headers={"If-Match": "*"},
        )
        assert triaged.status == 200, triaged.body
        assert await packages("state=not_affected") == [("PyPI:sqlparse", shop["id"])]
        assert len(await packages("state=new,exploitable")) == 3

        # ---- repositories ----------------------------------------------------------------
        assert await packages("repo=acme/shop") == shop_only
        assert await packages("repo=ACME/Shop") == shop_only
        assert await packages("repo=acme/other") == []
        blog_only = [(p, blog["id"]) for p in ("PyPI:django", "PyPI:requests")]
        assert await packages(f"repo={blog_files['id']}") == blog_only
        assert await packages(f"repo={blog_files['id']}&project=shop") == []

        # ---- a project-scoped key --------------------------------------------------------
        _, token = await r.api.new_key("VIEWER", project="blog")
        assert await packages("", token=token) == blog_only
        assert await packages("project=blog", token=token) == blog_only

        # ---- refusals --------------------------------------------------------------------
        for query, code, kwargs in (
            ("project=nope", "unknown_project", {}),
            ("project=shop", "unknown_project", {"token": token}),
            ("repo=repo_" + "0" * 32, "unknown_repository", {}),
            ("repo=bad repo", "invalid_repo", {}),
            ("severity=SEVERE", None, {}),
            ("min_severity=SEVERE", None, {}),
            ("state=ignored", None, {}),
            ("epss_min=1.5", None, {}),
            ("cursor=bm9wZQ", "invalid_cursor", {}),
            ("limit=501", None, {}),
        ):
            refused = await s.call("GET", f"/api/v1/detection/findings?{query}", **kwargs)
            assert refused.status == 422, (query, refused.body)
            assert code is None or refused.code == code, (query, refused.body)
        shop_files = await r.new_repo("shop", "files", format="generic")
        refused = await s.call(
            "GET", f"/api/v1/detection/findings?repo={shop_files['id']}", token=token
        )
        assert (refused.status, refused.code) == (422, "unknown_repository")

        # ---- the plan, on rows the statistics have never seen ----------------------------
        await fetch(
            r.scanner,
            "INSERT INTO scanner.findings (id, scan_id, project_id, component_ref, "
            "component_name, ecosystem, package, vulnerability_id, advisory_ids, aliases, "
            "match, severity, severity_rank, state, cause, discovered_at) "
            "SELECT 'seed-' || i, $1, $2, 'ref-' || i, 'pkg-' || i, 'PyPI', 'PyPI:pkg-' || i, "
            "'GHSA-x' || i, '{}', '{}', 'affected', 'LOW', 1, 'new', 'scan', now() "
            "FROM generate_series(1, 5000) i",
            latest["id"],
            shop["id"],
        )
        async with r.scanner.pool.acquire() as conn:
            scan_ids = await latest_snapshot_ids(conn, project_ids=None, repo=None)
            for request, after in (
                (DetectionFindingsRequest(limit=50), None),
                (DetectionFindingsRequest(min_severity="LOW", limit=50), (1, "seed-5")),
            ):
                sql, args = detection_statement(scan_ids, request, after=after)
                plan = "\n".join(row[0] for row in await conn.fetch("EXPLAIN " + sql, *args))
                assert "findings_detection" in plan, plan
                assert "Seq Scan on findings" not in plan, plan
        assert len((await get("limit=500"))["items"]) == 500
