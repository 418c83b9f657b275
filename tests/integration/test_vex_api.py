"""VEX over HTTP: import (CycloneDX VEX and OpenVEX, auto-detected, through the triage rules;
the documents in ../shared/data/vex), export (OpenVEX, CycloneDX; deterministic; a round
trip into another project), refusals that write nothing, and `gatehouse replay scanner`
rebuilding identical tables after triage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from services.scanner.scans.store import PROJECTION_TABLES
from shared.settings import Settings
from tests.conftest import StartService, shared_data, table_digest
from tests.integration.test_gateway_support import stream_count
from tests.integration.test_scan_findings import PKGS, _events, _import, _vulns, advisories
from tests.integration.test_scan_support import (
    Pkg,
    ScanApi,
    cyclonedx_json,
    scan_api,
    subject_counts,
)
from tests.integration.test_scans_worker import _replay
from tests.integration.test_vulndb_support import osv

JSON = {"Content-Type": "application/json"}
DIGESTED = [t for t in PROJECTION_TABLES if t != "jobs"]


async def _import_vex(
    s: ScanApi, slug: str, document: dict[str, Any] | bytes, *, token: str | None = None
) -> Any:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    return await s.call(
        "POST", f"/api/v1/projects/{slug}/vex", data=data, headers=JSON, token=token
    )


async def _export(s: ScanApi, slug: str, query: str) -> Any:
    return await s.call("GET", f"/api/v1/projects/{slug}/vex?{query}")


def _openvex(*statements: dict[str, Any]) -> dict[str, Any]:
    return {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/1",
        "author": "Supplier",
        "timestamp": "2024-05-01T00:00:00Z",
        "version": 1,
        "statements": list(statements),
    }


async def test_import_applies_statements_through_the_triage_rules(
    start_service: StartService,
) -> None:
    async with scan_api(start_service) as s:
        await _import(s, advisories())
        project = await s.api.new_project()
        slug = project["slug"]
        assert (await _import_vex(s, slug, _openvex())).code == "no_snapshot"
        await s.scan(slug, cyclonedx_json(PKGS), query="label=v1.0.0")
        found = {f["package"]: f for f in await _vulns(s, slug)}
        sqlparse = found["PyPI:sqlparse"]
        fixed = await s.call(
            "PATCH",
            f"/api/v1/findings/{sqlparse['id']}",
            json={"state": "fixed"},
            headers={"If-Match": '"v1"'},
        )
        assert fixed.status == 200
        operator = (await s.api.new_key("OPERATOR"))[1]
        events_before = await stream_count(s.scanner)

        # Refusals write nothing: not JSON VEX, malformed, a role that may not import.
        for document, status, code in (
            (b"<bom/>", 415, "vex_unknown_format"),
            (b'{"hello": 1}', 415, "vex_unknown_format"),
            (b'{"bomFormat": "CycloneDX", "vulnerabilities": [{"id": 5}]}', 422, "vex_malformed"),
            (b'{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{}]}', 422,
             "vex_malformed"),
        ):  # fmt: skip
            reply = await _import_vex(s, slug, document)
            assert (reply.status, reply.code) == (status, code), reply.body
        malformed = await _import_vex(s, slug, b'{"bomFormat": "CycloneDX", "vulnerabilities": [')
        assert malformed.code == "vex_malformed" and malformed.body["location"], malformed.body
        refused = await _import_vex(s, slug, _openvex(), token=operator)
        assert (refused.status, refused.code) == (403, "forbidden")
        assert (await _import_vex(s, "nope", _openvex())).status == 404
        assert await stream_count(s.scanner) == events_before

        document = _openvex(
            {  # django (by its GHSA alias, any version): not affected
                "vulnerability": {"name": "GHSA-dj01"},
                "products": [{"@id": "pkg:pypi/Django"}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
                "impact_statement": "the admin is not deployed",
            },
            {  # sqlparse is fixed: the matrix refuses not_affected
                "vulnerability": {"name": "CVE-2021-0002"},
                "products": [{"@id": "pkg:pypi/sqlparse@0.2.4"}],
                "status": "not_affected",
                "justification": "component_not_present",
            },
            {  # pytest's GIT-range finding: under investigation
                "vulnerability": {"name": "GHSA-pt01"},
                "products": [{"identifiers": {"purl": "pkg:pypi/pytest@7.0.0"}}],
                "status": "under_investigation",
            },
            {  # another version of django: names no finding
                "vulnerability": {"name": "CVE-2020-0001"},
                "products": [{"@id": "pkg:pypi/django@9.9.9"}],
                "status": "affected",
                "action_statement": "upgrade",
            },
            {  # no usable product: a warning, not applied
                "vulnerability": {"name": "CVE-2020-0001"},
                "products": [{"@id": "urn:example:thing"}],
                "status": "fixed",
            },
        )
        reply = await _import_vex(s, slug, document)
        assert reply.status == 200, reply.body
        summary = reply.body
        assert summary["format"] == "openvex" and summary["spec_version"] == "0.2.0"
        assert summary["scan_id"] == sqlparse["scan_id"]
        assert (summary["statements"], summary["applied"], summary["unchanged"]) == (5, 2, 0)
        assert (summary["refused"], summary["unmatched"]) == (1, 2)
        assert sorted(
            (c["package"], c["from_state"], c["to_state"]) for c in summary["changes"]
        ) == [
            ("PyPI:django", "new", "not_affected"),
            ("PyPI:pytest", "new", "analyzing"),
        ]
        [refusal] = summary["refusals"]
        assert (refusal["finding_id"], refusal["code"], refusal["statement"]) == (
            sqlparse["id"],
            "vex_transition_not_allowed",
            "$.statements[1]",
        )
        assert [u["statement"] for u in summary["unmatched_statements"]] == [
            "$.statements[3]",
            "$.statements[4]",
        ]
        assert {w["code"] for w in summary["warnings"]} == {
            "vex_product_unusable",
            "vex_no_product",
        }
        now = {f["package"]: f for f in await _vulns(s, slug)}
        django = now["PyPI:django"]
        assert (django["state"], django["justification"], django["detail"], django["version"]) == (
            "not_affected",
            "vulnerable_code_not_in_execute_path",
            "the admin is not deployed",
            2,
        )
        assert now["PyPI:sqlparse"]["state"] == "fixed"
        events = [e for e in await _events(s.scanner, "finding.triaged") if e.cause == "vex"]
        assert len(events) == 2
        assert {e.source.partition("#")[2] for e in events} == {
            "$.statements[0]",
            "$.statements[2]",
        }
        assert all(e.source.startswith("sha256:") for e in events)
        # The same document again: already so.
        again = (await _import_vex(s, slug, document)).body
        assert (again["applied"], again["unchanged"], again["refused"]) == (0, 2, 1)

        # CycloneDX VEX: the metadata component is the whole product (every finding of the
        # vulnerability), narrowed to the release label when it lists versions.
        cdx = {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "metadata": {"component": {"bom-ref": "app", "type": "application", "name": "app"}},
            "vulnerabilities": [
                {
                    "id": "CVE-2020-0001",
                    "analysis": {"state": "exploitable", "detail": "reachable after all"},
                    "affects": [{"ref": "app", "versions": [{"version": "v1.0.0"}]}],
                },
                {
                    "id": "GHSA-pt01",
                    "analysis": {"state": "resolved"},
                    "affects": [{"ref": "app", "versions": [{"version": "v2.0.0"}]}],
                },
            ],
        }
        reply = await _import_vex(s, slug, cdx)
        assert reply.status == 200, reply.body
        assert (reply.body["format"], reply.body["applied"], reply.body["unmatched"]) == (
            "cyclonedx",
            1,
            1,
        )
        django = (await s.call("GET", f"/api/v1/findings/{django['id']}")).body
        assert (django["state"], django["detail"], django["justification"]) == (
            "exploitable",
            "reachable after all",
            None,
        )


def _shared_documents() -> tuple[dict[str, dict[str, Any]], list[bytes]]:
    """The CycloneDX VEX documents by file name, and the OpenVEX spec examples."""
    cyclonedx: Path = shared_data("vex", "cyclonedx")
    openvex: Path = shared_data("vex", "openvex")
    documents = {p.name: json.loads(p.read_text()) for p in sorted(cyclonedx.glob("*.json"))}
    examples = [p.read_bytes() for p in sorted(openvex.glob("spec-example-*.json"))]
    assert len(documents) == 7 and len(examples) == 2
    return documents, examples


async def test_the_shared_vex_documents_import(start_service: StartService) -> None:
    documents, spec_examples = _shared_documents()
    cves = sorted({v["id"] for d in documents.values() for v in d["vulnerabilities"]})
    # One advisory per CVE the documents name, each in a package of the test SBOM.
    bundle = {
        f"{cve}.json": osv(
            cve,
            name={"CVE-2021-44228": "log4j-demo", "CVE-2023-12345": "git-demo"}.get(
                cve, "treck-demo"
            ),
            events=[{"introduced": "0"}],
        )
        for cve in [*cves, "CVE-2023-12345"]
    }
    async with scan_api(start_service) as s:
        await _import(s, bundle)
        project = await s.api.new_project()
        slug = project["slug"]
        pkgs = [Pkg("log4j-demo", "2.14.0"), Pkg("treck-demo", "6.0.1"), Pkg("git-demo", "1.0")]
        await s.scan(slug, cyclonedx_json(pkgs), query="label=3.0")
        states = {f["vulnerability_id"]: f["state"] for f in await _vulns(s, slug, "limit=500")}
        assert len(states) == len(cves) + 1 and set(states.values()) == {"new"}, states

        async def imported(name: str) -> dict[str, Any]:
            reply = await _import_vex(s, slug, documents[name])
            assert reply.status == 200, (name, reply.body)
            return dict(reply.body)

        async def state_of(cve: str) -> str:
            return {f["vulnerability_id"]: f["state"] for f in await _vulns(s, slug, "limit=500")}[
                cve
            ]

        log4j = "CVE-2021-44228"
        steps = [
            ("case-1-vex-under_investigation.json", "analyzing"),
            ("case-1-vex-affected.json", "exploitable"),
            ("case-1-vex-fixed.json", "fixed"),
        ]
        for name, state in steps:
            summary = await imported(name)
            assert (summary["applied"], summary["refused"]) == (1, 0), (name, summary)
            assert await state_of(log4j) == state
        # fixed -> not_affected is not a transition: refused with its code, nothing written.
        summary = await imported("case-1-vex-not_affected.json")
        assert (summary["applied"], summary["refused"]) == (0, 1)
        assert summary["refusals"][0]["code"] == "vex_transition_not_allowed"
        assert await state_of(log4j) == "fixed"
        # Versions 2.4, 2.6 and vers:generic/>=2.9|<=4.1 of the product: release label 3.0.
        summary = await imported("case-4-vex.json")
        assert (summary["applied"], summary["unmatched"]) == (1, 0), summary
        assert await state_of(log4j) == "exploitable"

        summary = await imported("case-2-vex.json")
        assert (summary["statements"], summary["applied"]) == (19, 19)
        summary = await imported("case-3-vex.json")
        assert summary["statements"] == 19 and summary["refused"] == 0, summary
        case3 = documents["case-3-vex.json"]["vulnerabilities"]
        expected = {
            "in_triage": "analyzing",
            "exploitable": "exploitable",
            "resolved": "fixed",
            "not_affected": "not_affected",
        }
        after = {f["vulnerability_id"]: f for f in await _vulns(s, slug, "limit=500")}
        for vulnerability in case3:
            finding = after[vulnerability["id"]]
            assert finding["state"] == expected[vulnerability["analysis"]["state"]], vulnerability
            assert finding["detail"].startswith(vulnerability["analysis"].get("detail", "")[:40])

        # The OpenVEX spec examples name an apk package: read, and matched to nothing here.
        for example in spec_examples:
            reply = await _import_vex(s, slug, example)
            assert reply.status == 200, reply.body
            assert (reply.body["format"], reply.body["statements"]) == ("openvex", 1)
            assert (reply.body["applied"], reply.body["unmatched"]) == (0, 1)


def _openvex_schema() -> dict[str, Any]:
    return dict(json.loads(shared_data("vex", "openvex", "openvex_json_schema.json").read_text()))


async def test_export_is_deterministic_and_round_trips(
    start_service: StartService, settings: Settings
) -> None:
    schema = _openvex_schema()
    async with scan_api(start_service) as s:
        await _import(s, advisories())
        source, target = await s.api.new_project(), await s.api.new_project()
        for project in (source, target):
            await s.scan(project["slug"], cyclonedx_json(PKGS), query="label=v1.0.0")
        slug = source["slug"]
        found = {f["package"]: f for f in await _vulns(s, slug)}
        bulk = f"/api/v1/projects/{slug}/vulnerabilities/bulk-transition"
        for ids, body in (
            ([found["PyPI:django"]["id"]], {"state": "not_affected",
              "justification": "vulnerable_code_not_present", "detail": "patched out"}),
            ([found["PyPI:sqlparse"]["id"]], {"state": "exploitable",
              "detail": "upgrade to 0.4.4"}),
            ([found["PyPI:pytest"]["id"]], {"state": "fixed", "detail": "backported"}),
        ):  # fmt: skip
            reply = await s.call("POST", bulk, json={"ids": ids, **body})
            assert reply.body["updated"] == 1, reply.body

        first = await _export(s, slug, "format=openvex")
        assert first.status == 200, first.body
        assert first.headers["Content-Type"].startswith("application/json")
        assert first.headers["Gatehouse-Scan-Id"] == found["PyPI:django"]["scan_id"]
        second = await _export(s, slug, "format=openvex")
        assert second.body == first.body and second.headers["ETag"] == first.headers["ETag"]
        cached = await s.call(
            "GET",
            f"/api/v1/projects/{slug}/vex?format=openvex",
            headers={"If-None-Match": first.headers["ETag"]},
        )
        assert cached.status == 304
        openvex = first.body
        jsonschema.validate(openvex, schema)
        statuses = {st["vulnerability"]["name"]: st["status"] for st in openvex["statements"]}
        assert statuses == {
            "CVE-2020-0001": "not_affected",
            "CVE-2021-0002": "affected",
            "GHSA-pt01": "fixed",
        }
        cdx = await _export(s, slug, "format=cyclonedx")
        assert cdx.status == 200 and cdx.body["bomFormat"] == "CycloneDX"
        assert cdx.body["metadata"]["component"]["name"] == slug
        assert cdx.body["metadata"]["component"]["version"] == "v1.0.0"
        assert {v["analysis"]["state"] for v in cdx.body["vulnerabilities"]} == {
            "not_affected",
            "exploitable",
            "resolved",
        }

        # Into the other project (same SBOM): each format carries the states over.
        for document, label in ((openvex, "openvex"), (cdx.body, "cyclonedx")):
            reply = await _import_vex(s, target["slug"], document)
            assert reply.status == 200 and reply.body["refused"] == 0, (label, reply.body)
            assert reply.body["unmatched"] == 0, (label, reply.body)
            copied = {f["package"]: f for f in await _vulns(s, target["slug"])}
            assert {p: f["state"] for p, f in copied.items()} == {
                "PyPI:django": "not_affected",
                "PyPI:sqlparse": "exploitable",
                "PyPI:pytest": "fixed",
            }, label
        assert copied["PyPI:sqlparse"]["detail"] == "upgrade to 0.4.4"
        assert copied["PyPI:django"]["justification"] == "code_not_present"

        # A triage changes the document (and its id); pinning the scan reads that snapshot.
        pinned = await _export(s, slug, f"format=openvex&scan_id={found['PyPI:django']['scan_id']}")
        assert pinned.body == openvex
        reopened = await s.call(
            "POST", bulk, json={"ids": [found["PyPI:pytest"]["id"]], "state": "analyzing"}
        )
        assert reopened.body["updated"] == 1
        changed = await _export(s, slug, "format=openvex")
        assert changed.body["@id"] != openvex["@id"]
        assert changed.body["timestamp"] >= openvex["timestamp"]

        # Reads that cannot be answered.
        empty = await s.api.new_project()
        assert (await _export(s, empty["slug"], "format=openvex")).code == "no_snapshot"
        await s.scan(empty["slug"], cyclonedx_json([Pkg("flask", "3.0.0")]))
        none = await _export(s, empty["slug"], "format=openvex")
        assert (none.status, none.code) == (404, "no_findings")
        bare = await _export(s, empty["slug"], "format=cyclonedx")
        assert bare.status == 200 and bare.body["vulnerabilities"] == []
        for query, status in (("format=csaf", 422), ("", 422), ("format=openvex&scan_id=x", 404)):
            assert (await _export(s, slug, query)).status == status, query
        viewer = (await s.api.new_key("VIEWER"))[1]
        read = await s.call("GET", f"/api/v1/projects/{slug}/vex?format=cyclonedx", token=viewer)
        assert read.status == 200

        # Everything triage wrote is rebuilt identically from the stream and the blobs.
        triaged = (await subject_counts(s.scanner, "finding.triaged"))["finding.triaged"]
        # source: 3 + 1 bulk; target: the OpenVEX import 3, the CycloneDX one only django's
        # justification in CycloneDX's words (code_not_present).
        assert triaged == 4 + 3 + 1
        await s.scanner.stop()
    before = await table_digest(settings.database_url, "scanner", DIGESTED)
    await _replay(settings)
    assert await table_digest(settings.database_url, "scanner", DIGESTED) == before
