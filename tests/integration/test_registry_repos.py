"""Registry repositories and the artifact metadata API over HTTP (gateway → scanner): CRUD,
409 slug taken, ETag / If-Match, roles and project scope, deletion taking the artifacts
with it, and the git routes under ``/api/v1/repos/{owner}/{repo}/…`` still answered by
their own handlers."""

from __future__ import annotations

from tests.conftest import StartService
from tests.integration.registry_meta_support import registry


async def test_repositories_crud_scope_and_the_artifact_reads(start_service: StartService) -> None:
    async with registry(start_service) as r:
        project = await r.api.new_project("acme", repos=["acme/widgets"])
        other = await r.api.new_project("other")

        # ---- create ---------------------------------------------------------------------
        created = await r.http(
            "POST",
            "/api/v1/repos",
            json={
                "project_id": "acme",
                "slug": "pypi-main",
                "format": "pypi",
                "visibility": "public",
                "description": "the main index",
                "quota_bytes": 1000,
            },
        )
        assert created.status == 201, created.body
        repo = created.body
        assert repo["id"].startswith("repo_") and len(repo["id"]) == 37
        assert created.headers["Location"] == f"/api/v1/repos/{repo['id']}"
        assert created.headers["ETag"] == f'"v{repo["revision"]}"'
        assert (repo["project_id"], repo["slug"], repo["format"]) == (
            project["id"],
            "pypi-main",
            "pypi",
        )
        assert (repo["quota_bytes"], repo["quota_artifacts"]) == (1000, None)
        assert (repo["used_bytes"], repo["artifact_count"], repo["quarantine_new"]) == (0, 0, False)

        taken = await r.http(
            "POST",
            "/api/v1/repos",
            json={"project_id": project["id"], "slug": "pypi-main", "format": "generic"},
        )
        assert taken.status == 409 and taken.code == "repository_slug_taken", taken.body
        # An Idempotency-Key retry answers the first creation.
        key = {"Idempotency-Key": "create-files-once"}
        body = {"project_id": "acme", "slug": "files", "format": "generic"}
        once = await r.http("POST", "/api/v1/repos", json=body, headers=key)
        twice = await r.http("POST", "/api/v1/repos", json=body, headers=key)
        assert once.status == twice.status == 201 and once.body["id"] == twice.body["id"]
        assert twice.headers.get("Idempotent-Replayed") == "true"
        await r.http("DELETE", f"/api/v1/repos/{once.body['id']}")
        # The same slug in another project is another repository.
        elsewhere = await r.new_repo("other", "pypi-main", format="generic")
        unknown = await r.http(
            "POST", "/api/v1/repos", json={"project_id": "nope", "slug": "x", "format": "pypi"}
        )
        assert unknown.status == 422 and unknown.code == "unknown_project"
        bad = await r.http(
            "POST",
            "/api/v1/repos",
            json={"project_id": "acme", "slug": "Bad Slug", "format": "pypi"},
        )
        assert bad.status == 422 and bad.body["errors"][0]["field"] == "$.slug"
        wrong = await r.http(
            "POST", "/api/v1/repos", json={"project_id": "acme", "slug": "x", "format": "npm"}
        )
        assert wrong.status == 422 and wrong.body["errors"][0]["field"] == "$.format"

        # ---- list and get ---------------------------------------------------------------
        everything = await r.http("GET", "/api/v1/repos")
        assert [x["id"] for x in everything.body["items"]] == [repo["id"], elsewhere["id"]]
        by_slug = await r.http("GET", "/api/v1/repos?project_id=acme&slug=pypi-main")
        assert [x["id"] for x in by_slug.body["items"]] == [repo["id"]]
        by_id = await r.http("GET", f"/api/v1/repos?project_id={other['id']}")
        assert [x["id"] for x in by_id.body["items"]] == [elsewhere["id"]]
        paged = await r.http("GET", "/api/v1/repos?limit=1")
        assert len(paged.body["items"]) == 1 and paged.body["next_cursor"]
        rest = await r.http("GET", f"/api/v1/repos?limit=1&cursor={paged.body['next_cursor']}")
        assert [x["id"] for x in rest.body["items"]] == [elsewhere["id"]]
        assert rest.body["next_cursor"] is None
        read = await r.http("GET", f"/api/v1/repos/{repo['id']}")
        assert (
            read.status == 200
            and read.body == repo
            and read.headers["ETag"] == created.headers["ETag"]
        )
        missing = await r.http("GET", "/api/v1/repos/repo_" + "0" * 32)
        assert missing.status == 404 and missing.code == "repository_not_found"
        assert (await r.http("GET", "/api/v1/repos/not-an-id")).code == "repository_not_found"

        # ---- update with If-Match -------------------------------------------------------
        etag = created.headers["ETag"]
        changed = await r.http(
            "PATCH",
            f"/api/v1/repos/{repo['id']}",
            json={"quarantine_new": True, "quota_bytes": None, "quota_artifacts": 5},
            headers={"If-Match": etag},
        )
        assert changed.status == 200, changed.body
        assert changed.body["quarantine_new"] and changed.body["quota_bytes"] is None
        assert changed.body["quota_artifacts"] == 5 and changed.headers["ETag"] != etag
        stale = await r.http(
            "PATCH",
            f"/api/v1/repos/{repo['id']}",
            json={"description": "x"},
            headers={"If-Match": etag},
        )
        assert stale.status == 412 and stale.body["current_etag"] == changed.headers["ETag"]
        same = await r.http("PATCH", f"/api/v1/repos/{repo['id']}", json={"quarantine_new": True})
        assert same.status == 200 and same.headers["ETag"] == changed.headers["ETag"]  # no change
        immutable = await r.http("PATCH", f"/api/v1/repos/{repo['id']}", json={"slug": "renamed"})
        assert immutable.status == 422
        assert (await r.counts("repository.>")) == {
            "repository.created": 3,
            "repository.updated": 1,
            "repository.deleted": 1,
        }

        # ---- roles and project scope ----------------------------------------------------
        _, viewer = await r.api.new_key("VIEWER")
        assert (await r.http("GET", "/api/v1/repos", token=viewer)).status == 200
        denied = await r.http(
            "POST",
            "/api/v1/repos",
            json={"project_id": "acme", "slug": "v", "format": "pypi"},
            token=viewer,
        )
        assert denied.status == 403
        _, scoped = await r.api.new_key("OPERATOR", project="other")
        mine = await r.http("GET", "/api/v1/repos", token=scoped)
        assert [x["id"] for x in mine.body["items"]] == [elsewhere["id"]]
        hidden = await r.http("GET", f"/api/v1/repos/{repo['id']}", token=scoped)
        assert hidden.status == 404 and hidden.code == "repository_not_found"
        foreign = await r.http(
            "POST",
            "/api/v1/repos",
            json={"project_id": "acme", "slug": "s", "format": "pypi"},
            token=scoped,
        )
        assert foreign.status == 422 and foreign.code == "unknown_project"
        own = await r.http(
            "POST",
            "/api/v1/repos",
            json={"project_id": "other", "slug": "s", "format": "generic"},
            token=scoped,
        )
        assert own.status == 201, own.body
        assert (await r.http("DELETE", f"/api/v1/repos/{repo['id']}", token=scoped)).status == 404

        # ---- the artifact metadata API --------------------------------------------------
        wheel = await r.register(
            repo["id"], "Demo_Pkg-1.0-py3-none-any.whl", name="Demo_Pkg", version="1.0"
        )
        tool = await r.register(own.body["id"], "bin/tool", kind="file", size=3)
        assert wheel.quarantined  # quarantine_new since the PATCH
        assert wheel.purl == "pkg:pypi/demo-pkg@1.0"
        listed = await r.http("GET", "/api/v1/artifacts")
        assert [a["id"] for a in listed.body["items"]] == [tool.id, wheel.id]  # newest first
        for query, expected in (
            (f"repo={repo['id']}", [wheel.id]),
            ("repo=acme/pypi-main", [wheel.id]),
            (f"repo={other['id']}/s", [tool.id]),
            ("q=DEMO", [wheel.id]),
            ("q=pkg:pypi/demo-pkg", [wheel.id]),
            ("q=bin/", [tool.id]),
            ("q=nothing-like-it", []),
        ):
            reply = await r.http("GET", f"/api/v1/artifacts?{query}")
            assert [a["id"] for a in reply.body["items"]] == expected, query
        bad_repo = await r.http("GET", "/api/v1/artifacts?repo=acme/no-such")
        assert bad_repo.status == 422 and bad_repo.code == "unknown_repository"
        assert (await r.http("GET", "/api/v1/artifacts?repo=plain")).code == "invalid_repo"
        await r.settled()  # its scan on upload passed, which released it
        one = await r.http("GET", f"/api/v1/artifacts/{wheel.id}", token=viewer)
        assert one.status == 200 and one.body["path"] == "Demo_Pkg-1.0-py3-none-any.whl"
        assert one.body["uploaded_by"] == "apikey:uploader" and one.body["scan_status"] == "passed"
        assert one.body["quarantined"] is False
        scoped_list = await r.http("GET", "/api/v1/artifacts", token=scoped)
        assert [a["id"] for a in scoped_list.body["items"]] == [tool.id]
        assert (await r.http("GET", f"/api/v1/artifacts/{wheel.id}", token=scoped)).status == 404
        assert (await r.http("GET", "/api/v1/artifacts/art_x")).code == "artifact_not_found"

        # ---- delete ---------------------------------------------------------------------
        current = await r.http("GET", f"/api/v1/repos/{repo['id']}")
        assert (current.body["used_bytes"], current.body["artifact_count"]) == (10, 1)
        stale_delete = await r.http(
            "DELETE", f"/api/v1/repos/{repo['id']}", headers={"If-Match": etag}
        )
        assert stale_delete.status == 412
        gone = await r.http(
            "DELETE", f"/api/v1/repos/{repo['id']}", headers={"If-Match": current.headers["ETag"]}
        )
        assert gone.status == 204
        assert (await r.http("GET", f"/api/v1/repos/{repo['id']}")).status == 404
        assert (await r.http("GET", f"/api/v1/artifacts/{wheel.id}")).status == 404
        after = await r.http("GET", "/api/v1/artifacts")
        assert [a["id"] for a in after.body["items"]] == [tool.id]
        # The slug is free again: a new repository, empty.
        again = await r.new_repo("acme", "pypi-main")
        assert again["id"] != repo["id"] and again["artifact_count"] == 0

        # ---- the git routes under /api/v1/repos/{owner}/{repo}/ are not shadowed --------
        for path in (
            "/api/v1/repos/acme/widgets/commits",
            f"/api/v1/repos/acme/widgets/commits/{'a' * 40}",
            "/api/v1/repos/acme/widgets/git",
        ):
            reply = await r.http("GET", path)
            # No signature-verifier runs here: their own handlers ask it and get no answer.
            assert reply.status == 503 and reply.code == "upstream_unavailable", (path, reply.body)
