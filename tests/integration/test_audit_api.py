"""The audit log over the gateway: GET /api/v1/audit, export.csv and verify, with the audit
service answering over NATS."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest

from contracts.envelope import encode_envelope
from shared.settings import Settings
from tests.conftest import StartService, wait_until
from tests.integration.audit_support import project_created, publish_burst
from tests.integration.test_gateway_support import Api, gateway_api

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


@asynccontextmanager
async def audit_api(start_service: StartService, **overrides: Any) -> AsyncIterator[Api]:
    await start_service("audit")
    async with gateway_api(start_service, **overrides) as api:
        yield api


async def _settled(api: Api) -> None:
    """Wait until the audit log holds everything on the stream."""
    last = await api.runtime.bus.last_sequence()

    async def applied() -> bool:
        # With a short RPC deadline a loaded machine answers 504 (the audit log was still
        # applying the burst): ask again, as a client would.
        reply = await api.call("GET", f"/api/v1/audit?page_size=1&min_sequence={last}")
        assert reply.status in (200, 504), reply.body
        return reply.status == 200

    await wait_until(applied, timeout=60)


def _ids(reply: Any) -> list[str]:
    return [item["event_id"] for item in reply.body["items"]]


async def test_search_filters_and_pages(start_service: StartService) -> None:
    async with audit_api(start_service) as api:
        web = await api.new_project("web-shop", name="Web Shop")
        await api.new_project("billing", name="Billing")
        _, auditor = await api.new_key("AUDITOR")
        await api.call("PATCH", "/api/v1/projects/web-shop", json={"description": "storefront"})
        # Events at known times, from an actor of their own.
        timed = [
            project_created(actor="apikey:timed", at=T0 + dt.timedelta(days=d)) for d in range(3)
        ]
        for envelope in timed:
            await api.runtime.bus.publish_envelope(envelope)
        await _settled(api)

        everything = await api.call("GET", "/api/v1/audit", token=auditor)
        assert everything.status == 200
        body = everything.body
        total = body["total"]
        assert (body["page"], body["page_size"], body["has_more"]) == (1, 50, False)
        sequences = [item["sequence"] for item in body["items"]]
        assert len(sequences) == total and sequences == sorted(sequences, reverse=True)
        first = body["items"][-1]
        assert first["prev_hash"] == "0" * 64 and len(first["hash"]) == 64
        assert first["event"]["id"] == first["event_id"]  # the whole envelope, as JSON

        mine = await api.call("GET", f"/api/v1/audit?aggregate=project:{web['id']}")
        assert [i["type"] for i in mine.body["items"]] == ["project.updated", "project.created"]
        assert mine.body["items"][1]["event"]["data"]["slug"] == "web-shop"
        assert mine.body["items"][0]["correlation_id"]  # the request id of the PATCH

        by_type = await api.call("GET", "/api/v1/audit?type=apikey.created")
        assert by_type.body["total"] == 2  # the bootstrap key and the auditor's
        by_actor = await api.call("GET", "/api/v1/audit?actor=apikey:timed")
        assert _ids(by_actor) == [e.id for e in reversed(timed)]
        window = await api.call(
            "GET", "/api/v1/audit?from=2024-03-02T00:00:00Z&to=2024-03-03T00:00:00Z"
        )
        assert _ids(window) == [timed[1].id]
        since = await api.call(
            "GET", "/api/v1/audit?actor=apikey:timed&from=2024-03-02T00:00:00%2B00:00"
        )
        assert _ids(since) == [timed[2].id, timed[1].id]

        # Full text over the event's values.
        for q in ("shop", "storefront", '"web shop"', "billing -web"):
            found = await api.call("GET", f"/api/v1/audit?q={q}")
            assert found.body["total"] == 1, (q, found.body)
        nothing = await api.call("GET", "/api/v1/audit?q=nonexistentword&type=project.created")
        assert nothing.body == {
            "items": [],
            "page": 1,
            "page_size": 50,
            "total": 0,
            "has_more": False,
        }

        # Pages of two, newest first, no entry twice.
        seen: list[int] = []
        page = 1
        while True:
            reply = await api.call("GET", f"/api/v1/audit?page_size=2&page={page}")
            assert reply.body["total"] == total and len(reply.body["items"]) <= 2
            seen += [item["sequence"] for item in reply.body["items"]]
            if not reply.body["has_more"]:
                break
            page += 1
        assert seen == sequences and page == (total + 1) // 2
        beyond = await api.call("GET", f"/api/v1/audit?page_size=2&page={page + 5}")
        assert beyond.body["items"] == [] and beyond.body["has_more"] is False


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page_size=0", "$.page_size"),
        ("page_size=201", "$.page_size"),
        ("page_size=ten", "$.page_size"),
        ("page=0", "$.page"),
        ("from=yesterday", "$.from"),
        ("from=2024-03-01T00:00:00", "$.from"),  # no offset
        ("to=2024-13-01T00:00:00Z", "$.to"),
        ("from=2024-03-02T00:00:00Z&to=2024-03-01T00:00:00Z", "$.to"),
        ("min_sequence=-1", "$.min_sequence"),
        ("q=" + "x" * 201, "$.q"),
        ("actor=", "$.actor"),
    ],
)
async def test_bad_query_parameters_are_422_naming_the_field(
    start_service: StartService, query: str, field: str
) -> None:
    async with audit_api(start_service) as api:
        for path in ("/api/v1/audit", "/api/v1/audit/export.csv"):
            if path.endswith(".csv") and field in ("$.page", "$.page_size"):
                continue  # the export has no pages
            reply = await api.call("GET", f"{path}?{query}")
            assert reply.status == 422, (path, query, reply.body)
            assert reply.headers["Content-Type"].startswith("application/problem+json")
            assert reply.code == "validation_failed"
            assert reply.body["errors"][0]["field"] == field, reply.body


async def test_csv_export_streams_every_match_oldest_first(start_service: StartService) -> None:
    async with audit_api(start_service) as api:
        project = await api.new_project("exported", name="=cmd|' /C calc'!A0")
        await api.call("PATCH", "/api/v1/projects/exported", json={"description": "d"})
        await _settled(api)
        listed = await api.call("GET", f"/api/v1/audit?aggregate=project:{project['id']}")
        reply = await api.call("GET", f"/api/v1/audit/export.csv?aggregate=project:{project['id']}")
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in reply.headers["Content-Disposition"]
        assert (reply.headers["X-Export-Total"], reply.headers["X-Export-Rows"]) == ("2", "2")
        assert reply.headers["X-Export-Truncated"] == "false"
        assert reply.headers["X-Export-Limit"] == "100000"
        rows = list(csv.DictReader(io.StringIO(reply.body)))
        assert [r["event_id"] for r in rows] == [
            i["event_id"] for i in reversed(listed.body["items"])
        ]
        for row, item in zip(rows, reversed(listed.body["items"]), strict=True):
            assert int(row["sequence"]) == item["sequence"]
            assert (row["type"], row["aggregate"], row["hash"]) == (
                item["type"],
                item["aggregate"],
                item["hash"],
            )
            assert msgspec.json.decode(row["event"]) == item["event"]
        # The name is inside the event JSON, which starts with "{": nothing to neutralise.
        assert "=cmd" in rows[0]["event"]

        everything = await api.call("GET", "/api/v1/audit/export.csv")
        lines = everything.body.split("\r\n")
        assert lines[0].startswith("sequence,event_id,occurred_at,type,")
        assert len(list(csv.DictReader(io.StringIO(everything.body)))) == int(
            everything.headers["X-Export-Total"]
        )
        empty = await api.call("GET", "/api/v1/audit/export.csv?type=no.such")
        assert empty.status == 200 and empty.body.strip() == lines[0]
        assert empty.headers["X-Export-Total"] == "0"


async def test_csv_export_is_capped(start_service: StartService) -> None:
    # A cap over two pages of the audit service (500 rows each) but under the match count.
    async with audit_api(start_service, audit_export_max_rows=700) as api:
        await publish_burst(
            api.runtime.bus, [project_created(actor="apikey:bulk") for _ in range(800)]
        )
        await _settled(api)
        reply = await api.call("GET", "/api/v1/audit/export.csv?actor=apikey:bulk")
        assert reply.status == 200
        assert reply.headers["X-Export-Truncated"] == "true"
        assert (reply.headers["X-Export-Total"], reply.headers["X-Export-Rows"]) == ("800", "700")
        assert reply.headers["X-Export-Limit"] == "700"
        rows = list(csv.DictReader(io.StringIO(reply.body)))
        sequences = [int(r["sequence"]) for r in rows]
        assert len(sequences) == 700 and sequences == sorted(set(sequences))
        assert {r["actor"] for r in rows} == {"apikey:bulk"}
        small = await api.call(
            "GET", "/api/v1/audit/export.csv?actor=apikey:bulk&q=nothing-like-it"
        )
        assert small.headers["X-Export-Truncated"] == "false"


async def test_verify_reports_the_first_tampered_entry(
    start_service: StartService, settings: Settings
) -> None:
    async with audit_api(start_service) as api:
        for slug in ("one", "two", "three"):
            await api.new_project(slug)
        await _settled(api)
        sound = await api.call("GET", "/api/v1/audit/verify")
        assert sound.status == 200
        checked = sound.body["checked"]
        assert sound.body["ok"] is True and sound.body["first_bad_sequence"] is None
        assert checked == await api.runtime.bus.last_sequence()
        assert sound.body["head_sequence"] == checked and len(sound.body["head_hash"]) == 64

        target = (await api.call("GET", "/api/v1/audit?type=project.created&page_size=1")).body
        sequence = target["items"][0]["sequence"]
        conn = await asyncpg.connect(settings.database_url)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute(
                    "UPDATE audit.entries SET event = replace(event, '\"three\"', '\"thr33\"') "
                    "WHERE sequence = $1",
                    sequence,
                )
        finally:
            await conn.close()
        broken = await api.call("GET", "/api/v1/audit/verify")
        assert broken.status == 200
        assert (broken.body["ok"], broken.body["first_bad_sequence"]) == (False, sequence)
        assert broken.body["checked"] == sequence and "hash" in broken.body["problem"]


async def test_min_sequence_reads_your_write(start_service: StartService) -> None:
    async with audit_api(start_service) as api:
        for _ in range(3):
            project = await api.new_project()
            reply = await api.call(
                "GET",
                f"/api/v1/audit?aggregate=project:{project['id']}&min_sequence={project['version']}",
            )
            assert [i["sequence"] for i in reply.body["items"]] == [project["version"]]


async def test_audit_service_down_is_a_503_problem(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        for path in ("/api/v1/audit", "/api/v1/audit/export.csv", "/api/v1/audit/verify"):
            reply = await api.call("GET", path)
            assert reply.status == 503, (path, reply.body)
            assert reply.headers["Content-Type"].startswith("application/problem+json")
            assert reply.code == "upstream_unavailable"
            assert reply.body["request_id"] == reply.headers["X-Request-ID"]


async def test_events_published_directly_are_searchable(start_service: StartService) -> None:
    async with audit_api(start_service) as api:
        envelope = project_created(name="Quarterly Ledger")
        raw = encode_envelope(envelope)
        await api.runtime.bus.js.publish(envelope.type, raw, stream=api.runtime.bus.stream)
        await _settled(api)
        reply = await api.call("GET", "/api/v1/audit?q=ledger")
        assert _ids(reply) == [envelope.id]


async def test_an_export_cut_short_never_looks_whole(start_service: StartService) -> None:
    """The audit service goes away in the middle of an export: the client gets an incomplete
    response (a transfer error), not a CSV that ends cleanly."""
    audit = await start_service("audit")
    # A short RPC deadline: the next page is asked for while the audit service is going.
    async with gateway_api(start_service, rpc_timeout_seconds=1.0) as api:
        # Several pages of the audit service, far more than socket buffers hold, so the
        # gateway is still streaming while the client has read only the start.
        await publish_burst(api.runtime.bus, [project_created() for _ in range(3000)])
        await _settled(api)
        url = f"{api.base}/api/v1/audit/export.csv"
        headers = {"Authorization": f"Bearer {api.admin}"}
        async with api.http.get(url, headers=headers) as response:
            assert response.status == 200
            assert response.headers["X-Export-Rows"] == str(await api.runtime.bus.last_sequence())
            start = await response.content.read(1024)
            assert start.startswith(b"sequence,event_id,")
            await audit.stop()
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
