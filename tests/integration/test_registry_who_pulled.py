"""Who pulled: ``download.recorded`` events (published here as the gateway's download
handlers publish them) projected by the scanner and asked over HTTP — by purl with and
without a version, by digest, within since/until, page by page, within a project-scoped
key's project, AUDITOR or ADMIN only; the artifact's pull count and last download; a
replay from zero giving identical tables; and the whole way, from real downloads of a
generic file through the gateway."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from services.registry import definition
from services.scanner.pulls.projection import NAME
from services.scanner.pulls.store import PROJECTION_TABLES
from shared.jobs import projection_caught_up
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, table_digest, wait_until
from tests.integration.registry_meta_support import Registry, registry
from tests.integration.retention_support import pulls_applied, record_download

T0 = dt.datetime(2030, 1, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
WHO = "/api/v1/security/who-pulled"


async def who(r: Registry, token: str | None = None, **query: Any) -> Any:
    reply = await r.http("GET", f"{WHO}?{urlencode(query)}", token=token)
    assert reply.status == 200, reply.body
    return reply.body


def pulled(page: Any) -> list[tuple[str, str, str]]:
    return [(p["artifact_id"], p["principal"], p["at"]) for p in page["items"]]


def stamp(at: dt.datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


async def test_who_pulled_by_purl_digest_time_scope_and_pages(
    start_service: StartService, settings: Settings
) -> None:
    async with registry(start_service) as r:
        acme = await r.api.new_project("acme")
        other = await r.api.new_project("other")
        repo = await r.new_repo("acme", "pypi")
        elsewhere = await r.new_repo("other", "pypi")
        one = await r.register(repo["id"], "demo-1.0-py3-none-any.whl", name="Demo", version="1.0")
        two = await r.register(repo["id"], "demo-1.1-py3-none-any.whl", name="demo", version="1.1")
        foreign = await r.register(
            elsewhere["id"], "demo-1.0-py3-none-any.whl", name="demo", version="1.0"
        )
        assert one.purl == "pkg:pypi/demo@1.0"
        # Five downloads an hour apart, of three artifacts, by three kinds of principal.
        plan = [
            (one, "apikey:ci", T0),
            (two, "serviceaccount:sa_deployer", T0 + HOUR),
            (one, "anonymous", T0 + 2 * HOUR),
            (foreign, "apikey:other", T0 + 3 * HOUR),
            (two, "apikey:ci", T0 + 4 * HOUR),
        ]
        last = 0
        for artifact, principal, at in plan:
            last = await record_download(r, artifact, principal=principal, at=at)
        await pulls_applied(r, last)

        # ---- by purl: a version, or every version --------------------------------------
        versioned = await who(r, purl="pkg:pypi/demo@1.0")
        assert pulled(versioned) == [
            (foreign.id, "apikey:other", stamp(T0 + 3 * HOUR)),
            (one.id, "anonymous", stamp(T0 + 2 * HOUR)),
            (one.id, "apikey:ci", stamp(T0)),
        ]
        first = versioned["items"][-1]
        assert (first["repo_id"], first["project_id"], first["digest"], first["address"]) == (
            repo["id"],
            acme["id"],
            one.digest,
            "192.0.2.10",
        )
        # The purl is compared as PyPI names are (PEP 503): Demo_ is demo.
        every = await who(r, purl="pkg:pypi/Demo")
        assert [p[2] for p in pulled(every)] == [stamp(T0 + i * HOUR) for i in (4, 3, 2, 1, 0)]
        assert (await who(r, purl="pkg:pypi/demo@9.9"))["items"] == []
        assert (await who(r, purl="pkg:npm/demo"))["items"] == []

        # ---- by digest, and within since (inclusive) / until (exclusive) ---------------
        by_digest = await who(r, digest=two.digest)
        assert [p[0] for p in pulled(by_digest)] == [two.id, two.id]
        window = await who(
            r, purl="pkg:pypi/demo", since=stamp(T0 + HOUR), until=stamp(T0 + 3 * HOUR)
        )
        assert [p[2] for p in pulled(window)] == [stamp(T0 + 2 * HOUR), stamp(T0 + HOUR)]

        # ---- pages, newest first --------------------------------------------------------
        seen: list[tuple[str, str, str]] = []
        cursor = None
        for _ in range(5):
            query: dict[str, Any] = {"purl": "pkg:pypi/demo", "limit": 2}
            if cursor:
                query["cursor"] = cursor
            page = await who(r, **query)
            seen += pulled(page)
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == pulled(every)

        # ---- roles and scope ------------------------------------------------------------
        _, auditor = await r.api.new_key("AUDITOR")
        _, viewer = await r.api.new_key("VIEWER")
        _, operator = await r.api.new_key("OPERATOR")
        _, scoped = await r.api.new_key("AUDITOR", project=other["id"])
        assert len((await who(r, auditor, purl="pkg:pypi/demo"))["items"]) == 5
        for token in (viewer, operator):
            refused = await r.http("GET", f"{WHO}?purl=pkg:pypi/demo", token=token)
            assert refused.status == 403
        assert pulled(await who(r, scoped, purl="pkg:pypi/demo")) == [
            (foreign.id, "apikey:other", stamp(T0 + 3 * HOUR))
        ]
        assert (await who(r, scoped, digest=two.digest))["items"] == []

        # ---- bad questions: 422 naming the fields ---------------------------------------
        for query, fields in (
            ({}, ["$.purl", "$.digest"]),
            ({"purl": "pkg:pypi/demo", "digest": one.digest}, ["$.purl", "$.digest"]),
            ({"purl": "pkg:/"}, ["$.purl"]),
            (
                {"digest": one.digest, "since": stamp(T0), "until": stamp(T0 - HOUR)},
                ["$.until"],
            ),
        ):
            reply = await r.http("GET", f"{WHO}?{urlencode(query)}")
            assert reply.status == 422 and reply.code == "invalid_who_pulled", reply.body
            assert [e["field"] for e in reply.body["errors"]] == fields
        bad_digest = await r.http("GET", f"{WHO}?digest=md5:abc")
        assert bad_digest.status == 422

        # ---- the artifact shows its downloads -------------------------------------------
        shown = (await r.http("GET", f"/api/v1/artifacts/{one.id}")).body
        assert (shown["pull_count"], shown["last_pulled_at"]) == (2, stamp(T0 + 2 * HOUR))
        listed = (await r.http("GET", f"/api/v1/artifacts?repo={repo['id']}")).body["items"]
        assert {a["id"]: a["pull_count"] for a in listed} == {one.id: 2, two.id: 2}
        # A deleted artifact's downloads are kept: an incident asks about them later.
        await r.http("DELETE", f"/api/v1/repos/{elsewhere['id']}")
        assert len((await who(r, purl="pkg:pypi/demo"))["items"]) == 5

        runner = r.scanner.runners[NAME]
        await wait_until(lambda: projection_caught_up(r.scanner.bus, runner))
        await r.scanner.stop()

    # ---- replay from sequence 0 gives identical tables ----------------------------------
    tables = list(PROJECTION_TABLES)
    live = await table_digest(settings.database_url, "scanner", tables)
    runtime = Runtime(definition("scanner"), settings.with_(service="scanner"))
    await runtime.start(serve=False)
    try:
        assert await runtime.runners[NAME].replay() == 5
    finally:
        await runtime.stop()
    assert await table_digest(settings.database_url, "scanner", tables) == live


async def test_downloads_through_the_gateway_are_recorded(
    start_service: StartService, tmp_path: Path
) -> None:
    """The whole way: a generic file uploaded and downloaded over HTTP (anonymously from a
    public repository, and with a key), then asked for by digest and by purl."""
    async with registry(start_service, data_dir=str(tmp_path)) as r:
        await r.api.new_project("tools")
        await r.new_repo("tools", "files", format="generic", visibility="public")
        key_id, reader = await r.api.new_key("VIEWER")
        url = f"{r.api.base}/generic/tools/files/linux/tool-1.0.bin"
        async with r.api.http.put(url, data=b"tool bytes", headers=_bearer(r.api.admin)) as put:
            assert put.status == 201, await put.text()
            artifact = await put.json()
        for headers in ({}, _bearer(reader)):
            async with r.api.http.get(url, headers=headers) as got:
                assert got.status == 200 and await got.read() == b"tool bytes"

        async def both_recorded() -> bool:
            return len((await who(r, digest=artifact["digest"]))["items"]) == 2

        await wait_until(both_recorded)
        page = await who(r, digest=artifact["digest"])
        assert [(p["principal"], p["address"]) for p in page["items"]] == [
            (f"apikey:{key_id}", "127.0.0.1"),
            ("anonymous", "127.0.0.1"),
        ]
        assert {p["artifact_id"] for p in page["items"]} == {artifact["id"]}
        assert artifact["purl"] == "pkg:generic/tool-1.0.bin"
        assert (await who(r, purl=artifact["purl"]))["items"] == page["items"]
        shown = await r.http("GET", f"/api/v1/artifacts/{artifact['id']}")
        assert shown.body["pull_count"] == 2


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
