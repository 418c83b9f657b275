"""Projects over HTTP: read-your-writes, slugs, ETag / If-Match, archive, lists."""

from __future__ import annotations

import asyncio

from tests.conftest import StartService
from tests.integration.test_gateway_support import gateway_api, row_count


async def test_create_then_read_sees_it_every_time(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        for i in range(25):
            project = await api.new_project(f"ryw-{i}", repos=[f"acme/r{i}"])
            reply = await api.call("GET", f"/api/v1/projects/ryw-{i}")
            assert reply.status == 200, reply.body
            assert reply.body["id"] == project["id"] and reply.body["repos"] == [f"acme/r{i}"]
            assert reply.headers["ETag"] == f'"v{project["version"]}"'
            patched = await api.call(
                "PATCH", f"/api/v1/projects/{project['id']}", json={"name": f"n{i}"}
            )
            assert patched.status == 200
            again = await api.call("GET", f"/api/v1/projects/ryw-{i}")
            assert (
                again.body["name"] == f"n{i}" and again.headers["ETag"] == patched.headers["ETag"]
            )


async def test_create_answers_201_with_location_and_etag(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        reply = await api.call(
            "POST",
            "/api/v1/projects",
            json={"slug": "web", "name": "Web", "repos": ["acme/web"], "badge": "public"},
        )
        assert reply.status == 201
        body = reply.body
        assert reply.headers["Location"] == f"/api/v1/projects/{body['id']}"
        assert reply.headers["ETag"] == f'"v{body["version"]}"'
        assert body["slug"] == "web" and body["default_branch"] == "main"
        assert body["archived"] is False and body["created_by"].startswith("apikey:")
        fresh = await api.call(
            "GET", "/api/v1/projects/web", headers={"If-None-Match": reply.headers["ETag"]}
        )
        assert fresh.status == 304


async def test_slug_is_unique_even_after_archiving(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        await api.new_project("taken")
        again = await api.call("POST", "/api/v1/projects", json={"slug": "taken", "name": "B"})
        assert (again.status, again.code) == (409, "slug_taken")
        assert again.headers["Content-Type"].startswith("application/problem+json")
        assert (await api.call("DELETE", "/api/v1/projects/taken")).status == 204
        after = await api.call("POST", "/api/v1/projects", json={"slug": "taken", "name": "C"})
        assert after.code == "slug_taken"
        uuid_like = await api.call(
            "POST",
            "/api/v1/projects",
            json={"slug": "0190f3a2-7c1e-7d2a-9a51-0c2f3e4b5a6d", "name": "x"},
        )
        assert uuid_like.status == 422 and uuid_like.body["errors"][0]["field"] == "$.slug"


async def test_if_match_guards_updates(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        project = await api.new_project("guarded")
        read = await api.call("GET", "/api/v1/projects/guarded")
        etag = read.headers["ETag"]
        first = await api.call(
            "PATCH",
            "/api/v1/projects/guarded",
            json={"description": "one"},
            headers={"If-Match": etag},
        )
        assert first.status == 200 and first.headers["ETag"] != etag
        stale = await api.call(
            "PATCH",
            "/api/v1/projects/guarded",
            json={"description": "two"},
            headers={"If-Match": etag},
        )
        assert (stale.status, stale.code) == (412, "precondition_failed")
        assert stale.body["current_etag"] == first.headers["ETag"]
        current = await api.call("GET", f"/api/v1/projects/{project['id']}")
        assert current.body["description"] == "one"
        # A PATCH that changes nothing records nothing and keeps the ETag.
        same = await api.call("PATCH", "/api/v1/projects/guarded", json={"description": "one"})
        assert same.status == 200 and same.headers["ETag"] == first.headers["ETag"]
        bad_delete = await api.call(
            "DELETE", "/api/v1/projects/guarded", headers={"If-Match": '"v1"'}
        )
        assert bad_delete.status == 412
        slug_change = await api.call("PATCH", "/api/v1/projects/guarded", json={"slug": "new"})
        assert slug_change.status == 422 and slug_change.body["errors"][0]["field"] == "$.slug"


async def test_archive_hides_from_list_and_freezes(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        for slug in ("a-live", "b-gone", "c-live"):
            await api.new_project(slug)
        assert (await api.call("DELETE", "/api/v1/projects/b-gone")).status == 204
        assert (await api.call("DELETE", "/api/v1/projects/b-gone")).status == 204  # no-op
        listing = await api.call("GET", "/api/v1/projects")
        assert [p["slug"] for p in listing.body["items"]] == ["a-live", "c-live"]
        everything = await api.call("GET", "/api/v1/projects?include_archived=true")
        assert [p["slug"] for p in everything.body["items"]] == ["a-live", "b-gone", "c-live"]
        archived = await api.call("GET", "/api/v1/projects/b-gone")
        assert archived.status == 200 and archived.body["archived"] is True
        frozen = await api.call("PATCH", "/api/v1/projects/b-gone", json={"name": "x"})
        assert (frozen.status, frozen.code) == (409, "project_archived")
        missing = await api.call("DELETE", "/api/v1/projects/nope")
        assert (missing.status, missing.code) == (404, "not_found")


async def test_list_pages_through_every_project_once(start_service: StartService) -> None:
    async with gateway_api(start_service) as api:
        slugs = sorted(f"page-{i:02d}" for i in range(7))
        for slug in slugs:
            await api.new_project(slug)
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            query = "?limit=3" + (f"&cursor={cursor}" if cursor else "")
            page = await api.call("GET", f"/api/v1/projects{query}")
            assert page.status == 200
            seen += [p["slug"] for p in page.body["items"]]
            cursor = page.body["next_cursor"]
            if cursor is None:
                break
        assert seen == slugs
        default = await api.call("GET", "/api/v1/projects")
        assert len(default.body["items"]) == 7 and default.body["next_cursor"] is None
        for bad in ("limit=0", "limit=501", "limit=ten"):
            reply = await api.call("GET", f"/api/v1/projects?{bad}")
            assert reply.status == 422 and reply.body["errors"][0]["field"] == "$.limit", bad
        bad_cursor = await api.call("GET", "/api/v1/projects?cursor=%%%")
        assert (bad_cursor.status, bad_cursor.code) == (422, "invalid_cursor")


async def test_policy_authors_manage_projects_but_do_not_archive(
    start_service: StartService,
) -> None:
    async with gateway_api(start_service) as api:
        _, author = await api.new_key("POLICY_AUTHOR")
        _, viewer = await api.new_key("VIEWER")
        created = await api.call(
            "POST", "/api/v1/projects", token=author, json={"slug": "pa", "name": "P"}
        )
        assert created.status == 201
        assert (
            await api.call("PATCH", "/api/v1/projects/pa", token=author, json={"name": "Q"})
        ).status == 200
        assert (await api.call("DELETE", "/api/v1/projects/pa", token=author)).status == 403
        assert (await api.call("GET", "/api/v1/projects/pa", token=viewer)).status == 200
        assert (
            await api.call("PATCH", "/api/v1/projects/pa", token=viewer, json={"name": "R"})
        ).status == 403


async def test_concurrent_creates_of_one_slug_make_one_project(start_service: StartService) -> None:
    # A tiny pool: commands waiting for the projection must not starve it of connections.
    async with gateway_api(start_service, db_pool_max=2) as api:
        body = {"slug": "race", "name": "Race"}
        replies = await asyncio.gather(
            *(api.call("POST", "/api/v1/projects", json=body) for _ in range(8)),
            *(api.new_project(f"many-{i}") for i in range(12)),
        )
        statuses = sorted(reply.status for reply in replies[:8])
        assert statuses == [201] + [409] * 7
        listing = await api.call("GET", "/api/v1/projects?limit=500")
        assert len(listing.body["items"]) == 13
        assert await row_count(api.runtime, "projects") == 13
