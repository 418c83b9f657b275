"""License policy and waivers over HTTP: validation with JSON paths, versions and If-Match,
roles and project scope, the project override and its merge, waiver rules."""

from __future__ import annotations

import datetime as dt

from tests.conftest import StartService
from tests.integration.test_license_support import grant_waiver, put_policy
from tests.integration.test_scan_support import scan_api, subject_counts

ORG = "/api/v1/license-policy"


async def test_policy_validation_versions_and_if_match(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        fresh = await s.call("GET", ORG)
        assert fresh.status == 200 and fresh.headers["ETag"] == '"v0"'
        assert fresh.body["version"] == 0 and fresh.body["document"]["default"] == "unknown"

        bad = await put_policy(
            s, {"allowed": ["MIT", "Not-A-License"], "forbidden": ["GPL-2.0-only OR MIT"]}
        )
        assert bad.status == 422 and bad.code == "license_policy_invalid", bad.body
        assert [e["field"] for e in bad.body["errors"]] == ["$.allowed[1]", "$.forbidden[0]"]
        assert "expression" in bad.body["errors"][1]["message"]
        twice = await put_policy(s, {"allowed": ["MIT"], "forbidden": ["mit"]})
        assert twice.status == 422 and twice.body["errors"][0]["field"] == "$.forbidden[0]"
        assert "already listed at $.allowed[0]" in twice.body["errors"][0]["message"]
        near = await put_policy(s, {"forbidden": ["AGPL-3.0-onli"]})
        assert "did you mean 'AGPL-3.0-only'" in near.body["errors"][0]["message"]
        shape = await put_policy(s, {"allowed": "MIT"})
        assert shape.status == 422 and shape.body["errors"][0]["field"] == "$.allowed"
        unknown = await put_policy(s, {"allowed": [], "blocked": ["MIT"]})
        assert unknown.status == 422 and unknown.body["errors"][0]["field"] == "$.blocked"
        category = await put_policy(s, {"default": "maybe"})
        assert category.status == 422 and category.body["errors"][0]["field"] == "$.default"
        assert (await subject_counts(s.scanner, "policy.changed")) == {}  # nothing written

        body = {
            "allowed": ["mit", "Apache-2.0", "LicenseRef-acme-internal"],
            "conditional": ["GPL-2.0+", "LGPL-2.1-only WITH Classpath-exception-2.0"],
            "forbidden": ["AGPL-3.0-only"],
            "no_license": "forbidden",
        }
        first = await put_policy(s, body, headers={"If-Match": '"v0"'})
        assert first.status == 200, first.body
        assert first.headers["ETag"] == '"v1"' and first.body["version"] == 1
        document = first.body["document"]
        assert document["allowed"] == ["MIT", "Apache-2.0", "LicenseRef-acme-internal"]
        assert document["conditional"] == [
            "GPL-2.0-or-later",
            "LGPL-2.1-only WITH Classpath-exception-2.0",
        ]
        assert (document["default"], document["unknown"], document["no_license"]) == (
            "unknown",
            "unknown",
            "forbidden",
        )
        assert first.body["updated_by"].startswith("apikey:")

        stale = await put_policy(s, {"allowed": ["MIT"]}, headers={"If-Match": '"v0"'})
        assert stale.status == 412 and stale.code == "precondition_failed"
        assert stale.body["current_etag"] == '"v1"'
        weak = await put_policy(s, {"allowed": ["MIT"]}, headers={"If-Match": 'W/"v1"'})
        assert weak.status == 412
        same = await put_policy(s, body, headers={"If-Match": '"v1"'})
        assert same.status == 200 and same.body["version"] == 1  # no change, no new version
        second = await put_policy(s, {"allowed": ["MIT"]}, headers={"If-Match": '"v1", "v7"'})
        assert second.status == 200 and second.headers["ETag"] == '"v2"'
        assert (await subject_counts(s.scanner, "policy.changed")) == {"policy.changed": 2}

        cached = await s.call("GET", ORG, headers={"If-None-Match": '"v2"'})
        assert cached.status == 304 and cached.headers["ETag"] == '"v2"'
        read = await s.call("GET", ORG)
        assert read.body["document"]["allowed"] == ["MIT"] and read.body["org_version"] == 2


async def test_roles_and_project_scope(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        mine, other = await s.api.new_project(), await s.api.new_project()
        for role in ("VIEWER", "OPERATOR", "APPROVER", "AUDITOR"):
            _, token = await s.api.new_key(role)
            refused = await put_policy(s, {"allowed": ["MIT"]}, token=token)
            assert (refused.status, refused.code) == (403, "forbidden"), role
            assert (await s.call("GET", ORG, token=token)).status == 200
        _, author = await s.api.new_key("POLICY_AUTHOR")
        assert (await put_policy(s, {"allowed": ["MIT"]}, token=author)).status == 200

        _, scoped = await s.api.new_key("POLICY_AUTHOR", project=mine["id"])
        assert (await put_policy(s, {"allowed": ["MIT"]}, token=scoped)).status == 403
        assert (await s.call("GET", ORG, token=scoped)).status == 200
        own = await put_policy(s, {"forbidden": ["MIT"]}, project=mine["slug"], token=scoped)
        assert own.status == 200, own.body
        elsewhere = await put_policy(s, {"forbidden": ["MIT"]}, project=other["slug"], token=scoped)
        assert (elsewhere.status, elsewhere.code) == (404, "not_found")
        _, viewer = await s.api.new_key("VIEWER")
        waiver = await s.call(
            "POST",
            f"/api/v1/projects/{mine['slug']}/license-policy/waivers",
            json={"license": "MIT", "reason": "x", "expires_at": "2099-01-01T00:00:00Z"},
            token=viewer,
        )
        assert waiver.status == 403
        missing = await s.call("GET", "/api/v1/projects/nope/license-policy")
        assert (missing.status, missing.code) == (404, "not_found")


async def test_project_override_merges_and_delete_restores_org(
    start_service: StartService,
) -> None:
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        path = f"/api/v1/projects/{project['slug']}/license-policy"
        assert (
            await put_policy(
                s, {"allowed": ["MIT"], "forbidden": ["GPL-3.0-only"], "default": "conditional"}
            )
        ).status == 200
        none = await s.call("GET", path)
        assert none.status == 200 and none.body["document"] is None
        assert none.headers["ETag"] == '"v0"' and none.body["org_version"] == 1
        assert none.body["effective"]["forbidden"] == ["GPL-3.0-only"]

        put = await put_policy(
            s,
            {"allowed": ["GPL-3.0-only"], "forbidden": ["WTFPL"], "unknown": "forbidden"},
            project=project["slug"],
        )
        assert put.status == 200 and put.headers["ETag"] == '"v1"', put.body
        assert put.body["scope"] == "project" and put.body["project_id"] == project["id"]
        assert put.body["document"]["default"] is None  # inherited
        effective = put.body["effective"]
        assert effective["allowed"] == ["GPL-3.0-only", "MIT"]
        assert effective["forbidden"] == ["WTFPL"]
        assert (effective["default"], effective["unknown"]) == ("conditional", "forbidden")

        stale = await s.call("DELETE", path, headers={"If-Match": '"v0"'})
        assert stale.status == 412 and stale.body["current_etag"] == '"v1"'
        deleted = await s.call("DELETE", path, headers={"If-Match": '"v1"'})
        assert deleted.status == 204 and deleted.headers["ETag"] == '"v2"'
        after = await s.call("GET", path)
        assert after.body["document"] is None and after.body["version"] == 2
        assert after.body["effective"]["forbidden"] == ["GPL-3.0-only"]
        assert (await s.call("DELETE", path)).status == 204  # nothing to remove: no change
        assert (await s.call("GET", path)).body["version"] == 2
        again = await put_policy(s, {"conditional": ["MIT"]}, project=project["slug"])
        assert again.body["version"] == 3 and again.body["effective"]["conditional"] == ["MIT"]

        # An archived project keeps its policy but takes no changes.
        assert (await s.call("DELETE", f"/api/v1/projects/{project['slug']}")).status == 204
        archived = await put_policy(s, {"conditional": ["BSD-2-Clause"]}, project=project["slug"])
        assert (archived.status, archived.code) == (409, "project_archived")
        assert (await s.call("GET", path)).body["version"] == 3


async def test_waivers_are_validated_listed_and_revoked(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        project = await s.api.new_project()
        path = f"/api/v1/projects/{project['slug']}/license-policy/waivers"
        future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        past = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).isoformat()
        cases = [
            ({"license": "MIT", "reason": "x", "expires_at": past}, "$.expires_at"),
            (
                {"license": "MIT", "reason": "x", "expires_at": future, "purl": "npm/x"},
                "$.purl",
            ),
            ({"license": "NOASSERTION", "reason": "x", "expires_at": future}, "$.license"),
            ({"license": "MIT", "reason": "", "expires_at": future}, "$.reason"),
            ({"license": "MIT", "expires_at": future}, "$.reason"),
            ({"license": "MIT", "reason": "x"}, "$.expires_at"),
            ({"license": "MIT", "reason": "x", "expires_at": "2099-01-01T00:00"}, "$.expires_at"),
        ]
        for body, field in cases:
            reply = await s.call("POST", path, json=body)
            assert reply.status == 422, (body, reply.body)
            assert reply.body["errors"][0]["field"] == field, (body, reply.body)
        assert (await subject_counts(s.scanner, "license.>")) == {}

        everywhere = await grant_waiver(s, project["slug"], "GPL-3.0-only")
        assert everywhere["status"] == "active" and everywhere["purl"] is None
        scoped = await grant_waiver(
            s, project["slug"], "GPL-2.0-only  OR  MIT", purl="pkg:npm/left-pad"
        )
        assert scoped["license"] == "GPL-2.0-only OR MIT"
        listed = await s.call("GET", path)
        assert [w["id"] for w in listed.body["items"]] == [scoped["id"], everywhere["id"]]
        page = await s.call("GET", f"{path}?limit=1")
        rest = await s.call("GET", f"{path}?limit=1&cursor={page.body['next_cursor']}")
        assert [w["id"] for w in page.body["items"] + rest.body["items"]] == [
            scoped["id"],
            everywhere["id"],
        ]
        assert rest.body["next_cursor"] is None
        one = await s.call("GET", f"{path}/{scoped['id']}")
        assert one.status == 200 and one.body["purl"] == "pkg:npm/left-pad"

        revoked = await s.call("DELETE", f"{path}/{scoped['id']}?reason=replaced")
        assert revoked.status == 204
        again = await s.call("DELETE", f"{path}/{scoped['id']}")
        assert again.status == 204  # already ended: left as it is
        read = await s.call("GET", f"{path}/{scoped['id']}")
        assert read.body["status"] == "revoked" and read.body["revoke_reason"] == "replaced"
        active = await s.call("GET", f"{path}?status=active")
        assert [w["id"] for w in active.body["items"]] == [everywhere["id"]]
        missing = await s.call("DELETE", f"{path}/nope")
        assert (missing.status, missing.code) == (404, "waiver_not_found")
        other = await s.api.new_project()
        elsewhere = await s.call(
            "GET", f"/api/v1/projects/{other['slug']}/license-policy/waivers/{everywhere['id']}"
        )
        assert (elsewhere.status, elsewhere.code) == (404, "waiver_not_found")
        counts = await subject_counts(s.scanner, "license.>")
        assert counts == {"license.waiver-granted": 2, "license.waiver-revoked": 1}
