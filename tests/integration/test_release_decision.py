"""The release gate's decisions over HTTP: a scan with a known-vulnerable package is NO_SHIP
with the vulnerability as blocker, triaging it away ships; unknown repos and commits."""

from __future__ import annotations

import base64
import itertools
import json
from urllib.parse import quote

from services.release_decision.decisions.recorder import decided_event_id
from tests.conftest import StartService, wait_until
from tests.integration.test_release_decision_support import (
    CLEAN,
    decided_count,
    events_of,
    gate_stack,
    sha,
)
from tests.integration.test_scan_support import Pkg
from tests.integration.test_vulndb_support import T1, ZIP, osv, zip_of


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
        # The evidence named the full SHA; a short one (or a longer one) means the same.
        short = await g.decision("acme/web", commit[:7].upper())
        assert (short.body["commit"], short.body["revision"]) == (commit, shipped["revision"])


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


async def test_each_change_is_announced_and_kept_in_history(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/api")
        commit = sha()
        await g.scan(project["slug"], "acme/api", commit)
        blocked = await g.decided("acme/api", commit, decision="NO_SHIP")
        finding = blocked["blockers"][0]["ref"]
        reply = await g.call(
            "PATCH",
            f"/api/v1/findings/{finding}",
            json={"state": "false_positive", "detail": "not our django"},
            headers={"If-Match": '"v1"'},
        )
        assert reply.status == 200, reply.body
        shipped = await g.decided("acme/api", commit, decision="SHIP")

        page = await g.call(
            "GET", f"/api/v1/releases/decision/history?repo=acme/api&commit={commit}"
        )
        assert page.status == 200, page.body
        items = page.body["items"]
        assert [i["revision"] for i in items] == list(range(shipped["revision"], 0, -1))
        assert [i["cause_event_type"] for i in items] == [
            "finding.triaged",
            "scan.completed",
            "scan.queued",
        ]
        assert [i["decision"] for i in items] == ["SHIP", "NO_SHIP", "NO_SHIP"]
        assert items[2]["blockers"][0]["code"] == "evidence_pending"
        # The commit as the decision endpoint takes it: a short id in another case too.
        short = await g.call(
            "GET", f"/api/v1/releases/decision/history?repo=acme/api&commit={commit[:7].upper()}"
        )
        assert short.status == 200, short.body
        assert short.body["items"] == items

        async def all_announced() -> bool:
            return await decided_count(g.decisions) == len(items)

        await wait_until(all_announced)
        announced = [e for e in await events_of(g.decisions, "release.decided")]
        by_revision = {e.payload.revision: e for e in announced}  # type: ignore[attr-defined]
        for item in items:
            event = by_revision[item["revision"]]
            assert event.id == decided_event_id("acme/api", commit, item["revision"])
            assert event.envelope.causation_id == item["cause_event_id"]
            assert event.payload.decision == item["decision"]  # type: ignore[attr-defined]
        assert by_revision[3].payload.previous_decision == "NO_SHIP"  # type: ignore[attr-defined]

        # as_of: what the decision was then.
        def at(text: str) -> str:
            return quote(text.replace("+00:00", "Z"))

        then = await g.decision("acme/api", commit, query=f"&as_of={at(items[1]['evaluated_at'])}")
        assert (then.body["decision"], then.body["revision"]) == ("NO_SHIP", 2), then.body
        before = await g.decision("acme/api", commit, query="&as_of=2001-01-01T00:00:00Z")
        assert (before.body["decision"], before.body["revision"]) == ("NO_SHIP", 0)
        assert before.body["blockers"][0]["code"] == "no_evidence"
        # RFC 3339 times carry their offset: one without is refused, not guessed.
        naive = await g.decision("acme/api", commit, query="&as_of=2001-01-01T00:00:00")
        assert (naive.status, naive.code) == (422, "validation_failed"), naive.body

        repo_wide = await g.call("GET", "/api/v1/releases/decision/history?repo=acme/api&limit=2")
        assert len(repo_wide.body["items"]) == 2 and repo_wide.body["next_cursor"]
        rest = await g.call(
            "GET",
            "/api/v1/releases/decision/history?repo=acme/api&limit=2&cursor="
            + repo_wide.body["next_cursor"],
        )
        assert [i["revision"] for i in repo_wide.body["items"] + rest.body["items"]] == [3, 2, 1]
        # Hand-made cursors of the right length but the wrong kinds: 422, never a 500.
        history = "/api/v1/releases/decision/history?repo=acme/api"
        for path, key in (
            (f"{history}&commit={commit}", ["abc"]),
            (f"{history}&commit={commit}", [10**20]),
            (f"{history}&commit={commit}", [True]),
            (history, ["x", "y", "z"]),
            (history, [1, 2, 3]),
            (history, [10**20, "c", 1]),
            ("/api/v1/releases/promotions", ["abc"]),
            ("/api/v1/releases/promotions", [10**20]),
        ):
            cursor = base64.urlsafe_b64encode(json.dumps([1, key]).encode()).decode()
            crafted = await g.call("GET", f"{path}{'&' if '?' in path else '?'}cursor={cursor}")
            assert (crafted.status, crafted.code) == (422, "invalid_cursor"), (path, key)


async def test_a_rematch_changes_the_decision(start_service: StartService) -> None:
    """finding.created (rematch) adds a blocker; finding.resolved (advisory withdrawn)
    takes it away again."""
    async with gate_stack(start_service) as g:
        project = await g.project("acme/libs")
        commit = sha()
        pkgs = (*CLEAN, Pkg("requests", "2.19.1"))
        await g.scan(project["slug"], "acme/libs", commit, pkgs)
        shipped = await g.decided("acme/libs", commit, decision="SHIP")

        async def vulndb(files: dict[str, object]) -> None:
            reply = await g.call("POST", "/api/v1/vulndb/import", data=zip_of(files), headers=ZIP)
            assert reply.status == 200, reply.body

        advisory = {
            "events": [{"introduced": "0"}, {"fixed": "2.20.0"}],
            "aliases": ("CVE-2023-0003",),
        }
        await vulndb(
            {
                "GHSA-rq01.json": osv(
                    "GHSA-rq01", name="requests", database_specific={"severity": "HIGH"}, **advisory
                )
            }
        )
        blocked = await g.decided("acme/libs", commit, decision="NO_SHIP")
        assert [b["code"] for b in blocked["blockers"]] == ["vulnerability"]
        assert "requests" in blocked["blockers"][0]["message"]
        assert blocked["revision"] > shipped["revision"]

        await vulndb(
            {
                "GHSA-rq01.json": osv(
                    "GHSA-rq01", name="requests", modified=T1, withdrawn=T1, **advisory
                )
            }
        )
        again = await g.decided(
            "acme/libs", commit, decision="SHIP", revision=blocked["revision"] + 1
        )
        history = await g.call(
            "GET", f"/api/v1/releases/decision/history?repo=acme/libs&commit={commit}&limit=50"
        )
        # Each import is a revision of its own (the evidence names the new database), and
        # so is each re-match (the snapshot names the database it was matched against); the
        # verdict flips with the finding events.
        oldest_first = [
            i for i in reversed(history.body["items"]) if i["revision"] >= shipped["revision"]
        ]
        flips = [
            (i["decision"], i["cause_event_type"])
            for before, i in itertools.pairwise(oldest_first)
            if i["decision"] != before["decision"]
        ]
        assert flips == [("NO_SHIP", "finding.created"), ("SHIP", "finding.resolved")], flips
        causes = [i["cause_event_type"] for i in oldest_first]
        assert causes.count("vulndb.updated") == 2, causes
        assert again["blockers"] == []


async def test_a_deleted_snapshot_gives_way_to_the_one_before(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/del")
        commit = sha()
        older = await g.scan(project["slug"], "acme/del", commit)
        await g.decided("acme/del", commit, decision="NO_SHIP")
        newer = await g.scan(project["slug"], "acme/del", commit, CLEAN)
        shipped = await g.decided("acme/del", commit, decision="SHIP")
        assert shipped["evidence"]["snapshot_id"] == newer["id"]
        deleted = await g.call("DELETE", f"/api/v1/scans/{newer['id']}")
        assert deleted.status == 204, deleted.body
        back = await g.decided("acme/del", commit, decision="NO_SHIP")
        assert back["evidence"]["snapshot_id"] == older["id"]
        assert (await g.call("DELETE", f"/api/v1/scans/{older['id']}")).status == 204
        view = await g.decided(
            "acme/del", commit, decision="NO_SHIP", revision=back["revision"] + 1
        )
        assert [(b["code"], b["ref"]) for b in view["blockers"]] == [("no_evidence", "sbom")]
