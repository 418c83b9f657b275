"""The release gate's decisions over HTTP: a scan with a known-vulnerable package is NO_SHIP
with the vulnerability as blocker, triaging it away ships; unknown repos and commits."""

from __future__ import annotations

from tests.conftest import StartService
from tests.integration.test_release_decision_support import gate_stack, sha


async def test_vulnerable_sbom_is_no_ship_until_triaged(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/web")
        commit = sha()
        scan = await g.scan(project["slug"], "acme/web", commit)
        assert scan["status"] == "succeeded", scan
        view = await g.decided("acme/web", commit, decision="NO_SHIP")
        assert [b["code"] for b in view["blockers"]] == ["vulnerability"], view
        blocker = view["blockers"][0]
        assert "CVE-2020-0001" in blocker["message"] and "django" in blocker["message"]
        assert view["evidence"]["snapshot_id"] == scan["id"]
        assert view["project_id"] == project["id"] and view["policy_version"] == 0

        reply = await g.call(
            "PATCH",
            f"/api/v1/findings/{blocker['ref']}",
            json={"state": "not_affected", "justification": "code_not_reachable"},
            headers={"If-Match": '"v1"'},
        )
        assert reply.status == 200, reply.body
        shipped = await g.decided("acme/web", commit, decision="SHIP")
        assert shipped["blockers"] == [] and shipped["revision"] > view["revision"]


async def test_unknown_repo_and_unseen_commit(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        await g.project("acme/known")
        missing = await g.decision("acme/nowhere", sha())
        assert (missing.status, missing.code) == (404, "repo_not_found")
        unseen = await g.decision("acme/known", "ABCDEF1")
        assert unseen.status == 200, unseen.body
        assert unseen.body["decision"] == "NO_SHIP" and unseen.body["revision"] == 0
        assert unseen.body["commit"] == "abcdef1"
        assert [(b["code"], b["ref"]) for b in unseen.body["blockers"]] == [("no_evidence", "sbom")]
        bad = await g.decision("acme/known", "not-a-sha")
        assert (bad.status, bad.code) == (422, "validation_failed")
        head = await g.decision("acme/known", "HEAD")
        assert (head.status, head.code) == (404, "head_unknown")
