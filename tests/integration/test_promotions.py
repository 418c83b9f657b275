"""Promotions over HTTP: a SHIP snapshot becomes its repo's baseline; NO_SHIP is refused
with the blockers unless an APPROVER overrides; unknown, failed and already promoted
snapshots; 50 concurrent promotes of one snapshot make one record; the listing; health."""

from __future__ import annotations

import asyncio
import uuid

from contracts.events.scans import ScanFailed, ScanQueued
from tests.conftest import StartService, wait_until
from tests.integration.test_release_decision_support import CLEAN, Gate, gate_stack, sha


async def _promote(g: Gate, body: dict[str, object], **kw: object):  # type: ignore[no-untyped-def]
    return await g.call("POST", "/api/v1/releases/promote", json=body, **kw)


async def _promotion_count(g: Gate) -> int:
    return int(await g.decisions.pool.fetchval("SELECT count(*) FROM release_decision.promotions"))


async def test_promote_ship_snapshot_becomes_baseline(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/rel")
        commit = sha()
        scan = await g.scan(project["slug"], "acme/rel", commit, CLEAN)
        await g.decided("acme/rel", commit, decision="SHIP")
        body = {
            "snapshot_id": scan["id"],
            "target_status": "production",
            "release_label": "v1.4.0",
            "metadata": {"ticket": "REL-7"},
        }
        reply = await _promote(g, body)
        assert reply.status == 201, reply.body
        promotion = reply.body
        assert (promotion["repo"], promotion["commit"], promotion["status"]) == (
            "acme/rel",
            commit,
            "production",
        )
        assert promotion["label"] == "v1.4.0" and promotion["metadata"] == {"ticket": "REL-7"}
        assert promotion["decision"] == "SHIP" and promotion["override"] is None
        assert promotion["promoted_by"].startswith("apikey:")
        assert promotion["project_id"] == project["id"]

        view = (await g.decision("acme/rel", commit)).body
        assert view["baseline"]["snapshot_id"] == scan["id"]
        assert view["baseline"]["commit_sha"] == commit
        assert view["baseline"]["promotion_id"] == promotion["id"]

        again = await _promote(g, body)
        assert (again.status, again.code) == (409, "already_promoted")
        staging = await _promote(g, {**body, "target_status": "staging"})
        assert staging.status == 201

        listing = await g.call("GET", "/api/v1/releases/promotions?repo=acme/rel&limit=1")
        assert listing.status == 200
        assert [p["status"] for p in listing.body["items"]] == ["staging"]
        rest = await g.call(
            "GET",
            f"/api/v1/releases/promotions?project={project['slug']}&cursor="
            + listing.body["next_cursor"],
        )
        assert [p["status"] for p in rest.body["items"]] == ["production"]

        health = await g.call("GET", "/api/v1/releases/health?repo=acme/rel")
        assert health.status == 200, health.body
        assert health.body["bus"] is True and health.body["scanner"] == "answering"
        assert health.body["signature_verifier"] == "unavailable"
        assert health.body["latest_promoted"]["snapshot_id"] == scan["id"]
        assert health.body["latest_promoted"]["fresh"] is True
        assert health.body["missing_evidence"] == []
        assert health.body["ok"] is True

        await g.project("acme/empty")
        everywhere = await g.call("GET", "/api/v1/releases/health")
        assert {m["repo"] for m in everywhere.body["missing_evidence"]} == {"acme/empty"}
        # A repo nothing knows, or one the named project does not list: 404, as its decision.
        for query in ("repo=acme/nowhere", f"repo=acme/empty&project={project['slug']}"):
            unknown = await g.call("GET", f"/api/v1/releases/health?{query}")
            assert (unknown.status, unknown.code) == (404, "repo_not_found"), query
        both = await g.call("GET", f"/api/v1/releases/health?repo=acme/rel&project={project['id']}")
        assert both.status == 200 and both.body["latest_promoted"]["snapshot_id"] == scan["id"]

        # The promoted snapshot deleted: the baseline is no evidence any more.
        assert (await g.call("DELETE", f"/api/v1/scans/{scan['id']}")).status == 204

        async def stale() -> bool:
            reply = await g.call("GET", "/api/v1/releases/health?repo=acme/rel")
            return reply.body["latest_promoted"]["fresh"] is False and not reply.body["ok"]

        await wait_until(stale)


async def test_no_ship_needs_an_approver_override(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/risky")
        commit = sha()
        scan = await g.scan(project["slug"], "acme/risky", commit)
        await g.decided("acme/risky", commit, decision="NO_SHIP")
        body: dict[str, object] = {"snapshot_id": scan["id"], "target_status": "production"}

        blocked = await _promote(g, body)
        assert (blocked.status, blocked.code) == (409, "release_blocked")
        assert [b["code"] for b in blocked.body["blockers"]] == ["vulnerability"]
        reason = {"reason": "hotfix, risk accepted by CISO"}
        not_approver = await _promote(g, {**body, "override": reason})
        assert (not_approver.status, not_approver.code) == (403, "override_not_allowed")
        assert await _promotion_count(g) == 0

        _, approver = await g.s.api.new_key("APPROVER")
        allowed = await _promote(g, {**body, "override": reason}, token=approver)
        assert allowed.status == 201, allowed.body
        assert allowed.body["decision"] == "NO_SHIP"
        assert allowed.body["override"]["reason"] == reason["reason"]
        assert allowed.body["override"]["approver"] == allowed.body["promoted_by"]
        assert [b["code"] for b in allowed.body["blockers"]] == ["vulnerability"]


async def test_bad_snapshots_and_a_race(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/race")
        unknown = await _promote(g, {"snapshot_id": "nope", "target_status": "production"})
        assert (unknown.status, unknown.code) == (404, "snapshot_not_found")
        bad_status = await _promote(g, {"snapshot_id": "x", "target_status": "Prod!"})
        assert bad_status.status == 422

        failed_id = str(uuid.uuid4())
        bus = g.decisions.bus
        for payload in (
            ScanQueued(
                scan_id=failed_id,
                project_id=project["id"],
                kind="sbom",
                repo="acme/race",
                commit=sha(),
                source_digest="sha256:" + "0" * 64,
                size=1,
                format="cyclonedx-json",
            ),
            ScanFailed(scan_id=failed_id, project_id=project["id"], code="bad", message="x"),
        ):
            await bus.publish(payload, aggregate=f"scan:{failed_id}", actor="system")

        async def failed_seen() -> bool:
            status = await g.decisions.pool.fetchval(
                "SELECT status FROM release_decision.scans WHERE scan_id = $1", failed_id
            )
            return bool(status == "failed")

        await wait_until(failed_seen)
        failed = await _promote(g, {"snapshot_id": failed_id, "target_status": "production"})
        assert (failed.status, failed.code) == (409, "snapshot_not_promotable")

        commit = sha()
        scan = await g.scan(project["slug"], "acme/race", commit, CLEAN)
        await g.decided("acme/race", commit, decision="SHIP")
        body = {"snapshot_id": scan["id"], "target_status": "production"}
        replies = await asyncio.gather(*(_promote(g, body) for _ in range(50)))
        statuses = sorted(r.status for r in replies)
        assert statuses == [201] + [409] * 49, statuses
        assert {r.code for r in replies if r.status == 409} == {"already_promoted"}
        assert await _promotion_count(g) == 1

        _, other_scope = await g.s.api.new_key("OPERATOR", project=(await g.project())["slug"])
        hidden = await _promote(g, body | {"target_status": "qa"}, token=other_scope)
        assert (hidden.status, hidden.code) == (404, "snapshot_not_found")


async def test_health_missing_evidence_is_of_the_newest_commit_after_a_policy_change(
    start_service: StartService,
) -> None:
    """A policy change decides every commit again in one event; the repo's newest commit is
    still the one evidence last arrived for, not whichever was decided again last."""
    async with gate_stack(start_service) as g:
        project = await g.project("acme/fresh")
        old, new = "0" * 40, "f" * 40
        pending = str(uuid.uuid4())
        queued = ScanQueued(
            scan_id=pending,
            project_id=project["id"],
            kind="sbom",
            repo="acme/fresh",
            commit=old,
            source_digest="sha256:" + "0" * 64,
            size=1,
            format="cyclonedx-json",
        )
        await g.decisions.bus.publish(queued, aggregate=f"scan:{pending}", actor="system")
        await g.decided("acme/fresh", old, decision="NO_SHIP")
        await g.scan(project["slug"], "acme/fresh", new, CLEAN)
        await g.decided("acme/fresh", new, decision="SHIP")

        async def missing() -> list[object]:
            reply = await g.call("GET", "/api/v1/releases/health?repo=acme/fresh")
            assert reply.status == 200, reply.body
            return list(reply.body["missing_evidence"])

        assert await missing() == []
        put = await g.call("PUT", "/api/v1/releases/policy", json={"epss_threshold": 0.9})
        assert put.status == 200, put.body
        redecided = await g.decisions.pool.fetchval(
            "SELECT count(*) FROM release_decision.decisions WHERE policy_version = 1"
        )
        assert redecided == 2
        assert await missing() == []
