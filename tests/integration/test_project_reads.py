"""Project reports over HTTP: licenses, the policy gate, snapshot diffs, SBOM exports (valid
against the official schemas) and notices, each with its snapshot pin and bad parameters."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import StartService
from tests.integration.test_license_support import gate, put_policy
from tests.integration.test_scan_support import Pkg, ScanApi, cyclonedx_json, scan_api
from tests.integration.test_vulndb_support import CSV, CVSS_CRITICAL, ZIP, osv, zip_of
from tests.unit.test_scanner_export import assert_valid_spdx, cyclonedx_validators

PKGS = (
    Pkg("django", "2.2.0", deps=("pypi-sqlparse-0.2.4",)),
    Pkg("sqlparse", "0.2.4", license="BSD-3-Clause"),
    Pkg("pytest", "7.0.0", scope="optional", license=None),
)
NEXT = (
    Pkg("django", "3.2.0", deps=("pypi-sqlparse-0.2.4",)),
    Pkg("sqlparse", "0.2.4", license="BSD-3-Clause"),
    Pkg("requests", "2.19.1", license="Apache-2.0"),
)
EPSS = (
    "#model_version:v2023.03.01,score_date:2024-05-02T00:00:00+0000\n"
    "cve,epss,percentile\n"
    "CVE-2021-0002,0.50000,0.97000\n"
)


def advisories() -> dict[str, Any]:
    """django: CRITICAL until 2.2.10; sqlparse: HIGH (EPSS 0.5 once imported); requests:
    MODERATE; pytest: a GIT range (not evaluated)."""
    git_range = osv("GHSA-pt01", name="pytest", range_type="GIT", events=[{"introduced": "0"}])
    git_range["affected"][0]["ranges"][0]["repo"] = "https://github.com/pytest-dev/pytest"
    return {
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
            database_specific={"severity": "HIGH"},
        ),
        "GHSA-rq01.json": osv(
            "GHSA-rq01",
            name="requests",
            aliases=("CVE-2023-0003",),
            events=[{"introduced": "0"}, {"fixed": "2.20.0"}],
            database_specific={"severity": "MODERATE"},
        ),
        "GHSA-pt01.json": git_range,
    }


async def _setup(s: ScanApi, *, epss: bool = False) -> None:
    reply = await s.call("POST", "/api/v1/vulndb/import", data=zip_of(advisories()), headers=ZIP)
    assert reply.status == 200, reply.body
    if epss:
        reply = await s.call("POST", "/api/v1/vulndb/epss", data=EPSS.encode(), headers=CSV)
        assert reply.status == 200, reply.body


async def _bad_pins(s: ScanApi, path: str, other_scan: str, failed_scan: str) -> None:
    """Every project read refuses a scan it cannot read."""
    unknown = await s.call("GET", f"{path}scan_id=nope")
    assert (unknown.status, unknown.code) == (404, "scan_not_found"), (path, unknown.body)
    assert unknown.body["errors"][0]["field"] == "$.scan_id"
    elsewhere = await s.call("GET", f"{path}scan_id={other_scan}")
    assert (elsewhere.status, elsewhere.code) == (404, "scan_not_found"), path
    failed = await s.call("GET", f"{path}scan_id={failed_scan}")
    assert (failed.status, failed.code) == (409, "scan_not_succeeded"), path
    long = await s.call("GET", f"{path}scan_id={'x' * 65}")
    assert long.status == 422 and long.body["errors"][0]["field"] == "$.scan_id", path


async def test_policy_gate_counts_reasons_and_pins(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        await _setup(s, epss=True)
        project, other, empty = (
            await s.api.new_project(),
            await s.api.new_project(),
            await s.api.new_project(),
        )
        slug = project["slug"]
        scan = await s.scan(slug, cyclonedx_json(PKGS))
        other_scan = await s.scan(other["slug"], cyclonedx_json(PKGS))
        failed = await s.scan(slug, b'{"bomFormat": "CycloneDX", "specVersion": "1.5"')
        assert failed["status"] == "failed"

        verdict = await gate(s, slug)
        assert verdict["gate"] == "fail" and verdict["scan_id"] == scan["id"]
        assert (verdict["critical_cve_count"], verdict["high_cve_count"]) == (1, 1)
        assert (verdict["epss_gate_count"], verdict["epss_threshold"]) == (1, 0.1)
        assert verdict["not_evaluated_count"] == 1 and verdict["forbidden_license_count"] == 0
        assert verdict["unknown_license_count"] == 3  # no policy: every license is unknown
        assert len(verdict["blocking_finding_ids"]) == 2
        assert verdict["reasons"][0] == "1 effective CRITICAL vulnerability: CVE-2020-0001"
        assert "1 effective vulnerability with EPSS >= 0.1: CVE-2021-0002" in verdict["reasons"]
        assert verdict["reason"] == "; ".join(verdict["reasons"])
        assert verdict["evaluated_at"] and verdict["licenses_evaluated_at"]

        # Triage takes findings out; a policy settles the licenses: what is left warns.
        found = await s.call("GET", f"/api/v1/projects/{slug}/vulnerabilities")
        for finding in found.body["items"]:
            triaged = await s.call(
                "PATCH",
                f"/api/v1/findings/{finding['id']}",
                json={"state": "not_affected", "justification": "code_not_reachable"},
                headers={"If-Match": "*"},
            )
            assert triaged.status == 200, triaged.body
        assert (await put_policy(s, {"allowed": ["MIT", "BSD-3-Clause"]})).status == 200
        after = await gate(s, slug, f"scan_id={scan['id']}")
        assert after["critical_cve_count"] == 0 and after["epss_gate_count"] == 0
        assert after["gate"] == "warn" and after["not_evaluated_count"] == 1
        assert after["reasons"][-1] == "1 (component, vulnerability) pair could not be evaluated"

        nothing = await gate(s, empty["slug"])
        assert (nothing["gate"], nothing["scan_id"]) == ("fail", None)
        assert "no snapshot" in nothing["reason"]
        path = f"/api/v1/projects/{slug}/policy-gate?"
        await _bad_pins(s, path, other_scan["id"], failed["id"])
        missing = await s.call("GET", "/api/v1/projects/nope/policy-gate")
        assert missing.status == 404


async def test_licenses_list_pages_filters_and_pins(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        project, other, empty = (
            await s.api.new_project(),
            await s.api.new_project(),
            await s.api.new_project(),
        )
        slug = project["slug"]
        assert (
            await put_policy(s, {"allowed": ["MIT"], "forbidden": ["GPL-3.0-only"]})
        ).status == 200
        pkgs = (
            *PKGS,
            Pkg("readline", "6.2.4", license="GPL-3.0-only"),
            Pkg("flask", "2.0.0"),
        )
        scan = await s.scan(slug, cyclonedx_json(pkgs))
        other_scan = await s.scan(other["slug"], cyclonedx_json(PKGS))
        failed = await s.scan(slug, b'{"bomFormat": "CycloneDX", "specVersion": "1.5"')
        path = f"/api/v1/projects/{slug}/licenses"
        listed = await s.call("GET", path)
        assert listed.status == 200 and listed.body["scan_id"] == scan["id"]
        rows = [(i["license"], i["category"], i["component_count"]) for i in listed.body["items"]]
        assert rows == [
            ("GPL-3.0-only", "forbidden", 1),
            ("BSD-3-Clause", "unknown", 1),
            (None, "unknown", 1),
            ("MIT", "allowed", 2),
        ]
        by_license = {i["license"]: i for i in listed.body["items"]}
        assert by_license["BSD-3-Clause"]["reason"] == (
            "BSD-3-Clause is not in the policy: unknown by default"
        )
        assert by_license["GPL-3.0-only"]["waived"] is False
        assert listed.body["policy"]["org_policy_version"] == 1
        assert listed.body["policy"]["source"] == "scan"

        seen, cursor = [], ""
        while True:
            page = await s.call("GET", f"{path}?limit=1{cursor}")
            assert page.status == 200 and len(page.body["items"]) == 1
            seen += [i["license"] for i in page.body["items"]]
            if page.body["next_cursor"] is None:
                break
            cursor = f"&cursor={page.body['next_cursor']}"
        assert seen == [r[0] for r in rows]
        unknown = await s.call("GET", f"{path}?category=unknown&category=forbidden")
        assert [i["license"] for i in unknown.body["items"]] == [
            "GPL-3.0-only",
            "BSD-3-Clause",
            None,
        ]
        bad_category = await s.call("GET", f"{path}?category=maybe")
        assert bad_category.status == 422 and bad_category.body["errors"][0]["field"] == (
            "$.category[0]"
        )
        bad_cursor = await s.call("GET", f"{path}?cursor=abc")
        assert (bad_cursor.status, bad_cursor.code) == (422, "invalid_cursor")
        none = await s.call("GET", f"/api/v1/projects/{empty['slug']}/licenses")
        assert none.status == 200 and none.body == {
            "scan_id": None,
            "policy": None,
            "items": [],
            "next_cursor": None,
        }
        await _bad_pins(s, f"{path}?", other_scan["id"], failed["id"])


async def test_diff_between_snapshots(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        await _setup(s)
        project, other = await s.api.new_project(), await s.api.new_project()
        slug = project["slug"]
        first = await s.scan(slug, cyclonedx_json(PKGS))
        path = f"/api/v1/projects/{slug}/diff"
        alone = await s.call("GET", path)
        assert (alone.status, alone.code) == (409, "no_base_snapshot")
        second = await s.scan(slug, cyclonedx_json(NEXT))
        other_scan = await s.scan(other["slug"], cyclonedx_json(PKGS))

        diff = await s.call("GET", path)
        assert diff.status == 200, diff.body
        body = diff.body
        assert (body["base_scan_id"], body["target_scan_id"]) == (first["id"], second["id"])
        assert body["counts"] == {
            "components_added": 1,
            "components_removed": 1,
            "components_changed": 1,
            "vulnerabilities_new": 1,
            "vulnerabilities_resolved": 1,
        }
        assert [c["package"] for c in body["components_added"]] == ["requests"]
        assert body["components_removed"][0]["base_versions"] == ["7.0.0"]
        changed = body["components_changed"][0]
        assert (changed["name"], changed["base_versions"], changed["target_versions"]) == (
            "django",
            ["2.2.0"],
            ["3.2.0"],
        )
        assert [v["vulnerability_id"] for v in body["vulnerabilities_new"]] == ["CVE-2023-0003"]
        resolved = body["vulnerabilities_resolved"][0]
        assert (resolved["vulnerability_id"], resolved["severity"]) == ("CVE-2020-0001", "CRITICAL")
        assert resolved["aliases"] == ["GHSA-dj01"] and body["next_cursor"] is None

        reverse = await s.call("GET", f"{path}?base={second['id']}&target={first['id']}")
        assert reverse.body["counts"]["vulnerabilities_new"] == 1
        assert reverse.body["vulnerabilities_new"][0]["vulnerability_id"] == "CVE-2020-0001"

        items: list[str] = []
        cursor = ""
        while True:
            page = await s.call("GET", f"{path}?limit=2{cursor}")
            assert page.body["counts"] == body["counts"]
            for name in (
                "components_added",
                "components_removed",
                "components_changed",
                "vulnerabilities_new",
                "vulnerabilities_resolved",
            ):
                items += [f"{name}:{json.dumps(x, sort_keys=True)}" for x in page.body[name]]
            if page.body["next_cursor"] is None:
                break
            cursor = f"&cursor={page.body['next_cursor']}"
        assert len(items) == 5 and len(set(items)) == 5

        unknown = await s.call("GET", f"{path}?base=nope")
        assert (unknown.status, unknown.code) == (404, "scan_not_found")
        assert unknown.body["errors"][0]["field"] == "$.base"
        elsewhere = await s.call("GET", f"{path}?target={other_scan['id']}")
        assert (elsewhere.status, elsewhere.body["errors"][0]["field"]) == (404, "$.target")
        bad_cursor = await s.call("GET", f"{path}?cursor=WyJ4Il0")
        assert (bad_cursor.status, bad_cursor.code) == (422, "invalid_cursor")
        nothing = await s.api.new_project()
        none = await s.call("GET", f"/api/v1/projects/{nothing['slug']}/diff")
        assert (none.status, none.code) == (404, "no_snapshot")


async def test_sbom_exports_validate_and_carry_vulnerabilities(
    start_service: StartService,
) -> None:
    versions, json_validator, xml_validator = cyclonedx_validators()
    async with scan_api(start_service) as s:
        await _setup(s)
        project, other = await s.api.new_project(), await s.api.new_project()
        slug = project["slug"]
        scan = await s.scan(slug, cyclonedx_json(PKGS))
        other_scan = await s.scan(other["slug"], cyclonedx_json(PKGS))
        failed = await s.scan(slug, b'{"bomFormat": "CycloneDX", "specVersion": "1.5"')
        path = f"/api/v1/projects/{slug}/sbom"

        as_json = await s.call("GET", path)
        assert as_json.status == 200, as_json.body
        assert as_json.headers["Content-Type"] == "application/vnd.cyclonedx+json; version=1.6"
        assert as_json.headers["Content-Disposition"] == (
            f'attachment; filename="{slug}-{scan["id"][:8]}.cdx.json"'
        )
        assert as_json.headers["Gatehouse-Scan-Id"] == scan["id"]
        document = as_json.body
        assert json_validator(versions["1.6"]).validate_str(json.dumps(document)) is None
        assert document["metadata"]["component"]["name"] == slug
        assert {c["name"] for c in document["components"]} == {"django", "sqlparse", "pytest"}
        ids = {v["id"] for v in document["vulnerabilities"]}
        assert ids == {"CVE-2020-0001", "CVE-2021-0002"}  # not-evaluated pairs are no claim
        again = await s.call("GET", path)
        assert again.body == document and again.headers["ETag"] == as_json.headers["ETag"]
        cached = await s.call("GET", path, headers={"If-None-Match": as_json.headers["ETag"]})
        assert cached.status == 304

        older = await s.call("GET", f"{path}?spec_version=1.5&scan_id={scan['id']}")
        assert older.body["specVersion"] == "1.5"
        assert json_validator(versions["1.5"]).validate_str(json.dumps(older.body)) is None

        as_xml = await s.call("GET", f"{path}?format=cyclonedx-xml")
        assert as_xml.status == 200
        assert as_xml.headers["Content-Type"] == "application/vnd.cyclonedx+xml; version=1.6"
        assert as_xml.headers["Content-Disposition"].endswith('.cdx.xml"')
        assert xml_validator(versions["1.6"]).validate_str(as_xml.body) is None
        assert "CVE-2020-0001" in as_xml.body

        spdx = await s.call("GET", f"{path}?format=spdx-json")
        assert spdx.status == 200 and spdx.headers["Content-Type"] == "application/spdx+json"
        assert spdx.headers["Content-Disposition"].endswith('.spdx.json"')
        assert_valid_spdx(json.dumps(spdx.body).encode())
        django = next(p for p in spdx.body["packages"] if p["name"] == "django")
        assert django["licenseDeclared"] == "MIT"
        assert any(r["referenceCategory"] == "SECURITY" for r in django["externalRefs"])

        bad = await s.call("GET", f"{path}?format=pdf")
        assert bad.status == 422 and bad.body["errors"][0]["field"] == "$.format"
        spec = await s.call("GET", f"{path}?spec_version=1.4")
        assert spec.status == 422 and spec.body["errors"][0]["field"] == "$.spec_version"
        await _bad_pins(s, f"{path}?", other_scan["id"], failed["id"])
        nothing = await s.api.new_project()
        none = await s.call("GET", f"/api/v1/projects/{nothing['slug']}/sbom")
        assert (none.status, none.code) == (404, "no_snapshot")


async def test_notice_groups_by_license_without_the_product(start_service: StartService) -> None:
    sbom = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "components": [
            {"bom-ref": "shop", "type": "application", "name": "web-shop", "version": "2.0"},
            {
                "bom-ref": "django",
                "type": "library",
                "name": "django",
                "version": "3.2.0",
                "purl": "pkg:pypi/django@3.2.0",
                "licenses": [{"license": {"id": "BSD-3-Clause"}}],
            },
            {
                "bom-ref": "evil",
                "type": "library",
                "name": "<script>alert(1)</script>",
                "version": "1.0",
                "licenses": [{"expression": "MIT OR Apache-2.0"}],
            },
            {"bom-ref": "bare", "type": "library", "name": "bare", "version": "0.1"},
        ],
        "dependencies": [{"ref": "shop", "dependsOn": ["django", "evil", "bare"]}],
    }
    async with scan_api(start_service) as s:
        project = await s.api.new_project(name="Web shop")
        slug = project["slug"]
        scan = await s.scan(slug, json.dumps(sbom).encode())
        path = f"/api/v1/projects/{slug}/notice"
        text = await s.call("GET", path)
        assert text.status == 200, text.body
        assert text.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert text.headers["Content-Disposition"] == (
            f'attachment; filename="{slug}-{scan["id"][:8]}.txt"'
        )
        assert text.body.startswith("THIRD-PARTY SOFTWARE NOTICES\nWeb shop\n")
        assert "3 components, 3 license groups" in text.body
        assert "web-shop" not in text.body  # the product itself is not a third party
        assert text.body.index("BSD-3-Clause") < text.body.index("MIT OR Apache-2.0")
        assert text.body.index("MIT OR Apache-2.0") < text.body.index("No license declared")

        markdown = await s.call("GET", f"{path}?format=markdown")
        assert markdown.headers["Content-Type"] == "text/markdown; charset=utf-8"
        assert markdown.headers["Content-Disposition"].endswith('.md"')
        assert "&lt;script&gt;" in markdown.body and "<script>" not in markdown.body

        html = await s.call("GET", f"{path}?format=html")
        assert html.headers["Content-Type"] == "text/html; charset=utf-8"
        assert html.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.body
        assert "<script>" not in html.body
        assert "https://spdx.org/licenses/BSD-3-Clause.html" in html.body

        bad = await s.call("GET", f"{path}?format=pdf")
        assert bad.status == 422 and bad.body["errors"][0]["field"] == "$.format"
        unknown = await s.call("GET", f"{path}?scan_id=nope")
        assert (unknown.status, unknown.code) == (404, "scan_not_found")
