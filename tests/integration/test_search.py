"""``GET /api/v1/search`` through the gateway over HTTP, with the scanner: ranking (exact,
then prefix, then substring, then fuzzy), typo tolerance (trigram mode), project scope,
pagination, kinds, 422s, and EXPLAINs showing the trigram indexes serve the statements.

Each test runs twice: on the suite's PostgreSQL (the embedded pgserver wheel has no pg_trgm:
``substring`` mode) and on a PostgreSQL with pg_trgm (``trigram`` mode:
``GATEHOUSE_TEST_TRGM_DATABASE_URL``, by default the machine's 127.0.0.1:5432; skipped where
there is none). Data is seeded through the normal APIs: projects, SBOM scans, an OSV import
and registry uploads over the registry RPC (as the package protocols register them).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest

from services.gateway.adapters import search_read
from services.registry import definition
from services.scanner.search import queries
from shared.db import with_database
from shared.search import KindQuery, trigram_schema
from shared.service import Runtime
from shared.settings import Settings
from tests.integration.registry_meta_support import Registry
from tests.integration.test_gateway_support import Api, Reply
from tests.integration.test_scan_support import Pkg, ScanApi, cyclonedx_json
from tests.integration.test_vulndb_support import ZIP, osv, zip_of

TRGM_ADMIN_URL = os.environ.get(
    "GATEHOUSE_TEST_TRGM_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _trigram_admin() -> asyncpg.Connection | None:
    try:
        conn = await asyncio.wait_for(asyncpg.connect(TRGM_ADMIN_URL), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    if not await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'"):
        await conn.close()
        return None
    return conn


@dataclass
class Backend:
    settings: Settings
    trigram: bool  # a PostgreSQL with pg_trgm, on purpose


@pytest.fixture(params=["suite", "trigram"])
async def backend(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Backend]:
    """The suite's database, or a fresh one on a PostgreSQL that has pg_trgm."""
    if request.param == "suite":
        yield Backend(settings, trigram=False)
        return
    admin = await _trigram_admin()
    if admin is None:
        pytest.skip(f"no PostgreSQL with pg_trgm at {TRGM_ADMIN_URL}")
    name = f"t_search_{uuid.uuid4().hex[:10]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(TRGM_ADMIN_URL, name)
        yield Backend(settings.with_(database_url=url), trigram=True)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@dataclass
class Stack:
    api: Api
    scanner: Runtime
    registry: Registry
    scans: ScanApi
    mode: str
    ids: dict[str, str]

    async def search(self, query: str, **kwargs: Any) -> Reply:
        return await self.api.call("GET", f"/api/v1/search?{query}", **kwargs)

    async def hits(self, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        reply = await self.search(query, **kwargs)
        assert reply.status == 200, reply.body
        assert reply.body["mode"] == self.mode
        return list(reply.body["items"])


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[tuple[Runtime, Runtime]]:
    runtimes: list[Runtime] = []
    try:
        for name in ("scanner", "gateway"):
            runtime = Runtime(definition(name), settings.with_(service=name))
            await runtime.start()
            runtimes.append(runtime)
        yield runtimes[0], runtimes[1]
    finally:
        for runtime in reversed(runtimes):
            await runtime.stop()


ADVISORIES = {
    "GHSA-j8r2-6x86-q33q.json": osv(
        "GHSA-j8r2-6x86-q33q",
        name="requests",
        aliases=("CVE-2023-32681", "PYSEC-2023-74"),
        events=[{"introduced": "2.3.0"}, {"fixed": "2.31.0"}],
        summary="Unintended leak of Proxy-Authorization header in requests",
        database_specific={"severity": "MODERATE"},
    ),
    "GHSA-v845-jxx5-vc9f.json": osv(
        "GHSA-v845-jxx5-vc9f",
        name="urllib3",
        aliases=("CVE-2023-43804",),
        events=[{"introduced": "0"}, {"fixed": "1.26.17"}],
        summary="Cookie HTTP header isn't stripped on cross-origin redirects",
        database_specific={"severity": "HIGH"},
    ),
}


@asynccontextmanager
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    """Two projects (acme, zeta), each with a scanned SBOM, a registry repository with
    artifacts and a git repo; two advisories."""
    async with started(settings) as (scanner, gateway), gateway_api_of(gateway) as api:
        registry = Registry(api=api, scanner=scanner)
        scans = ScanApi(api=api, scanner=scanner)
        imported = await api.call(
            "POST", "/api/v1/vulndb/import", data=zip_of(ADVISORIES), headers=ZIP
        )
        assert imported.status == 200, imported.body
        acme = await api.new_project("acme-web", name="Acme Web", repos=["acme/web-frontend"])
        zeta = await api.new_project(
            "zeta-tools", name="Zeta Tools", repos=["zeta/requests-helper"]
        )
        await scans.scan(
            "acme-web", cyclonedx_json([Pkg("requests", "2.19.1"), Pkg("urllib3", "1.26.0")])
        )
        await scans.scan(
            "zeta-tools", cyclonedx_json([Pkg("requests", "2.20.0"), Pkg("flask", "2.0.0")])
        )
        mirror = await registry.new_repo("acme-web", "requests-mirror")
        files = await registry.new_repo("zeta-tools", "zeta-files", format="generic")
        await registry.register(
            mirror["id"],
            "requests-2.31.0-py3-none-any.whl",
            name="requests",
            version="2.31.0",
            purl="pkg:pypi/requests@2.31.0",
        )
        await registry.register(
            mirror["id"],
            "requests_oauthlib-1.3.1-py3-none-any.whl",
            name="requests-oauthlib",
            version="1.3.1",
            purl="pkg:pypi/requests-oauthlib@1.3.1",
        )
        await registry.register(files["id"], "notes/requests.txt", kind="file")
        ids = {"acme": acme["id"], "zeta": zeta["id"], "mirror": mirror["id"], "files": files["id"]}
        mode = "substring" if await trigram_schema(gateway.pool) is None else "trigram"
        yield Stack(api=api, scanner=scanner, registry=registry, scans=scans, mode=mode, ids=ids)


@asynccontextmanager
async def gateway_api_of(gateway: Runtime) -> AsyncIterator[Api]:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        yield Api(runtime=gateway, http=http, admin=gateway.settings.bootstrap_token)


def _ranks(hits: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    return [(-h["score_key"], h["kind"], h["id"]) for h in hits]


async def test_search_ranks_scopes_and_pages(backend: Backend) -> None:
    async with stack(backend.settings) as s:
        if backend.trigram:
            assert s.mode == "trigram", "pg_trgm is there: search must use it"

        # ---- ranking: exact, then prefix, then substring (then fuzzy) -------------------
        hits = await s.hits("q=requests&limit=100")
        assert _ranks(hits) == sorted(_ranks(hits)), "best first, then kind, then id"
        by_title = {(h["kind"], h["title"]): h for h in hits}
        exact = [h for h in hits if h["score"] == 1.0]
        assert {(h["kind"], h["title"]) for h in exact} >= {
            ("artifact", "requests 2.31.0"),
            ("component", "requests 2.19.1"),
            ("component", "requests 2.20.0"),
        }
        prefix = by_title[("repository", "requests-mirror")]
        substring = by_title[("git_repo", "zeta/requests-helper")]
        assert 1.0 > prefix["score"] >= 0.5 > substring["score"] >= 0.25
        assert hits.index(prefix) > max(hits.index(h) for h in exact)
        assert hits.index(substring) > hits.index(prefix)
        assert by_title[("artifact", "requests-oauthlib 1.3.1")]["score"] >= 0.5
        advisory = by_title[("advisory", "GHSA-j8r2-6x86-q33q")]
        assert advisory["url"] == "/api/v1/vulndb/advisories/GHSA-j8r2-6x86-q33q"
        assert advisory["project_id"] is None and "Proxy-Authorization" in advisory["subtitle"]
        artifact = by_title[("artifact", "requests 2.31.0")]
        assert artifact["url"] == f"/api/v1/artifacts/{artifact['id']}"
        assert artifact["project_id"] == s.ids["acme"]
        assert (await s.api.call("GET", artifact["url"])).body["name"] == "requests"
        component = by_title[("component", "requests 2.20.0")]
        assert component["project_id"] == s.ids["zeta"]
        assert component["subtitle"] == "pkg:pypi/requests@2.20.0"
        assert (await s.api.call("GET", component["url"])).status == 200
        repo = by_title[("repository", "requests-mirror")]
        assert repo["url"] == f"/api/v1/repos/{s.ids['mirror']}"
        assert substring["url"] == "/api/v1/repos/zeta/requests-helper/commits"
        assert by_title[("artifact", "notes/requests.txt")]["project_id"] == s.ids["zeta"]

        # An alias, an advisory id, a project and its git repo.
        (first, *_) = await s.hits("q=CVE-2023-32681")
        assert (first["kind"], first["id"], first["score"]) == (
            "advisory",
            "GHSA-j8r2-6x86-q33q",
            1.0,
        )
        assert (await s.hits("q=ghsa-v845"))[0]["id"] == "GHSA-v845-jxx5-vc9f"
        acme = await s.hits("q=acme")
        assert {(h["kind"], h["title"]) for h in acme} == {
            ("project", "Acme Web"),
            ("git_repo", "acme/web-frontend"),
        }
        (project,) = [h for h in acme if h["kind"] == "project"]
        assert project["url"] == f"/api/v1/projects/{s.ids['acme']}"
        assert (await s.hits("q=Acme Web"))[0]["score"] == 1.0

        # ---- typos: trigram mode finds them; substring mode cannot -----------------------
        typo = await s.hits("q=reqeusts&limit=100")
        found = {(h["kind"], h["title"]) for h in typo}
        if s.mode == "trigram":
            assert {("artifact", "requests 2.31.0"), ("component", "requests 2.19.1")} <= found
            assert all(h["score"] < 0.25 for h in typo), "fuzzy hits rank below substrings"
            leak = await s.hits("q=Proxy-Authorisation&kind=advisory")
            assert [h["id"] for h in leak] == ["GHSA-j8r2-6x86-q33q"]
        else:
            assert found == set()

        # ---- kinds ---------------------------------------------------------------------
        only = await s.hits("q=requests&kind=advisory,component&limit=100")
        assert {h["kind"] for h in only} == {"advisory", "component"}
        assert await s.hits("q=requests&kind=project&kind=git_repo") == [
            h for h in hits if h["kind"] in ("project", "git_repo")
        ]

        # ---- pagination: pages of 2 are the one page of 100, in order, once each --------
        paged: list[dict[str, Any]] = []
        cursor = ""
        while True:
            reply = await s.search(f"q=requests&limit=2{cursor}")
            assert reply.status == 200 and len(reply.body["items"]) <= 2
            paged += reply.body["items"]
            if reply.body["next_cursor"] is None:
                break
            cursor = "&cursor=" + quote(reply.body["next_cursor"])
        assert paged == hits and len(hits) >= 8

        # ---- scope: a key of one project finds its own resources and advisories ---------
        _, token = await s.api.new_key("VIEWER", project="acme-web")
        scoped = await s.hits("q=requests&limit=100", token=token)
        assert {h["project_id"] for h in scoped} == {s.ids["acme"], None}
        assert {h["kind"] for h in scoped if h["project_id"] is None} == {"advisory"}
        assert scoped == [h for h in hits if h["project_id"] in (s.ids["acme"], None)]
        assert await s.hits("q=zeta", token=token) == []
        assert {h["project_id"] for h in await s.hits("q=zeta")} == {s.ids["zeta"]}

        # ---- refusals ------------------------------------------------------------------
        for query, field in (
            ("q=r", "$.q"),
            ("q=%20r%20", "$.q"),
            ("q=" + "x" * 201, "$.q"),
            ("", "$.q"),
            ("q=requests&kind=widgets", "$.kind"),
            ("q=requests&limit=0", "$.limit"),
            ("q=requests&limit=501", "$.limit"),
            ("q=requests&cursor=bm90LWEtY3Vyc29y", "$.cursor"),
        ):
            refused = await s.search(query)
            assert refused.status == 422, (query, refused.body)
            assert refused.body["errors"][0]["field"] == field, (query, refused.body)
        assert (await s.search("q=requests", token="gh_not_a_token")).status == 401
        # LIKE's wildcards are taken literally.
        assert await s.hits("q=%25%25") == [] and await s.hits("q=__") == []


async def _plan(conn: asyncpg.Connection, built: KindQuery) -> str:
    """The plan of ``built`` as it runs (with its plan settings)."""
    async with conn.transaction():
        await built.plan_settings(conn)
        rows = await conn.fetch("EXPLAIN " + built.sql, *built.args)
    return "\n".join(row[0] for row in rows)


async def test_the_trigram_indexes_serve_the_statements(backend: Backend) -> None:
    """On a few thousand rows, the statements that run are index scans of the search
    indexes (trigram mode); the plan shape is fixed by the statement, not by statistics."""
    async with started(backend.settings) as (scanner, gateway):
        schema = await trigram_schema(scanner.pool)
        assert schema is not None or not backend.trigram
        if schema is None:
            pytest.skip("substring mode: no pg_trgm, so no trigram index to use")
        async with scanner.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO scanner.advisories (id, modified, ecosystems, aliases, severity, "
                "summary, document, import_id, sequence) SELECT 'GHSA-' || md5(i::text), now(), "
                "'{PyPI}', ARRAY['CVE-2024-' || i], 'HIGH', 'flaw number ' || md5(i::text), "
                "'\\x7b7d', 'seed', i FROM generate_series(1, 5000) i"
            )
            await conn.execute(
                "INSERT INTO scanner.advisory_aliases (advisory_id, alias) "
                "SELECT id, aliases[1] FROM scanner.advisories"
            )
            await conn.execute(
                "INSERT INTO scanner.components (scan_id, ref, name, version, purl, type, "
                "scope, licenses, license_category, license_rank) SELECT 'scan-' || (i % 50), "
                "'ref-' || i, 'package-' || md5(i::text), '1.0', 'pkg:pypi/package-' || "
                "md5(i::text) || '@1.0', 'library', 'required', '[]', 'allowed', 3 "
                "FROM generate_series(1, 5000) i"
            )
            # As autovacuum would: statistics, and the GIN pending lists merged.
            await conn.execute("VACUUM ANALYZE scanner.advisories, scanner.advisory_aliases")
            await conn.execute("VACUUM ANALYZE scanner.components")
            for built, indexes in (
                (
                    queries.advisories("GHSA-c4ca", schema, after=None, limit=51),
                    ("search_advisories_id", "search_advisory_aliases"),
                ),
                (
                    queries.components(
                        "package-c4ca", schema, project_ids=None, after=None, limit=51
                    ),
                    ("search_components_name", "search_components_purl"),
                ),
                (
                    queries.artifacts("requests", schema, project_ids=None, after=None, limit=51),
                    ("search_registry_artifacts_name",),
                ),
            ):
                plan = await _plan(conn, built)
                for index in indexes:
                    assert index in plan, plan
        async with gateway.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO gateway.projects (id, slug, name, description, default_branch, "
                "repos, badge, created_at, created_by, updated_at, version) SELECT "
                "md5(i::text), 'p-' || md5(i::text), 'Project ' || i, '', 'main', '{}', "
                "'private', now(), 'seed', now(), i FROM generate_series(1, 5000) i"
            )
            await conn.execute("VACUUM ANALYZE gateway.projects")
            built = search_read.projects("p-c4ca", schema, project_ids=None, after=None, limit=51)
            assert "search_projects_slug" in await _plan(conn, built)
