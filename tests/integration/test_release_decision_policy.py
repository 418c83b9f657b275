"""The decision policy over HTTP: org default and project override, versions with
If-Match, every affected commit decided again on policy.changed, signatures required
(commit.verified consumed), bad input."""

from __future__ import annotations

import datetime as dt

from contracts.events.commits import CommitVerified
from tests.conftest import StartService
from tests.integration.test_release_decision_support import Gate, gate_stack, sha
from tests.integration.test_scan_support import Pkg

# Only sqlparse is vulnerable, and only MODERATE (MEDIUM): ships under the defaults.
MEDIUM_ONLY = (Pkg("django", "3.2.0"), Pkg("sqlparse", "0.2.4", license="BSD-3-Clause"))


async def _put(g: Gate, body: dict[str, object], *, query: str = "", **kw: object):  # type: ignore[no-untyped-def]
    return await g.call("PUT", f"/api/v1/releases/policy{query}", json=body, **kw)


async def test_org_policy_and_project_override_redecide(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/shop")
        slug = project["slug"]
        commit = sha()
        await g.scan(slug, "acme/shop", commit, MEDIUM_ONLY)
        await g.decided("acme/shop", commit, decision="SHIP")

        org = await g.call("GET", "/api/v1/releases/policy")
        assert org.status == 200 and org.headers["ETag"] == '"v0"'
        assert org.body["version"] == 0 and org.body["document"] is None
        assert org.body["effective"] == {
            "block_on_severity": ["CRITICAL", "HIGH"],
            "epss_threshold": None,
            "block_forbidden_licenses": True,
            "require_signed_commits": False,
            "required_evidence": ["sbom"],
            "max_snapshot_age_hours": 168,
            "max_vulndb_age_hours": 72.0,
            "block_on_unknown_severity": True,
        }

        put = await _put(
            g,
            {"block_on_severity": ["MEDIUM", "HIGH", "CRITICAL", "HIGH"]},
            headers={"If-Match": '"v0"'},
        )
        assert put.status == 200, put.body
        assert put.headers["ETag"] == '"v1"'
        assert put.body["document"]["block_on_severity"] == ["CRITICAL", "HIGH", "MEDIUM"]
        blocked = await g.decided("acme/shop", commit, decision="NO_SHIP")
        assert (blocked["policy_version"], blocked["policy_scope"]) == (1, "org")
        assert [b["code"] for b in blocked["blockers"]] == ["vulnerability"]
        assert "sqlparse" in blocked["blockers"][0]["message"]

        stale = await _put(g, {"epss_threshold": 0.5}, headers={"If-Match": '"v0"'})
        assert (stale.status, stale.code) == (412, "precondition_failed")
        assert stale.body["current_etag"] == '"v1"'
        same = await _put(g, {"block_on_severity": ["CRITICAL", "HIGH", "MEDIUM"]})
        assert same.status == 200 and same.body["version"] == 1  # unchanged: no new version

        override = await _put(g, {"block_on_severity": ["CRITICAL"]}, query=f"?project={slug}")
        assert override.status == 200, override.body
        assert override.body["scope"] == "project" and override.body["version"] == 1
        assert override.body["effective"]["block_on_severity"] == ["CRITICAL"]
        assert override.body["org_version"] == 1
        shipped = await g.decided("acme/shop", commit, decision="SHIP")
        # Version 1 again, of another policy: the scope tells them apart.
        assert (shipped["policy_version"], shipped["policy_scope"]) == (1, "project")

        history = await g.call(
            "GET", f"/api/v1/releases/decision/history?repo=acme/shop&commit={commit}"
        )
        assert [i["policy_scope"] for i in history.body["items"][:2]] == ["project", "org"]
        assert [i["cause_event_type"] for i in history.body["items"][:2]] == [
            "policy.changed",
            "policy.changed",
        ]
        read = await g.call("GET", f"/api/v1/releases/policy?project={project['id']}")
        assert read.status == 200 and read.body["document"]["block_on_severity"] == ["CRITICAL"]
        cached = await g.call(
            "GET", f"/api/v1/releases/policy?project={slug}", headers={"If-None-Match": '"v1"'}
        )
        assert cached.status == 304


async def test_an_override_that_decides_alike_still_shows_its_scope(
    start_service: StartService,
) -> None:
    """Org v1, then a project override v1 that changes no verdict: the decision names the
    project's policy (same version number, another policy), as a new revision."""
    async with gate_stack(start_service) as g:
        project = await g.project("acme/scoped")
        commit = sha()
        await g.scan(project["slug"], "acme/scoped", commit, MEDIUM_ONLY)
        first = await g.decided("acme/scoped", commit, decision="SHIP")
        # max_snapshot_age_hours is for health: no decision changes with it.
        assert (await _put(g, {"max_snapshot_age_hours": 48})).status == 200
        org = await g.decided(
            "acme/scoped", commit, decision="SHIP", revision=first["revision"] + 1
        )
        assert (org["policy_version"], org["policy_scope"]) == (1, "org")
        override = await _put(
            g, {"max_snapshot_age_hours": 48}, query=f"?project={project['slug']}"
        )
        assert override.status == 200 and override.body["version"] == 1
        shown = await g.decided(
            "acme/scoped", commit, decision="SHIP", revision=org["revision"] + 1
        )
        assert (shown["policy_version"], shown["policy_scope"]) == (1, "project")
        assert shown["blockers"] == org["blockers"]


async def test_signatures_required_by_policy(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/signed")
        commit = sha()
        await g.scan(project["slug"], "acme/signed", commit, MEDIUM_ONLY)
        await g.decided("acme/signed", commit, decision="SHIP")
        put = await _put(
            g,
            {"required_evidence": ["sbom", "signature"], "require_signed_commits": True},
            query=f"?project={project['slug']}",
        )
        assert put.status == 200, put.body
        view = await g.decided("acme/signed", commit, decision="NO_SHIP")
        assert [(b["code"], b["ref"]) for b in view["blockers"]] == [
            ("no_evidence", "signature"),
            ("unsigned_commit", commit),
        ]

        async def verified(ok: bool, reason: str) -> None:
            await g.decisions.bus.publish(
                CommitVerified(
                    repo="acme/signed",
                    commit=commit,
                    verified=ok,
                    reason=reason,
                    verified_at=dt.datetime.now(dt.UTC),
                ),
                aggregate=f"commit:acme/signed@{commit}",
                actor="system",
            )

        await verified(False, "unknown_key")
        bad = await g.decided(
            "acme/signed", commit, decision="NO_SHIP", revision=view["revision"] + 1
        )
        assert [b["code"] for b in bad["blockers"]] == ["invalid_signature", "no_evidence"]
        assert "unknown_key" in bad["blockers"][0]["message"]
        assert bad["evidence"]["signature_verified"] is False
        await verified(True, "valid")
        good = await g.decided("acme/signed", commit, decision="SHIP")
        assert good["evidence"]["signature_verified"] is True


async def test_policy_bad_input_and_roles(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/p")
        unknown = await _put(g, {"block_on_severity": ["HIGH"], "color": "red"})
        assert (unknown.status, unknown.code) == (422, "validation_failed")
        bad_level = await _put(g, {"block_on_severity": ["SEVERE"]})
        assert bad_level.status == 422
        no_evidence = await _put(g, {"required_evidence": []})
        assert no_evidence.status == 422
        threshold = await _put(g, {"epss_threshold": 1.5})
        assert threshold.status == 422
        missing = await _put(g, {}, query="?project=nope")
        assert (missing.status, missing.code) == (404, "not_found")
        _, viewer = await g.s.api.new_key("VIEWER")
        denied = await _put(g, {"epss_threshold": 0.2}, token=viewer)
        assert denied.status == 403
        readable = await g.call("GET", "/api/v1/releases/policy", token=viewer)
        assert readable.status == 200
        _, author = await g.s.api.new_key("POLICY_AUTHOR", project=project["slug"])
        org_write = await _put(g, {"epss_threshold": 0.2}, token=author)
        assert (org_write.status, org_write.code) == (403, "forbidden"), org_write.body
        own = await _put(
            g, {"epss_threshold": 0.2}, query=f"?project={project['slug']}", token=author
        )
        assert own.status == 200, own.body
        other = await g.project("acme/q")
        foreign = await g.call(
            "GET", f"/api/v1/releases/policy?project={other['slug']}", token=author
        )
        assert foreign.status == 404
        archived = await g.project("acme/old")
        assert (await g.call("DELETE", f"/api/v1/projects/{archived['slug']}")).status == 204
        frozen = await _put(g, {"epss_threshold": 0.2}, query=f"?project={archived['slug']}")
        assert (frozen.status, frozen.code) == (409, "project_archived")
        versions = await g.call("GET", "/api/v1/releases/policy")
        assert versions.body["version"] == 0  # nothing refused wrote anything


async def test_forbidden_licenses_block_until_the_policy_allows_them(
    start_service: StartService,
) -> None:
    """scan.relicensed (a license policy change re-evaluated the snapshot) blocks; a
    decision policy with block_forbidden_licenses false ships."""
    async with gate_stack(start_service) as g:
        project = await g.project("acme/legal")
        commit = sha()
        scan = await g.scan(project["slug"], "acme/legal", commit, MEDIUM_ONLY)  # django: MIT
        await g.decided("acme/legal", commit, decision="SHIP")
        licenses = await g.call("PUT", "/api/v1/license-policy", json={"forbidden": ["MIT"]})
        assert licenses.status == 200, licenses.body
        blocked = await g.decided("acme/legal", commit, decision="NO_SHIP")
        assert [(b["code"], b["ref"]) for b in blocked["blockers"]] == [
            ("forbidden_license", scan["id"])
        ]
        assert blocked["blockers"][0]["message"] == "1 component has a forbidden license"
        put = await _put(g, {"block_forbidden_licenses": False})
        assert put.status == 200, put.body
        await g.decided("acme/legal", commit, decision="SHIP")
