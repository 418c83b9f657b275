"""The gateway's hot decisions: kept current by release.decided / release.promoted from the
stream, read through to release-decision on a miss, never older than an applied event."""

from __future__ import annotations

import datetime as dt
import uuid

from contracts.events.releases import Blocker, ReleaseDecided, ReleasePromoted
from services.gateway.decision_cache import DecisionFeed
from services.gateway.decision_reads import FEED_KEY
from shared.service import Runtime
from tests.conftest import StartService, wait_until
from tests.integration.test_gateway_support import gateway_api
from tests.integration.test_release_decision_support import CLEAN, gate_stack, sha

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def feed(runtime: Runtime) -> DecisionFeed:
    found = runtime.state[FEED_KEY]
    assert isinstance(found, DecisionFeed)
    return found


async def publish_decided(
    runtime: Runtime, repo: str, commit: str, revision: int, decision: str
) -> None:
    await runtime.bus.publish(
        ReleaseDecided(
            repo=repo,
            commit=commit,
            revision=revision,
            decision=decision,  # type: ignore[arg-type]
            blockers=[Blocker(code="vulnerability", message="CVE-1", ref="f1")]
            if decision == "NO_SHIP"
            else [],
            blocker_total=1 if decision == "NO_SHIP" else 0,
            policy_version=2,
            evaluated_at=T0 + dt.timedelta(minutes=revision),
        ),
        aggregate=f"decision:{repo}@{commit}",
        actor="system",
    )


async def test_events_alone_keep_the_gateway_answering_without_the_owner(
    start_service: StartService,
) -> None:
    """No release-decision service runs: what the gateway answers comes from the events."""
    async with gateway_api(start_service) as api:
        repo, commit = "acme/hot", sha()
        path = f"/api/v1/releases/decision?repo={repo}&commit={commit}"
        await api.runtime.bus.publish(
            ReleasePromoted(
                promotion_id=str(uuid.uuid4()),
                snapshot_id="snap-1",
                project_id="p1",
                repo=repo,
                commit=commit,
                target_status="production",
                decision="SHIP",
                promoted_by="apikey:x",
                promoted_at=T0,
            ),
            aggregate=f"repo:{repo}",
            actor="system",
        )
        await publish_decided(api.runtime, repo, commit, 3, "NO_SHIP")
        await wait_until(lambda: _has(api.runtime, repo, commit, 3))
        reply = await api.call("GET", path)
        assert reply.status == 200, reply.body
        assert (reply.body["decision"], reply.body["revision"]) == ("NO_SHIP", 3)
        assert reply.body["baseline"]["snapshot_id"] == "snap-1"

        await publish_decided(api.runtime, repo, commit, 4, "SHIP")
        await publish_decided(api.runtime, repo, commit, 2, "NO_SHIP")  # late and older
        await wait_until(lambda: _has(api.runtime, repo, commit, 4))
        reply = await api.call("GET", path)
        assert (reply.body["decision"], reply.body["revision"]) == ("SHIP", 4)

        # A miss goes to the owner, which is not running here.
        missing = await api.call("GET", f"/api/v1/releases/decision?repo={repo}&commit={sha()}")
        assert missing.status == 503


async def _has(runtime: Runtime, repo: str, commit: str, revision: int) -> bool:
    view = feed(runtime).cache.get(repo, commit)
    return view is not None and view.revision == revision


async def test_a_decision_change_is_visible_through_the_gateway(
    start_service: StartService,
) -> None:
    async with gate_stack(start_service) as g:
        gateway = g.s.api.runtime
        project = await g.project("acme/live")
        commit = sha()
        await g.scan(project["slug"], "acme/live", commit)
        view = await g.decided("acme/live", commit, decision="NO_SHIP")
        await g.decision("acme/live", commit)  # read through: now held
        assert await _has(gateway, "acme/live", commit, view["revision"])
        hits = feed(gateway).cache.hits
        assert (await g.decision("acme/live", commit)).body == view
        assert feed(gateway).cache.hits == hits + 1

        finding = view["blockers"][0]["ref"]
        reply = await g.call(
            "PATCH",
            f"/api/v1/findings/{finding}",
            json={"state": "false_positive", "detail": "not our django"},
            headers={"If-Match": '"v1"'},
        )
        assert reply.status == 200, reply.body

        async def replaced_by_the_event() -> bool:
            held = feed(gateway).cache.get("acme/live", commit)
            return held is not None and held.decision == "SHIP"

        await wait_until(replaced_by_the_event, timeout=20)
        shipped = await g.decision("acme/live", commit)
        assert shipped.body["decision"] == "SHIP" and shipped.body["blockers"] == []
        assert shipped.body["revision"] > view["revision"]
        # What the owner says now is what the gateway holds.
        owner = await g.decision(
            "acme/live",
            commit,
            query=f"&as_of={dt.datetime.now(dt.UTC).isoformat().replace('+00:00', 'Z')}",
        )
        assert owner.status == 200 and owner.body["revision"] == shipped.body["revision"]


async def test_a_promotion_or_policy_change_through_the_gateway_is_read_at_once(
    start_service: StartService,
) -> None:
    """Read-your-writes through the hot copy: the next read after the 2xx shows the change,
    without waiting for release.promoted / release.decided to reach the gateway."""
    async with gate_stack(start_service) as g:
        gateway = g.s.api.runtime
        project = await g.project("acme/ryw")
        commit = sha()
        scan = await g.scan(project["slug"], "acme/ryw", commit, CLEAN)
        await g.decided("acme/ryw", commit, decision="SHIP")
        await g.decision("acme/ryw", commit)
        assert feed(gateway).cache.get("acme/ryw", commit) is not None

        body = {"snapshot_id": scan["id"], "target_status": "production", "release_label": "v1"}
        promoted = await g.call("POST", "/api/v1/releases/promote", json=body)
        assert promoted.status == 201, promoted.body
        after = await g.decision("acme/ryw", commit)
        assert after.body["baseline"]["snapshot_id"] == scan["id"]

        changed = await g.call(
            "PUT", "/api/v1/releases/policy", json={"require_signed_commits": True}
        )
        assert changed.status == 200, changed.body
        after = await g.decision("acme/ryw", commit)
        assert after.body["decision"] == "NO_SHIP", after.body
        assert [b["code"] for b in after.body["blockers"]] == ["unsigned_commit"]
