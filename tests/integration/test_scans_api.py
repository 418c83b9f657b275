"""Scans over HTTP: uploads of every SBOM format, the lifecycle, components, bad input,
cancel and delete rules, pagination, project scope, snapshot pins."""

from __future__ import annotations

import json

import pytest

from services.scanner.scans.wiring import WORKER_KEY
from tests.conftest import StartService, wait_until
from tests.integration.test_gateway_support import stream_count
from tests.integration.test_scan_support import (
    DEFAULT_PKGS,
    Pkg,
    ScanApi,
    cyclonedx_json,
    cyclonedx_xml,
    fetch,
    scan_api,
    spdx_json,
    spdx_tag_value,
    subject_counts,
    zip_of,
)

PACKAGE_LOCK = b"""{
  "name": "web", "version": "1.0.0", "lockfileVersion": 3,
  "packages": {
    "": {"name": "web", "version": "1.0.0", "dependencies": {"lodash": "^4.17.0"},
         "devDependencies": {"jest": "^29.0.0"}},
    "node_modules/lodash": {"version": "4.17.20", "license": "MIT"},
    "node_modules/jest": {"version": "29.0.0", "dev": true}
  }
}"""


async def test_every_format_scans_to_succeeded(start_service: StartService) -> None:
    cases = [
        ("application/vnd.cyclonedx+json", cyclonedx_json(), "cyclonedx-json", "1.5"),
        ("application/xml", cyclonedx_xml(), "cyclonedx-xml", "1.4"),
        ("application/spdx+json", spdx_json(), "spdx-json", "2.3"),
        ("text/plain", spdx_tag_value(), "spdx-tag-value", "2.2"),
    ]
    async with scan_api(start_service) as s:
        project = await s.api.new_project(repos=["acme/web"])
        slug = project["slug"]
        for content_type, body, detected, spec in cases:
            reply = await s.upload_sbom(
                slug, body, content_type=content_type, query="repo=acme/web&commit=ABCDEF1"
            )
            assert reply.status == 202, reply.body
            assert reply.body["status"] == "queued" and reply.body["format"] == detected
            assert reply.headers["Location"] == f"/api/v1/scans/{reply.body['scan_id']}"
            scan = await s.finished(reply.body["scan_id"])
            assert scan["status"] == "succeeded", scan
            assert scan["format"] == detected and scan["spec_version"] == spec
            assert scan["project_id"] == project["id"] and scan["kind"] == "sbom"
            assert (scan["repo"], scan["commit"]) == ("acme/web", "abcdef1")
            assert scan["summary"]["component_count"] == 3
            assert scan["sbom_digest"] == scan["source_digest"]
            assert scan["result_digest"].startswith("sha256:")
            assert scan["created_by"].startswith("apikey:")

        listed = await s.call("GET", f"/api/v1/projects/{slug}/scans")
        assert [i["format"] for i in listed.body["items"]] == [c[2] for c in reversed(cases)]
        snapshots = await s.call("GET", f"/api/v1/projects/{slug}/snapshots")
        assert len(snapshots.body["items"]) == 4
        assert snapshots.body["items"][0]["scan_id"] == listed.body["items"][0]["id"]

        log = await s.call("GET", f"/api/v1/scans/{listed.body['items'][0]['id']}/log")
        events = [entry["event"] for entry in log.body["items"]]
        assert events[:2] == ["scan.queued", "scan.started"]
        assert events[-2:] == ["scan.completed", "scan.findings-announced"]
        assert events.count("scan.progressed") == 3
        assert log.body["items"][-1]["message"] == (
            "announced: 0 new findings, 0 resolved, 0 over the EPSS threshold"
        )
        assert [e["stage"] for e in log.body["items"][2:5]] == ["parse", "match", "evaluate"]


async def test_components_direct_scope_and_filters(start_service: StartService) -> None:
    pkgs = (
        *DEFAULT_PKGS,
        Pkg("left-pad", "1.3.0", purl_type="npm", license="WTFPL", scope="excluded"),
    )
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        slug = project["slug"]
        scan = await s.scan(slug, cyclonedx_json(pkgs))
        reply = await s.call("GET", f"/api/v1/projects/{slug}/components")
        assert reply.status == 200 and reply.body["scan_id"] == scan["id"]
        by_name = {c["name"]: c for c in reply.body["items"]}
        assert [c["name"] for c in reply.body["items"]] == sorted(by_name)
        django, sqlparse = by_name["django"], by_name["sqlparse"]
        assert (django["direct"], django["scope"]) == (True, "required")
        assert (sqlparse["direct"], sqlparse["scope"]) == (False, "required")
        assert by_name["pytest"]["scope"] == "optional" and by_name["pytest"]["licenses"] == []
        assert django["purl"] == "pkg:pypi/django@2.2.0" and django["package"] == "PyPI:django"
        assert django["licenses"] == [{"id": "MIT"}] and django["license_expression"] == "MIT"
        assert by_name["left-pad"]["ecosystem"] == "npm"
        # Until a license policy is configured every license is unknown.
        assert {c["license_category"] for c in by_name.values()} == {"unknown"}

        async def names(query: str) -> list[str]:
            got = await s.call("GET", f"/api/v1/projects/{slug}/components?{query}")
            assert got.status == 200, got.body
            return [c["name"] for c in got.body["items"]]

        assert await names("direct=false") == ["sqlparse"]
        assert await names("scope=optional&scope=excluded") == ["left-pad", "pytest"]
        assert await names("license_category=forbidden") == []
        assert await names("sort=name&order=desc") == sorted(by_name, reverse=True)
        assert await names("severity=CRITICAL") == []  # no advisories loaded
        assert len(await names("sort=severity")) == 4
        bad = await s.call("GET", f"/api/v1/projects/{slug}/components?sort=size")
        assert bad.status == 422 and bad.body["errors"][0]["field"] == "$.sort"


async def test_upload_is_checked_before_anything_is_written(
    start_service: StartService,
) -> None:
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        slug = project["slug"]
        archived = await s.api.new_project()
        assert (await s.call("DELETE", f"/api/v1/projects/{archived['slug']}")).status == 204
        _, viewer = await s.api.new_key("VIEWER")
        before = await stream_count(s.api.runtime)
        cases = [
            (await s.upload_sbom("nope", cyclonedx_json()), 404, "not_found"),
            (await s.upload_sbom(archived["slug"], cyclonedx_json()), 409, "project_archived"),
            (await s.upload_sbom(slug, cyclonedx_json(), token=viewer), 403, "forbidden"),
            (await s.upload_sbom(slug, b"", content_type="text/plain"), 422, "empty_body"),
            (
                await s.upload_sbom(slug, cyclonedx_json(), content_type="image/png"),
                415,
                "unsupported_media_type",
            ),
            (await s.upload_sbom(slug, cyclonedx_json(), query="repo=x"), 422, None),
            (await s.upload_sbom(slug, cyclonedx_json(), query="commit=abc1234"), 422, None),
            (await s.upload_sbom(slug, cyclonedx_json(), query="repo=a/b&commit=xyz"), 422, None),
            (await s.upload_sbom(slug, cyclonedx_json(), query="label=-bad"), 422, None),
            (await s.upload_sbom(slug, cyclonedx_json(), query="colour=red"), 422, None),
            (await s.upload_sbom(slug, b"hello world", content_type="text/plain"), 415, None),
            (await s.upload_sbom(slug, b'{"name": "x"}'), 415, "sbom_unknown_format"),
            (await s.upload_sbom(slug, b"[1, 2]"), 415, "sbom_unknown_format"),
            (await s.upload_sbom(slug, zip_of({"a": b"b"})), 415, "sbom_unknown_format"),
        ]
        for reply, status, code in cases:
            assert reply.status == status, reply.body
            assert reply.headers["Content-Type"].startswith("application/problem+json")
            if code:
                assert reply.code == code, reply.body
        assert cases[0][0].body["detail"] == "no project 'nope'"
        assert cases[-4][0].body["detail"].startswith("text starting with 'hello world'")
        # Nothing was published, nothing projected.
        assert await stream_count(s.api.runtime) == before
        assert await fetch(s.scanner, "SELECT id FROM scanner.scans") == []


async def test_a_50_mb_document_is_refused_with_413(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        head = b'{"bomFormat": "CycloneDX", "specVersion": "1.5", "components": ['
        component = b'{"type": "library", "name": "x", "version": "1"},'
        body = head + component * ((50 << 20) // len(component)) + b"{}]}"
        assert len(body) > 50_000_000
        before = await stream_count(s.api.runtime)
        reply = await s.upload_sbom(project["slug"], body)
        assert (reply.status, reply.code) == (413, "sbom_too_large"), reply.body
        assert reply.body["limit"] == s.api.runtime.settings.max_sbom_bytes
        assert await stream_count(s.api.runtime) == before


async def test_broken_documents_fail_with_a_location(start_service: StartService) -> None:
    broken = [
        (cyclonedx_json()[:300], "sbom_malformed", "line 1, column 301"),
        (cyclonedx_xml().replace(b"</name>", b"</nam>", 1), "sbom_malformed", "line 1"),
        (cyclonedx_json(spec="9.9"), "sbom_unsupported_version", "$.specVersion"),
        (spdx_json().replace(b'"packages": [', b'"packages": [1, '), "sbom_malformed", None),
        (
            spdx_tag_value().replace(b"PackageName: sqlparse", b"PackageNme sqlparse"),
            "sbom_malformed",
            "line 16",
        ),
    ]
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        for body, code, location in broken:
            scan = await s.scan(project["slug"], body, content_type="text/plain")
            assert scan["status"] == "failed", scan
            error = scan["error"]
            assert error["code"] == code, error
            if location:
                assert location in (error["location"] or ""), error
            assert scan["summary"] is None and scan["result_digest"] is None
            log = await s.call("GET", f"/api/v1/scans/{scan['id']}/log")
            last = log.body["items"][-1]
            assert (last["event"], last["level"]) == ("scan.failed", "error")
            assert code in last["message"]
        assert (await s.call("GET", f"/api/v1/projects/{project['slug']}/snapshots")).body[
            "items"
        ] == []
        empty = await s.call("GET", f"/api/v1/projects/{project['slug']}/components")
        assert empty.body == {"scan_id": None, "items": [], "next_cursor": None}


async def test_a_source_zip_is_scanned_for_lockfiles(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        slug = project["slug"]
        source = zip_of(
            {
                "repo/requirements.txt": b"django==3.2.0\nrequests==2.25.0  # pinned\n",
                "repo/web/package-lock.json": PACKAGE_LOCK,
                "repo/web/node_modules/x/package-lock.json": b"ignored",
                "repo/README.md": b"# hello",
            }
        )
        reply = await s.upload_source(slug, source, query="repo=acme/web&commit=abcdef12")
        assert reply.status == 202 and reply.body["format"] == "zip", reply.body
        scan = await s.finished(reply.body["scan_id"])
        assert scan["status"] == "succeeded", scan
        assert scan["kind"] == "source" and scan["format"] == "zip"
        assert scan["sbom_digest"] != scan["source_digest"]
        comps = await s.call("GET", f"/api/v1/projects/{slug}/components")
        by_name = {c["name"]: c for c in comps.body["items"]}
        assert set(by_name) == {"django", "requests", "lodash", "jest"}
        assert by_name["jest"]["scope"] == "dev" and by_name["lodash"]["direct"] is True
        assert by_name["django"]["purl"] == "pkg:pypi/django@3.2.0"

        nothing = await s.upload_source(slug, zip_of({"src/main.py": b"print(1)"}))
        failed = await s.finished(nothing.body["scan_id"])
        assert failed["status"] == "failed" and failed["error"]["code"] == "no_lockfiles"
        bad_lock = await s.upload_source(slug, zip_of({"package-lock.json": b"{not json"}))
        failed = await s.finished(bad_lock.body["scan_id"])
        assert failed["error"]["code"] == "lockfile_malformed", failed
        assert failed["error"]["location"].startswith("package-lock.json")


async def test_zip_attacks_are_refused_at_upload(start_service: StartService) -> None:
    import io
    import zipfile

    def raw_zip(name: str, data: bytes, *, symlink: bool = False) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if symlink:
                info.create_system = 3
                info.external_attr = 0o120777 << 16
            archive.writestr(info, data)
        return buffer.getvalue()

    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        before = await stream_count(s.api.runtime)
        cases = [
            (raw_zip("../../etc/passwd", b"x"), 422, "archive_path_traversal"),
            (raw_zip("/abs/requirements.txt", b"x"), 422, "archive_path_traversal"),
            (raw_zip("link", b"/etc/passwd", symlink=True), 422, "archive_symlink"),
            (raw_zip("requirements.txt", b"\0" * (20 << 20)), 422, "archive_bomb"),
            (b"PK\x03\x04 not really a zip", 422, "archive_invalid"),
        ]
        for body, status, code in cases:
            reply = await s.upload_source(project["slug"], body)
            assert (reply.status, reply.code) == (status, code), reply.body
        assert await stream_count(s.api.runtime) == before


async def test_cancel_a_running_scan(start_service: StartService) -> None:
    async with scan_api(start_service, scan_stage_pause_seconds=0.5) as s:
        project = await s.api.new_project()
        reply = await s.upload_sbom(project["slug"], cyclonedx_json())
        scan_id = reply.body["scan_id"]

        async def running() -> bool:
            got = await s.call("GET", f"/api/v1/scans/{scan_id}")
            return bool(got.body["status"] == "running")

        await wait_until(running)
        _, viewer = await s.api.new_key("VIEWER")
        denied = await s.call("POST", f"/api/v1/scans/{scan_id}/cancel", token=viewer)
        assert denied.status == 403
        cancelled = await s.call("POST", f"/api/v1/scans/{scan_id}/cancel?reason=wrong+file")
        assert cancelled.status == 200, cancelled.body
        assert cancelled.body["status"] == "cancelled"
        again = await s.call("POST", f"/api/v1/scans/{scan_id}/cancel")
        assert (again.status, again.code) == (409, "scan_already_finished")
        # The worker stops at its next stage and never completes the scan.
        await wait_until(lambda: _job_done(s, scan_id))
        worker = s.scanner.state[WORKER_KEY]

        async def idle() -> bool:
            return worker.running is None

        await wait_until(idle)
        final = await s.call("GET", f"/api/v1/scans/{scan_id}")
        assert final.body["status"] == "cancelled"
        counts = await subject_counts(s.scanner, "scan.>")
        assert counts.get("scan.completed", 0) == 0 and counts["scan.cancelled"] == 1
        log = await s.call("GET", f"/api/v1/scans/{scan_id}/log")
        assert log.body["items"][-1]["message"] == "cancelled: wrong file"
        missing = await s.call("POST", "/api/v1/scans/nope/cancel")
        assert (missing.status, missing.code) == (404, "scan_not_found")


async def _job_done(s: ScanApi, scan_id: str) -> bool:
    rows = await fetch(
        s.scanner, "SELECT status, lease_owner FROM scanner.jobs WHERE id = $1", f"scan:{scan_id}"
    )
    return bool(rows) and rows[0]["status"] == "done"


async def test_delete_rules(start_service: StartService) -> None:
    async with scan_api(start_service, scan_stage_pause_seconds=0.3) as s:
        project = await s.api.new_project()
        slug = project["slug"]
        _, operator = await s.api.new_key("OPERATOR")
        first = await s.scan(slug, cyclonedx_json())
        release = await s.scan(slug, cyclonedx_json(), query="label=v1.0.0")
        running = await s.upload_sbom(slug, cyclonedx_json())
        busy = await s.call("DELETE", f"/api/v1/scans/{running.body['scan_id']}")
        assert (busy.status, busy.code) == (409, "scan_not_finished")
        await s.finished(running.body["scan_id"])
        latest = running.body["scan_id"]

        labelled = await s.call("DELETE", f"/api/v1/scans/{release['id']}", token=operator)
        assert (labelled.status, labelled.code) == (409, "scan_release_labelled")
        forced = await s.call("DELETE", f"/api/v1/scans/{release['id']}?force=true", token=operator)
        assert forced.status == 403, forced.body
        assert (await s.call("DELETE", f"/api/v1/scans/{latest}", token=operator)).status == 204
        assert (await s.call("GET", f"/api/v1/scans/{latest}")).status == 404
        again = await s.call("DELETE", f"/api/v1/scans/{latest}")
        assert (again.status, again.code) == (404, "scan_not_found")
        # The latest snapshot is now the release scan; then, once that goes, the first one.
        comps = await s.call("GET", f"/api/v1/projects/{slug}/components")
        assert comps.body["scan_id"] == release["id"]
        assert (await s.call("DELETE", f"/api/v1/scans/{release['id']}?force=true")).status == 204
        comps = await s.call("GET", f"/api/v1/projects/{slug}/components")
        assert comps.body["scan_id"] == first["id"]
        rows = await fetch(
            s.scanner,
            "SELECT count(*) AS n FROM scanner.components WHERE scan_id = ANY($1::text[])",
            [latest, release["id"]],
        )
        assert rows[0]["n"] == 0


async def test_pagination_and_pins(start_service: StartService) -> None:
    pkgs = [Pkg(f"pkg-{i:02d}", "1.0.0") for i in range(7)]
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        slug = project["slug"]
        scans = [(await s.scan(slug, cyclonedx_json(pkgs[: i + 3])))["id"] for i in range(5)]
        failed = await s.scan(slug, b'{"bomFormat": "CycloneDX", "specVersion": "1.5"')

        seen: list[str] = []
        cursor = ""
        while True:
            page = await s.call("GET", f"/api/v1/projects/{slug}/scans?limit=2{cursor}")
            assert page.status == 200 and len(page.body["items"]) <= 2
            seen += [item["id"] for item in page.body["items"]]
            if page.body["next_cursor"] is None:
                break
            cursor = f"&cursor={page.body['next_cursor']}"
        assert seen == [failed["id"], *reversed(scans)]
        only_failed = await s.call("GET", f"/api/v1/projects/{slug}/scans?status=failed")
        assert [i["id"] for i in only_failed.body["items"]] == [failed["id"]]

        names: list[str] = []
        cursor = ""
        while True:
            page = await s.call(
                "GET", f"/api/v1/projects/{slug}/components?limit=3&sort=severity{cursor}"
            )
            names += [c["name"] for c in page.body["items"]]
            if page.body["next_cursor"] is None:
                break
            cursor = f"&cursor={page.body['next_cursor']}"
        assert sorted(names) == [p.name for p in pkgs] and len(names) == 7

        pinned = await s.call("GET", f"/api/v1/projects/{slug}/components?scan_id={scans[0]}")
        assert pinned.body["scan_id"] == scans[0] and len(pinned.body["items"]) == 3
        not_snapshot = await s.call(
            "GET", f"/api/v1/projects/{slug}/vulnerabilities?scan_id={failed['id']}"
        )
        assert (not_snapshot.status, not_snapshot.code) == (409, "scan_not_succeeded")
        other = await s.api.new_project()
        foreign = await s.call(
            "GET", f"/api/v1/projects/{other['slug']}/components?scan_id={scans[0]}"
        )
        assert (foreign.status, foreign.code) == (404, "scan_not_found")
        bad_cursor = await s.call("GET", f"/api/v1/projects/{slug}/scans?cursor=xyz")
        assert (bad_cursor.status, bad_cursor.code) == (422, "invalid_cursor")
        wrong_list = await s.call(
            "GET", f"/api/v1/projects/{slug}/components?sort=severity&cursor={cursor[8:]}"
        )
        assert wrong_list.status in (200, 422)


async def test_a_project_scoped_key_sees_only_its_project(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        mine, theirs = await s.api.new_project(), await s.api.new_project()
        _, scoped = await s.api.new_key("OPERATOR", project=mine["slug"])
        my_scan = await s.scan(mine["slug"], cyclonedx_json(), token=scoped)
        their_scan = await s.scan(theirs["slug"], cyclonedx_json())
        assert (await s.call("GET", f"/api/v1/scans/{my_scan['id']}", token=scoped)).status == 200
        hidden = await s.call("GET", f"/api/v1/scans/{their_scan['id']}", token=scoped)
        assert (hidden.status, hidden.code) == (404, "scan_not_found")
        for path in (
            f"/api/v1/scans/{their_scan['id']}/log",
            f"/api/v1/projects/{theirs['slug']}/components",
        ):
            assert (await s.call("GET", path, token=scoped)).status == 404, path
        cancel = await s.call("POST", f"/api/v1/scans/{their_scan['id']}/cancel", token=scoped)
        assert cancel.status == 404
        upload = await s.upload_sbom(theirs["slug"], cyclonedx_json(), token=scoped)
        assert upload.status == 404


@pytest.mark.parametrize("pause", [0.0])
async def test_idempotency_key_replays_the_same_scan(
    start_service: StartService, pause: float
) -> None:
    async with scan_api(start_service, scan_stage_pause_seconds=pause) as s:
        project = await s.api.new_project()
        first = await s.upload_sbom(
            project["slug"], cyclonedx_json(), headers={"Idempotency-Key": "upload-1"}
        )
        again = await s.upload_sbom(
            project["slug"], cyclonedx_json(), headers={"Idempotency-Key": "upload-1"}
        )
        assert first.status == again.status == 202
        assert again.body["scan_id"] == first.body["scan_id"]
        assert again.headers["Location"] == first.headers["Location"]
        other = await s.upload_sbom(
            project["slug"], spdx_json(), headers={"Idempotency-Key": "upload-1"}
        )
        assert (other.status, other.code) == (422, "idempotency_key_reused")


async def test_odd_components_are_recorded_not_fatal(start_service: StartService) -> None:
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "components": [
            {"bom-ref": "a", "type": "library", "name": "a", "version": "1", "purl": "pkg:/??"},
            {"bom-ref": "b", "type": "library", "name": "b", "version": "2", "purl": "pkg:npm/b@2"},
            {"bom-ref": "b", "type": "library", "name": "b-again", "version": "3"},
            {"bom-ref": "c", "type": "library", "name": "c", "purl": "pkg:pypi/c@" + "9" * 300},
        ],
        "dependencies": [{"ref": "b", "dependsOn": ["nowhere"]}],
    }
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        scan = await s.scan(project["slug"], json.dumps(document).encode())
        assert scan["status"] == "succeeded", scan
        assert scan["summary"]["component_count"] == 3
        assert scan["summary"]["warning_count"] == 3
        log = await s.call("GET", f"/api/v1/scans/{scan['id']}/log")
        parse = next(e for e in log.body["items"] if e["stage"] == "parse")["message"]
        assert "3 skipped or noted" in parse, parse
        assert "invalid_purl at $.components[0]" in parse
        assert "duplicate_component at $.components[2]" in parse
        assert "unknown_dependency_ref at $.dependencies[0]" in parse
