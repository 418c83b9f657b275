"""Triage over HTTP: PATCH /api/v1/findings/{id} (If-Match, the transition matrix, reasons,
the role rules), bulk transitions with per-row results, concurrency, the finding.triaged
event, triage carried into the next scan, and nothing written on a refusal."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from contracts.events.identity import ROLES
from tests.conftest import StartService
from tests.integration.test_scan_findings import PKGS, _events, _import, _vulns, advisories
from tests.integration.test_scan_support import ScanApi, cyclonedx_json, scan_api, subject_counts


async def _project_with_findings(s: ScanApi) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """A project whose snapshot has django (CRITICAL), sqlparse (MEDIUM) and pytest (not
    evaluated) findings, by package."""
    await _import(s, advisories())
    project = await s.api.new_project()
    scan = await s.scan(project["slug"], cyclonedx_json(PKGS))
    assert scan["status"] == "succeeded", scan
    return project, {f["package"]: f for f in await _vulns(s, project["slug"])}


async def _patch(
    s: ScanApi,
    finding_id: str,
    body: dict[str, Any],
    *,
    etag: str | None = '"v1"',
    token: str | None = None,
) -> Any:
    headers = {"If-Match": etag} if etag is not None else {}
    return await s.call(
        "PATCH", f"/api/v1/findings/{finding_id}", json=body, headers=headers, token=token
    )


async def _triaged_count(s: ScanApi) -> int:
    return (await subject_counts(s.scanner, "finding.triaged")).get("finding.triaged", 0)


async def test_patch_with_if_match_answers_the_new_etag_and_publishes_finding_triaged(
    start_service: StartService,
) -> None:
    async with scan_api(start_service) as s:
        project, found = await _project_with_findings(s)
        django = found["PyPI:django"]
        url = f"/api/v1/findings/{django['id']}"
        body = {"state": "not_affected", "justification": "code_not_reachable", "detail": "admin"}

        missing = await _patch(s, django["id"], body, etag=None)
        assert (missing.status, missing.code) == (428, "precondition_required")
        stale = await _patch(s, django["id"], body, etag='"v7"')
        assert (stale.status, stale.code) == (412, "precondition_failed")
        assert stale.body["current_etag"] == '"v1"'
        weak = await _patch(s, django["id"], body, etag='W/"v1"')
        assert weak.status == 412  # weak tags never match (strong comparison)
        assert await _triaged_count(s) == 0

        done = await _patch(s, django["id"], body, etag='"v3", "v1"')
        assert done.status == 200, done.body
        assert done.headers["ETag"] == '"v2"'
        assert (done.body["state"], done.body["version"], done.body["effective"]) == (
            "not_affected",
            2,
            False,
        )
        assert (done.body["justification"], done.body["detail"]) == ("code_not_reachable", "admin")
        read = await s.call("GET", url)
        assert read.body == done.body and read.headers["ETag"] == '"v2"'
        assert (await s.call("GET", url, headers={"If-None-Match": '"v2"'})).status == 304

        [event] = await _events(s.scanner, "finding.triaged")
        assert (event.finding_id, event.project_id, event.scan_id) == (
            django["id"],
            project["id"],
            django["scan_id"],
        )
        assert (event.package, event.vulnerability_id) == ("PyPI:django", "CVE-2020-0001")
        assert (event.from_state, event.to_state, event.version) == ("new", "not_affected", 2)
        assert (event.justification, event.detail, event.cause, event.source) == (
            "code_not_reachable",
            "admin",
            "triage",
            None,
        )

        # The same state and reasons again: no event, the revision stays.
        again = await _patch(s, django["id"], body, etag='"v2"')
        assert again.status == 200 and again.headers["ETag"] == '"v2"'
        assert await _triaged_count(s) == 1
        # If-Match: * triages whatever the revision is.
        star = await _patch(s, django["id"], {"state": "analyzing"}, etag="*")
        assert star.status == 200 and star.headers["ETag"] == '"v3"'

        # The matrix and the reasons (nothing written by any of these).
        fixed = await _patch(s, django["id"], {"state": "fixed"}, etag='"v3"')
        assert fixed.status == 200
        closing = {"state": "not_affected", "justification": "code_not_present"}
        for refused_body in (closing, {"state": "new"}):
            reply = await _patch(s, django["id"], refused_body, etag='"v4"')
            assert (reply.status, reply.code) == (409, "vex_transition_not_allowed"), reply.body
        sqlparse = found["PyPI:sqlparse"]["id"]
        reasons = [
            ({"state": "not_affected"}, "vex_justification_required"),
            ({"state": "not_affected", "justification": "because"}, "vex_justification_invalid"),
            ({"state": "exploitable", "justification": "code_not_present"},
             "vex_justification_not_applicable"),
            ({"state": "suppressed"}, "vex_detail_required"),
            ({"state": "false_positive", "detail": "  "}, "vex_detail_required"),
            ({"state": "analyzing", "detail": "x" * 4001}, "vex_detail_too_long"),
        ]  # fmt: skip
        for refused_body, code in reasons:
            reply = await _patch(s, sqlparse, refused_body)
            assert (reply.status, reply.code) == (422, code), reply.body
        bad = [{"state": "bogus"}, {"state": "fixed", "extra": 1}, {}]
        for refused_body in bad:
            reply = await _patch(s, sqlparse, refused_body)
            assert (reply.status, reply.code) == (422, "validation_failed"), reply.body
        unknown = await _patch(s, str(uuid.uuid4()), {"state": "analyzing"})
        assert (unknown.status, unknown.code) == (404, "finding_not_found")
        assert await _triaged_count(s) == 3

        # A key scoped to another project does not see the finding.
        other = await s.api.new_project()
        _, scoped = await s.api.new_key("ADMIN", project=other["slug"])
        hidden = await _patch(s, sqlparse, {"state": "analyzing"}, token=scoped)
        assert (hidden.status, hidden.code) == (404, "finding_not_found")


async def test_role_rules_over_http(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        _, found = await _project_with_findings(s)
        django, sqlparse = found["PyPI:django"]["id"], found["PyPI:sqlparse"]["id"]
        tokens = {role: (await s.api.new_key(role))[1] for role in ROLES}

        for role in ("VIEWER", "AUDITOR"):
            reply = await _patch(s, django, {"state": "analyzing"}, token=tokens[role])
            assert (reply.status, reply.code) == (403, "vex_role_forbidden"), role
            # Refused before anything is looked up: an unknown finding answers the same.
            unknown = await _patch(s, str(uuid.uuid4()), {"state": "analyzing"}, token=tokens[role])
            assert (unknown.status, unknown.code) == (403, "vex_role_forbidden"), role
        operator = tokens["OPERATOR"]
        for state, extra in (
            ("suppressed", {"detail": "accepted"}),
            ("false_positive", {"detail": "no"}),
        ):
            reply = await _patch(s, django, {"state": state, **extra}, token=operator)
            assert (reply.status, reply.code) == (403, "vex_role_forbidden"), state
        assert await _triaged_count(s) == 0

        reply = await _patch(s, django, {"state": "exploitable"}, token=operator)
        assert reply.status == 200 and reply.body["state"] == "exploitable"
        reply = await _patch(
            s,
            django,
            {"state": "not_affected", "justification": "requires_environment"},
            etag='"v2"',
            token=operator,
        )
        assert reply.status == 200, reply.body
        suppress = {"state": "suppressed", "detail": "risk accepted until 2.0"}
        reply = await _patch(s, sqlparse, suppress, token=tokens["POLICY_AUTHOR"])
        assert reply.status == 200 and reply.body["state"] == "suppressed"
        # An OPERATOR may reopen a suppressed finding, not re-close it another way.
        closing = {"state": "not_affected", "justification": "code_not_present"}
        reply = await _patch(s, sqlparse, closing, etag='"v2"', token=operator)
        assert (reply.status, reply.code) == (403, "vex_role_forbidden")
        reply = await _patch(s, sqlparse, {"state": "analyzing"}, etag='"v2"', token=operator)
        assert reply.status == 200
        fp = {"state": "false_positive", "detail": "wrong package"}
        reply = await _patch(s, sqlparse, fp, etag='"v3"', token=tokens["APPROVER"])
        assert reply.status == 200 and reply.body["state"] == "false_positive"
        events = await _events(s.scanner, "finding.triaged")
        assert [(e.to_state, e.version) for e in events] == [
            ("exploitable", 2),
            ("not_affected", 3),
            ("suppressed", 2),
            ("analyzing", 3),
            ("false_positive", 4),
        ]


async def test_two_patches_with_the_same_if_match_one_wins(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        _, found = await _project_with_findings(s)
        django = found["PyPI:django"]["id"]
        replies = await asyncio.gather(
            _patch(s, django, {"state": "exploitable"}),
            _patch(s, django, {"state": "not_affected", "justification": "code_not_present"}),
            _patch(s, django, {"state": "analyzing"}),
        )
        statuses = sorted(r.status for r in replies)
        assert statuses == [200, 412, 412], [r.body for r in replies]
        winner = next(r for r in replies if r.status == 200)
        [event] = await _events(s.scanner, "finding.triaged")
        assert event.to_state == winner.body["state"] and event.version == 2
        now = await s.call("GET", f"/api/v1/findings/{django}")
        assert now.body["state"] == winner.body["state"] and now.headers["ETag"] == '"v2"'


async def test_bulk_transition_answers_per_row(start_service: StartService) -> None:
    async with scan_api(start_service) as s:
        project, found = await _project_with_findings(s)
        slug = project["slug"]
        url = f"/api/v1/projects/{slug}/vulnerabilities/bulk-transition"
        django, sqlparse, pytest_ = (
            found[p]["id"] for p in ("PyPI:django", "PyPI:sqlparse", "PyPI:pytest")
        )
        assert (await _patch(s, sqlparse, {"state": "fixed"})).status == 200
        assert (await _patch(s, pytest_, {"state": "analyzing"})).status == 200
        before = await _triaged_count(s)

        unknown = str(uuid.uuid4())
        body = {
            "ids": [django, sqlparse, unknown, pytest_.upper()],
            "state": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
            "detail": "the admin is not deployed",
        }
        reply = await s.call("POST", url, json=body)
        assert reply.status == 200, reply.body
        rows = reply.body["items"]
        assert [(r["id"], r["ok"], r["status"], r["outcome"]) for r in rows] == [
            (django, True, 200, "updated"),
            (sqlparse, False, 409, "failed"),
            (unknown, False, 404, "failed"),
            (pytest_, True, 200, "updated"),
        ]
        assert rows[1]["code"] == "vex_transition_not_allowed" and rows[1]["from_state"] == "fixed"
        assert rows[2]["code"] == "finding_not_found" and "finding" not in rows[2]
        assert rows[0]["finding"]["state"] == "not_affected" and rows[0]["finding"]["version"] == 2
        assert rows[3]["finding"]["version"] == 3
        assert (reply.body["updated"], reply.body["unchanged"], reply.body["failed"]) == (2, 0, 2)
        events = (await _events(s.scanner, "finding.triaged"))[before:]
        assert sorted((e.finding_id, e.cause) for e in events) == sorted(
            [(django, "bulk"), (pytest_, "bulk")]
        )
        # The same request again changes nothing.
        again = await s.call("POST", url, json=body)
        assert [r["outcome"] for r in again.body["items"]] == [
            "unchanged",
            "failed",
            "failed",
            "unchanged",
        ]
        assert await _triaged_count(s) == before + 2

        # Envelope-level refusals are problem details, and write nothing.
        ids_101 = [str(uuid.uuid4()) for _ in range(201)]
        envelope = [
            ({**body, "ids": []}, 422, "bulk_ids_required"),
            ({**body, "ids": ids_101}, 422, "bulk_too_many_ids"),
            ({**body, "ids": [django, django.upper()]}, 422, "bulk_id_duplicate"),
            ({**body, "ids": ["not-a-uuid"]}, 422, "bulk_id_invalid"),
            ({**body, "state": "bogus"}, 422, "validation_failed"),
            ({"ids": [django]}, 422, "validation_failed"),
            ({**body, "justification": None}, 422, "vex_justification_required"),
        ]
        for refused, status, code in envelope:
            reply = await s.call("POST", url, json=refused)
            assert (reply.status, reply.code) == (status, code), (code, reply.body)
        viewer = (await s.api.new_key("VIEWER"))[1]
        reply = await s.call("POST", url, json=body, token=viewer)
        assert (reply.status, reply.code) == (403, "vex_role_forbidden")
        operator = (await s.api.new_key("OPERATOR"))[1]
        suppress = {"ids": [django], "state": "suppressed", "detail": "accepted"}
        reply = await s.call("POST", url, json=suppress, token=operator)
        assert (reply.status, reply.code) == (403, "vex_role_forbidden")
        # An OPERATOR's bulk: the row it may not move fails alone.
        reopen = {"ids": [django, sqlparse], "state": "exploitable"}
        reply = await s.call("POST", url, json=reopen, token=operator)
        assert [r["outcome"] for r in reply.body["items"]] == ["updated", "updated"]
        missing = await s.call(
            "POST", "/api/v1/projects/nope/vulnerabilities/bulk-transition", json=body
        )
        assert missing.status == 404
        assert await _triaged_count(s) == before + 4


async def test_triage_of_an_older_snapshot_is_refused_and_the_next_scan_inherits(
    start_service: StartService,
) -> None:
    async with scan_api(start_service) as s:
        project, found = await _project_with_findings(s)
        slug = project["slug"]
        django = found["PyPI:django"]
        body = {"state": "not_affected", "justification": "code_not_reachable", "detail": "admin"}
        assert (await _patch(s, django["id"], body)).status == 200
        first_summary = (await s.call("GET", f"/api/v1/scans/{django['scan_id']}")).body["summary"]
        assert first_summary["finding_count"] == 2  # scan.completed is a fact of its time

        # The next scan of the project inherits the state of the same (package, vulnerability).
        second = await s.scan(slug, cyclonedx_json(PKGS))
        assert second["summary"]["finding_count"] == 1
        assert second["summary"]["blocking_finding_ids"] == []
        now = {f["package"]: f for f in await _vulns(s, slug)}
        inherited = now["PyPI:django"]
        assert inherited["id"] != django["id"] and inherited["scan_id"] == second["id"]
        assert (inherited["state"], inherited["justification"], inherited["detail"]) == (
            "not_affected",
            "code_not_reachable",
            "admin",
        )
        assert inherited["version"] == 1 and inherited["effective"] is False

        # The older snapshot's finding is the record of its time: triage the current one.
        old = await _patch(s, django["id"], {"state": "exploitable"}, etag='"v2"')
        assert (old.status, old.code) == (409, "finding_not_current")
        assert old.body["current_finding_id"] == inherited["id"]
        assert old.body["latest_scan_id"] == second["id"]
        bulk = await s.call(
            "POST",
            f"/api/v1/projects/{slug}/vulnerabilities/bulk-transition",
            json={"ids": [django["id"]], "state": "exploitable"},
        )
        assert bulk.body["items"][0]["code"] == "finding_not_current"
        assert bulk.body["items"][0]["status"] == 409
        reopened = await _patch(s, inherited["id"], {"state": "exploitable"})
        assert reopened.status == 200 and reopened.headers["ETag"] == '"v2"'
        third = await s.scan(slug, cyclonedx_json(PKGS))
        assert third["summary"]["finding_count"] == 2
        assert third["summary"]["blocking_finding_ids"] != []
