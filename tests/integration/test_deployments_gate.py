"""Protected environments over HTTP, with real decisions: a candidate whose commit is
NO_SHIP is refused with its blockers unless an APPROVER overrides with a reason (recorded
with the deployment and in ``deployment.requested``); SHIP goes through; unprotected
environments take anything."""

from __future__ import annotations

from contracts.events.deployments import DeploymentRequested
from tests.conftest import StartService
from tests.integration.release_candidates_support import events_of, problem_ok
from tests.integration.test_gateway_support import stream_count
from tests.integration.test_release_decision_support import CLEAN, gate_stack, sha


async def test_protected_environment_gate(start_service: StartService) -> None:
    async with gate_stack(start_service) as g:
        api = g.s.api
        project = await g.project("acme/web")
        slug = project["slug"]
        vulnerable, clean, unscanned = sha(), sha(), sha()
        await g.scan(slug, "acme/web", vulnerable)
        await g.scan(slug, "acme/web", clean, CLEAN)
        blocked_view = await g.decided("acme/web", vulnerable, decision="NO_SHIP")
        await g.decided("acme/web", clean, decision="SHIP")
        for version, commit in (
            ("v1.0.0-rc1", vulnerable),
            ("v1.0.0-rc2", clean),
            ("v1.0.0-rc3", unscanned),
        ):
            reply = await api.call(
                "POST",
                f"/api/releases/{slug}/releases/{version}",
                json={"repo": "acme/web", "commit": commit},
            )
            assert reply.status == 201, reply.body
        assert (
            await api.call(
                "PUT", f"/api/releases/{slug}/environments/prod", json={"protected": True}
            )
        ).status == 201
        assert (
            await api.call("PUT", f"/api/releases/{slug}/environments/staging", json={})
        ).status == 201
        _, operator = await api.new_key("OPERATOR")
        _, approver = await api.new_key("APPROVER")
        prod = f"/api/releases/{slug}/environments/prod/deployments"

        before = await stream_count(api.runtime)
        refused = await api.call(
            "POST", prod, json={"release_candidate_version": "v1.0.0-rc1"}, token=operator
        )
        problem_ok(refused, 409, "release_blocked", "Release candidate is blocked")
        assert refused.body["decision"] == "NO_SHIP"
        assert refused.body["blockers"] == blocked_view["blockers"]
        assert [b["code"] for b in refused.body["blockers"]] == ["vulnerability"]
        never_scanned = await api.call(
            "POST", prod, json={"release_candidate_version": "v1.0.0-rc3"}, token=approver
        )
        problem_ok(never_scanned, 409, "release_blocked", "Release candidate is blocked")
        assert [b["code"] for b in never_scanned.body["blockers"]] == ["no_evidence"]
        override = {
            "release_candidate_version": "v1.0.0-rc1",
            "override": {"reason": "hotfix INC-7"},
        }
        not_approver = await api.call("POST", prod, json=override, token=operator)
        problem_ok(
            not_approver,
            403,
            "override_not_allowed",
            "Only an APPROVER may override the release gate",
        )
        # The admin key is no approver either.
        assert (await api.call("POST", prod, json=override)).status == 403
        # Postgres text holds no NUL: such a reason was published, then refused (a 500).
        nul = {**override, "override": {"reason": "hotfix\u0000"}}
        refused_nul = await api.call("POST", prod, json=nul, token=approver)
        assert (refused_nul.status, refused_nul.code) == (422, "validation_failed")
        assert refused_nul.body["errors"][0]["field"] == "$.override.reason"
        assert await stream_count(api.runtime) == before, "refusals write nothing"

        overridden = await api.call("POST", prod, json=override, token=approver)
        assert overridden.status == 201, overridden.body
        gate = overridden.body["gate"]
        assert gate["decision"] == "NO_SHIP" and gate["blockers"] == blocked_view["blockers"]
        assert gate["override"]["reason"] == "hotfix INC-7"
        assert gate["override"]["approver"].startswith("apikey:")
        assert gate["revision"] == blocked_view["revision"]

        shipped = await api.call(
            "POST", prod, json={"release_candidate_version": "v1.0.0-rc2"}, token=operator
        )
        assert shipped.status == 201, shipped.body
        assert (
            shipped.body["gate"]["decision"] == "SHIP" and shipped.body["gate"]["override"] is None
        )

        anything = await api.call(
            "POST",
            f"/api/releases/{slug}/environments/staging/deployments",
            json={"release_candidate_version": "v1.0.0-rc1"},
            token=operator,
        )
        assert anything.status == 201 and anything.body["gate"] is None

        requested = [e for e in await events_of(api.runtime, "deployment.requested")]
        audited = [
            e for e in requested if isinstance(e.payload, DeploymentRequested) and e.payload.gate
        ]
        assert [e.payload.gate.decision for e in audited] == ["NO_SHIP", "SHIP"]
        first = audited[0]
        assert first.payload.gate.override is not None
        assert first.payload.gate.override.reason == "hotfix INC-7"
        assert first.envelope.actor == first.payload.gate.override.approver
        assert first.payload.protected and first.payload.commit == vulnerable
