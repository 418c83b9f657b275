"""The vulnerability database over the gateway: OSV and EPSS imports, status, advisory
lookup, refusals; the scanner answering over NATS with a real NATS and PostgreSQL."""

from __future__ import annotations

import gzip
from typing import Any

from contracts.envelope import decode_event
from contracts.events.vulndb import VulnDbUpdated
from services.scanner.domain.model import Component
from shared.settings import Settings
from tests.conftest import StartService
from tests.integration.test_gateway_support import gateway_api, stream_count
from tests.integration.test_vulndb_support import (
    CSV,
    EPSS_CSV,
    T1,
    ZIP,
    first_bundle,
    memory_of,
    osv,
    row_counts,
    vulndb_api,
    zip_of,
)


async def _events(api: Any) -> list[VulnDbUpdated]:
    """Every vulndb.updated on the stream, in order."""
    js = api.runtime.bus.js
    sub = await js.pull_subscribe("vulndb.updated", stream=api.runtime.bus.stream)
    found: list[VulnDbUpdated] = []
    try:
        msgs = await sub.fetch(100, timeout=2)
    except TimeoutError:
        msgs = []
    for msg in msgs:
        event = decode_event(msg.data, sequence=msg.metadata.sequence.stream)
        assert isinstance(event.payload, VulnDbUpdated)
        found.append(event.payload)
    await sub.unsubscribe()
    return found


def _matches(scanner: Any, purl: str) -> list[tuple[str, tuple[str, ...]]]:
    index = memory_of(scanner).index
    component = Component(ref="c", name="x", version=purl.rsplit("@", 1)[1], purl=purl)
    return [(m.group_id, m.advisory_ids) for m in index.match([component])]


async def test_import_status_lookup_and_incremental_reimport(
    start_service: StartService, settings: Settings
) -> None:
    async with vulndb_api(start_service) as api:
        _, viewer = await api.new_key("VIEWER")

        first = await api.call(
            "POST", "/api/v1/vulndb/import", data=zip_of(first_bundle()), headers=ZIP
        )
        assert first.status == 200, first.body
        body = first.body
        assert body["source"] == "osv" and body["format"] == "zip"
        assert body["counts"] == {
            "added": 3,
            "updated": 0,
            "withdrawn": 1,
            "unchanged": 0,
            "rejected": 2,
        }
        assert body["counts_by_ecosystem"]["Go"]["added"] == 1
        assert body["counts_by_ecosystem"]["PyPI"] == {
            "added": 2,
            "updated": 0,
            "withdrawn": 1,
            "unchanged": 0,
            "rejected": 1,
        }
        assert body["counts_by_ecosystem"]["unknown"]["rejected"] == 1
        assert body["skipped_files"] == 1 and body["changed_advisories"] == 4
        rejected = {(r.get("id"), r["file"], r["location"], r["code"]) for r in body["rejected"]}
        assert rejected == {
            (
                "PYSEC-2024-2",
                "PyPI/PYSEC-2024-2.json",
                "$.affected[0].ranges[0].events[1]",
                "osv_broken_ranges",
            ),
            (None, "PyPI/garbage.json", "$", "osv_malformed"),
        }

        status = await api.call("GET", "/api/v1/vulndb/status", token=viewer)
        assert status.status == 200, status.body
        s = status.body
        assert (s["advisories"], s["withdrawn"]) == (3, 1)
        assert s["by_ecosystem"] == {"Go": 1, "PyPI": 2}
        assert s["last_import"]["import_id"] == body["import_id"]
        assert s["last_import"]["actor"].startswith("apikey:")
        assert s["last_import"]["counts"] == body["counts"]
        assert s["last_epss_import"] is None
        assert s["epss"] == {"count": 0, "as_of": None, "model_version": None}
        assert s["version"] == body["sequence"]

        by_alias = await api.call("GET", "/api/v1/vulndb/advisories/CVE-2024-1000", token=viewer)
        assert by_alias.status == 200, by_alias.body
        a = by_alias.body
        assert (a["id"], a["requested"], a["group_id"]) == (
            "GHSA-aaaa-bbbb-cccc",
            "CVE-2024-1000",
            "CVE-2024-1000",
        )
        assert a["aliases"] == ["CVE-2024-1000", "GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1"]
        assert a["group_advisories"] == ["GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1"]
        assert (a["severity"], a["cvss_score"], a["severity_source"]) == (
            "HIGH",
            None,
            "database_specific",
        )
        assert a["advisory"]["id"] == "GHSA-aaaa-bbbb-cccc"  # the OSV document as imported
        assert a["packages"] == [{"ecosystem": "PyPI", "package": "demo"}]

        pysec = (await api.call("GET", "/api/v1/vulndb/advisories/PYSEC-2024-1")).body
        assert (pysec["severity"], pysec["cvss_score"]) == ("CRITICAL", 9.8)
        withdrawn = (await api.call("GET", "/api/v1/vulndb/advisories/PYSEC-2023-9")).body
        assert withdrawn["withdrawn"] is not None and withdrawn["group_id"] == "PYSEC-2023-9"
        missing = await api.call("GET", "/api/v1/vulndb/advisories/CVE-1999-0001")
        assert missing.status == 404 and missing.code == "advisory_not_found"
        broken = await api.call("GET", "/api/v1/vulndb/advisories/PYSEC-2024-2")
        assert broken.status == 404  # rejected, so never stored

        # The second import: one advisory withdrawn, one newer, one older, one the same.
        second = {
            "PYSEC-2024-1.json": osv(
                "PYSEC-2024-1", modified=T1, withdrawn=T1, aliases=("CVE-2024-1000",)
            ),
            "GO-2024-0001.json": osv(
                "GO-2024-0001",
                modified=T1,
                ecosystem="Go",
                name="golang.org/x/net",
                range_type="SEMVER",
                events=[{"introduced": "0"}, {"fixed": "0.20.0"}],
                aliases=("CVE-2024-2000",),
            ),
            "GHSA-aaaa-bbbb-cccc.json": first_bundle()["PyPI/GHSA-aaaa-bbbb-cccc.json"],
            "PYSEC-2024-3.json": osv("PYSEC-2024-3", name="Other_Pkg", aliases=("CVE-2024-3000",)),
        }
        again = await api.call("POST", "/api/v1/vulndb/import", data=zip_of(second), headers=ZIP)
        assert again.status == 200, again.body
        assert again.body["counts"] == {
            "added": 1,
            "updated": 1,
            "withdrawn": 1,
            "unchanged": 1,
            "rejected": 0,
        }
        status = (await api.call("GET", "/api/v1/vulndb/status")).body
        assert (status["advisories"], status["withdrawn"]) == (3, 2)
        group = (await api.call("GET", "/api/v1/vulndb/advisories/CVE-2024-1000")).body
        assert group["aliases"] == ["CVE-2024-1000", "GHSA-aaaa-bbbb-cccc"]

        events = await _events(api)
        assert [e.counts.added for e in events] == [3, 1]
        latest = events[-1]
        assert latest.changed_advisory_ids == ["GO-2024-0001", "PYSEC-2024-1", "PYSEC-2024-3"]
        assert [(p.ecosystem, p.package) for p in latest.changed_packages] == [
            ("Go", "golang.org/x/net"),
            ("PyPI", "demo"),
            ("PyPI", "other-pkg"),
        ]
        assert latest.rematch_all is False and latest.digest.startswith("sha256:")


async def test_the_matcher_follows_imports(start_service: StartService) -> None:
    scanner = await start_service("scanner")
    async with gateway_api(start_service) as api:
        memory = memory_of(scanner)
        await memory.wait_loaded()
        reply = await api.call(
            "POST", "/api/v1/vulndb/import", data=zip_of(first_bundle()), headers=ZIP
        )
        assert reply.status == 200, reply.body
        assert memory.version == reply.body["sequence"]
        assert _matches(scanner, "pkg:pypi/demo@1.0") == [
            ("CVE-2024-1000", ("GHSA-aaaa-bbbb-cccc", "PYSEC-2024-1"))
        ]
        assert _matches(scanner, "pkg:pypi/demo@1.2.0") == []
        assert _matches(scanner, "pkg:golang/golang.org/x/net@v0.16.0") == [
            ("CVE-2024-2000", ("GO-2024-0001",))
        ]
        assert _matches(scanner, "pkg:pypi/old@0.1") == []  # withdrawn

        withdraw = zip_of(
            {"a.json": osv("PYSEC-2024-1", modified=T1, withdrawn=T1, aliases=("CVE-2024-1000",))}
        )
        reply = await api.call("POST", "/api/v1/vulndb/import", data=withdraw, headers=ZIP)
        assert reply.status == 200 and memory.version == reply.body["sequence"]
        assert _matches(scanner, "pkg:pypi/demo@1.0") == [
            ("CVE-2024-1000", ("GHSA-aaaa-bbbb-cccc",))
        ]

        epss = await api.call("POST", "/api/v1/vulndb/epss", data=EPSS_CSV.encode(), headers=CSV)
        assert epss.status == 200, epss.body
        assert memory.epss(["CVE-2024-1000", "CVE-2024-9999"]) == {"CVE-2024-1000": (0.97, 0.999)}
        assert str(memory.epss_as_of) == "2024-05-02"

    # A restart loads the same database from the tables.
    restarted = await start_service("scanner")
    fresh = memory_of(restarted)
    await fresh.wait_loaded()
    assert fresh.version == memory.version
    assert fresh.index.counts_by_ecosystem() == memory.index.counts_by_ecosystem()
    assert fresh.epss(["CVE-2024-1000"]) == {"CVE-2024-1000": (0.97, 0.999)}
    assert _matches(restarted, "pkg:pypi/demo@1.0") == [("CVE-2024-1000", ("GHSA-aaaa-bbbb-cccc",))]


async def test_epss_import_plain_gzip_and_refused(
    start_service: StartService, settings: Settings
) -> None:
    async with vulndb_api(start_service) as api:
        await api.call("POST", "/api/v1/vulndb/import", data=zip_of(first_bundle()), headers=ZIP)
        plain = await api.call("POST", "/api/v1/vulndb/epss", data=EPSS_CSV.encode(), headers=CSV)
        assert plain.status == 200, plain.body
        assert plain.body["format"] == "csv" and plain.body["epss_as_of"] == "2024-05-02"
        assert plain.body["epss_model_version"] == "v2023.03.01"
        assert plain.body["counts"]["added"] == 2 and plain.body["rematch_all"] is False

        newer = EPSS_CSV.replace("2024-05-02", "2024-05-03").replace("0.97000", "0.50000")
        packed = await api.call(
            "POST",
            "/api/v1/vulndb/epss",
            data=gzip.compress(newer.encode()),
            headers={"Content-Type": "application/gzip"},
        )
        assert packed.status == 200, packed.body
        assert packed.body["format"] == "csv.gz"
        assert packed.body["counts"] == {
            "added": 0,
            "updated": 2,
            "withdrawn": 0,
            "unchanged": 0,
            "rejected": 0,
        }
        status = (await api.call("GET", "/api/v1/vulndb/status")).body
        assert status["epss"] == {"count": 2, "as_of": "2024-05-03", "model_version": "v2023.03.01"}
        assert status["last_epss_import"]["import_id"] == packed.body["import_id"]
        detail = (await api.call("GET", "/api/v1/vulndb/advisories/PYSEC-2024-1")).body
        assert detail["epss"] == [
            {"cve": "CVE-2024-1000", "score": 0.5, "percentile": 0.999, "as_of": "2024-05-03"}
        ]

        # An older file changes nothing.
        older = await api.call("POST", "/api/v1/vulndb/epss", data=EPSS_CSV.encode(), headers=CSV)
        assert older.body["counts"]["unchanged"] == 2
        detail = (await api.call("GET", "/api/v1/vulndb/advisories/CVE-2024-1000")).body
        assert detail["epss"][0]["score"] == 0.5

        # A malformed file is refused whole, naming the lines; nothing is published.
        before, rows = await stream_count(api.runtime), await row_counts(settings)
        bad = EPSS_CSV + "CVE-2024-4000,0.2\nCVE-2024-5000,high,0.1\n"
        refused = await api.call("POST", "/api/v1/vulndb/epss", data=bad.encode(), headers=CSV)
        assert refused.status == 422 and refused.code == "epss_malformed"
        assert refused.body["location"] == "line 5"
        assert [e["line"] for e in refused.body["errors"]] == [5, 6]
        undated = await api.call(
            "POST", "/api/v1/vulndb/epss", data=b"cve,epss,percentile\n", headers=CSV
        )
        assert undated.status == 422 and undated.body["location"] == "line 1"
        assert await stream_count(api.runtime) == before
        assert await row_counts(settings) == rows


async def test_refusals_write_nothing(start_service: StartService, settings: Settings) -> None:
    async with vulndb_api(start_service, max_upload_bytes=64 * 1024) as api:
        _, operator = await api.new_key("OPERATOR")
        good = zip_of(first_bundle())
        before, rows = await stream_count(api.runtime), await row_counts(settings)

        async def refused(
            data: bytes, headers: dict[str, str], status: int, code: str, **kw: Any
        ) -> Any:
            reply = await api.call(
                "POST", "/api/v1/vulndb/import", data=data, headers=headers, **kw
            )
            assert (reply.status, reply.code) == (status, code), reply.body
            assert reply.headers["Content-Type"].startswith("application/problem+json")
            return reply

        await refused(good, {"Content-Type": "application/json"}, 415, "unsupported_media_type")
        await refused(good, {}, 415, "unsupported_media_type")
        await refused(good, ZIP, 403, "forbidden", token=operator)
        await refused(b"", ZIP, 422, "empty_body")
        await refused(b"x" * (64 * 1024 + 1), ZIP, 413, "payload_too_large")
        not_zip = await refused(b"hello, this is text", ZIP, 422, "archive_invalid")
        assert "not a zip" in not_zip.body["detail"]
        truncated = await refused(good[: len(good) // 2], ZIP, 422, "archive_invalid")
        assert truncated.body["detail"]
        traversal = await refused(
            zip_of({"ok.json": osv("OK"), "../../etc/evil.json": osv("EVIL")}),
            ZIP,
            422,
            "archive_path_traversal",
        )
        assert traversal.body["location"] == "../../etc/evil.json"
        await refused(zip_of({"bomb.json": b"\0" * (8 << 20)}), ZIP, 422, "archive_bomb")
        await refused(zip_of({"notes.txt": b"hi"}), ZIP, 422, "osv_no_advisories")
        epss = await api.call("POST", "/api/v1/vulndb/epss", data=EPSS_CSV.encode(), headers=ZIP)
        assert epss.status == 415

        assert await stream_count(api.runtime) == before
        assert await row_counts(settings) == rows

        # The upload route is documented as a binary body.
        doc = (await api.call("GET", "/api/openapi.json")).body
        op = doc["paths"]["/api/v1/vulndb/import"]["post"]
        assert op["requestBody"]["content"]["application/zip"]["schema"]["format"] == "binary"
        assert op["x-required-roles"] == ["ADMIN"]


async def test_reads_answer_503_when_the_scanner_is_down(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        reply = await api.call("GET", "/api/v1/vulndb/status")
        assert reply.status == 503 and reply.code == "upstream_unavailable"
        upload = await api.call(
            "POST", "/api/v1/vulndb/import", data=zip_of(first_bundle()), headers=ZIP
        )
        assert upload.status == 503


async def test_an_upload_with_an_idempotency_key_is_imported_once(
    start_service: StartService,
) -> None:
    async with vulndb_api(start_service) as api:
        bundle = zip_of(first_bundle())
        key = {"Idempotency-Key": "vulndb-import-1", **ZIP}
        first = await api.call("POST", "/api/v1/vulndb/import", data=bundle, headers=key)
        again = await api.call("POST", "/api/v1/vulndb/import", data=bundle, headers=key)
        assert first.status == again.status == 200
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.body["import_id"] == first.body["import_id"]
        other = await api.call(
            "POST", "/api/v1/vulndb/import", data=zip_of({"x.json": osv("X")}), headers=key
        )
        assert other.status == 422 and other.code == "idempotency_key_reused"
        assert len(await _events(api)) == 1
