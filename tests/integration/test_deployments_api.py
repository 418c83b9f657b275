"""Environments and deployments over HTTP: configuring environments, requesting deployments
(``deployment.requested`` for the workflow), status reports as Aviator's PATCH does them, a
success superseding the environment's older successful deployments, and every error."""

from __future__ import annotations

import asyncio
from typing import Any

from contracts.events.deployments import (
    DeploymentRequested,
    DeploymentStatusChanged,
    EnvironmentUpdated,
)
from tests.conftest import StartService
from tests.integration.release_candidates_support import (
    SHA_A,
    SHA_B,
    SHA_C,
    candidates_stack,
    events_of,
    new_project,
    problem_ok,
)
from tests.integration.test_gateway_support import Api, stream_count

WORKFLOW = "https://ci.example.com/acme/api/actions/workflows/deploy.yml"


async def _cut(api: Api, slug: str, *versions: tuple[str, str]) -> None:
    for version, commit in versions:
        reply = await api.call(
            "POST",
            f"/api/releases/{slug}/releases/{version}",
            json={"repo": "acme/api", "commit": commit},
        )
        assert reply.status == 201, reply.body


async def _statuses(api: Api, slug: str, env: str) -> dict[str, str]:
    """The status of each candidate's newest deployment to ``env``."""
    reply = await api.call("GET", f"/api/releases/{slug}/environments/{env}/deployments")
    assert reply.status == 200, reply.body
    newest: dict[str, str] = {}
    for d in reply.body["items"]:  # newest first: each candidate's latest deployment
        newest.setdefault(d["release_candidate_version"], d["status"])
    return newest


async def test_environments_are_created_then_configured(start_service: StartService) -> None:
    async with candidates_stack(start_service) as api:
        slug = await new_project(api)
        path = f"/api/releases/{slug}/environments/staging"
        created = await api.call("PUT", path, json={"workflow_url": WORKFLOW})
        assert created.status == 201, created.body
        assert (created.body["name"], created.body["protected"], created.body["version"]) == (
            "staging",
            False,
            1,
        )
        count = await stream_count(api.runtime)
        same = await api.call("PUT", path, json={"workflow_url": WORKFLOW})
        assert same.status == 200 and same.body == created.body
        assert await stream_count(api.runtime) == count, "an unchanged PUT publishes nothing"
        changed = await api.call("PUT", path, json={"protected": True})
        assert changed.status == 200
        assert (
            changed.body["protected"],
            changed.body["workflow_url"],
            changed.body["version"],
        ) == (
            True,
            None,
            2,
        )
        await api.call("PUT", f"/api/releases/{slug}/environments/dev_1", json={})
        listing = await api.call("GET", f"/api/releases/{slug}/environments")
        assert [e["name"] for e in listing.body["items"]] == ["dev_1", "staging"]
        updates = [e.payload for e in await events_of(api.runtime, "environment.>")]
        assert all(isinstance(p, EnvironmentUpdated) for p in updates)
        assert [(p.name, p.version, p.created) for p in updates] == [
            ("staging", 1, True),
            ("staging", 2, False),
            ("dev_1", 1, True),
        ]
        # Bad names and bodies.
        for name in ("has space", "semi;colon", "-lead", "x" * 64):
            reply = await api.call("PUT", f"/api/releases/{slug}/environments/{name}", json={})
            problem_ok(reply, 422, "invalid_environment_name", "Invalid environment name")
        for body in ({"workflow_url": "ftp://x"}, {"protected": "yes"}, {"tier": "prod"}):
            reply = await api.call("PUT", path, json=body)
            assert reply.status == 422, (body, reply.body)
        # Postgres text holds no NUL: such a URL was published, then refused (a 500). The
        # gateway refuses it with the body, as every body error (no Aviator message).
        count = await stream_count(api.runtime)
        nul = await api.call("PUT", path, json={"workflow_url": WORKFLOW + "\u0000"})
        assert (nul.status, nul.code) == (422, "validation_failed"), nul.body
        assert nul.body["errors"][0]["field"] == "$.workflow_url"
        assert await stream_count(api.runtime) == count


async def test_deployments_follow_their_statuses(start_service: StartService) -> None:
    async with candidates_stack(start_service) as api:
        slug = await new_project(api)
        await api.call(
            "PUT", f"/api/releases/{slug}/environments/prod", json={"workflow_url": WORKFLOW}
        )
        await _cut(api, slug, ("v1.0.0-rc1", SHA_A), ("v1.0.0-rc2", SHA_B), ("v1.1.0-rc1", SHA_C))
        path = f"/api/releases/{slug}/environments/prod/deployments"

        first = await api.call("POST", path, json={"release_candidate_version": "v1.0.0-rc1"})
        assert first.status == 201, first.body
        d1 = first.body
        assert (d1["status"], d1["requested"], d1["commit"], d1["workflow_url"], d1["gate"]) == (
            "pending",
            True,
            SHA_A,
            WORKFLOW,
            None,
        )
        requested = [e.payload for e in await events_of(api.runtime, "deployment.requested")]
        assert len(requested) == 1 and isinstance(requested[0], DeploymentRequested)
        assert (
            requested[0].workflow_url,
            requested[0].repo,
            requested[0].commit,
            requested[0].release_candidate_version,
            requested[0].release_version,
            requested[0].environment,
        ) == (WORKFLOW, "acme/api", SHA_A, "v1.0.0-rc1", "v1.0.0", "prod")

        for status in ("queued", "in_progress", "success"):
            reply = await api.call(
                "PATCH", path, json={"release_candidate_version": "v1.0.0-rc1", "status": status}
            )
            assert reply.status == 200 and reply.body["status"] == status
            assert reply.body["id"] == d1["id"]
        count = await stream_count(api.runtime)
        same = await api.call(
            "PATCH", path, json={"release_candidate_version": "v1.0.0-rc1", "status": "success"}
        )
        assert same.status == 200 and await stream_count(api.runtime) == count

        # rc2 fails: rc1 stays live. Then rc2 is redeployed and succeeds: rc1 is superseded.
        await api.call("POST", path, json={"release_candidate_version": "v1.0.0-rc2"})
        failed = await api.call(
            "PATCH", path, json={"release_candidate_version": "v1.0.0-rc2", "status": "failure"}
        )
        assert failed.body["status"] == "failure"
        assert await _statuses(api, slug, "prod") == {
            "v1.0.0-rc2": "failure",
            "v1.0.0-rc1": "success",
        }
        retry = await api.call("POST", path, json={"release_candidate_version": "v1.0.0-rc2"})
        assert retry.status == 201 and retry.body["id"] != failed.body["id"]
        ok = await api.call(
            "PATCH", path, json={"release_candidate_version": "v1.0.0-rc2", "status": "success"}
        )
        assert ok.body["id"] == retry.body["id"] and ok.body["status"] == "success"
        listing = await api.call("GET", path)
        assert [(d["release_candidate_version"], d["status"]) for d in listing.body["items"]] == [
            ("v1.0.0-rc2", "success"),
            ("v1.0.0-rc2", "failure"),
            ("v1.0.0-rc1", "inactive"),
        ]
        superseded = [
            e.payload
            for e in await events_of(api.runtime, "deployment.status-changed")
            if e.payload.cause == "superseded"
        ]
        assert len(superseded) == 1 and isinstance(superseded[0], DeploymentStatusChanged)
        assert (
            superseded[0].deployment_id,
            superseded[0].status,
            superseded[0].previous_status,
        ) == (
            d1["id"],
            "inactive",
            "success",
        )
        assert superseded[0].superseded_by == ok.body["id"]
        env = await api.call("GET", f"/api/releases/{slug}/environments")
        assert env.body["items"][0]["active_deployment_id"] == ok.body["id"]
        assert env.body["items"][0]["active_release_candidate_version"] == "v1.0.0-rc2"

        # A CD pipeline reports a deployment Gatehouse never requested: it is created.
        reported = await api.call(
            "PATCH", path, json={"release_candidate_version": "v1.1.0-rc1", "status": "in_progress"}
        )
        assert reported.status == 200
        assert (reported.body["status"], reported.body["requested"]) == ("in_progress", False)
        done = await api.call(
            "PATCH", path, json={"release_candidate_version": "v1.1.0-rc1", "status": "success"}
        )
        assert done.body["id"] == reported.body["id"]
        assert await _statuses(api, slug, "prod") == {
            "v1.1.0-rc1": "success",
            "v1.0.0-rc2": "inactive",
            "v1.0.0-rc1": "inactive",
        }
        failed_one = await api.call("GET", f"{path}?status=failure")
        assert [d["id"] for d in failed_one.body["items"]] == [failed.body["id"]], (
            "a failed deployment is not superseded"
        )
        # Listing filters and pages.
        live = await api.call("GET", f"{path}?status=success&status=in_progress")
        assert [d["release_candidate_version"] for d in live.body["items"]] == ["v1.1.0-rc1"]
        of_rc2 = await api.call("GET", f"{path}?release_candidate_version=v1.0.0-rc2")
        assert len(of_rc2.body["items"]) == 2
        page = await api.call("GET", f"{path}?limit=2")
        rest = await api.call("GET", f"{path}?limit=2&cursor={page.body['next_cursor']}")
        ids = [d["id"] for d in page.body["items"] + rest.body["items"]]
        assert len(ids) == len(set(ids)) == 4 and rest.body["next_cursor"] is None


async def test_deployment_errors_are_aviators(start_service: StartService) -> None:
    async with candidates_stack(start_service) as api:
        slug = await new_project(api)
        await api.call("PUT", f"/api/releases/{slug}/environments/prod", json={})
        await _cut(api, slug, ("v1.0.0-rc1", SHA_A))
        before = await stream_count(api.runtime)
        path = f"/api/releases/{slug}/environments/prod/deployments"
        for method in ("POST", "PATCH"):
            body: dict[str, Any] = {"release_candidate_version": "v1.0.0-rc1"}
            if method == "PATCH":
                body["status"] = "success"
            for env in ("nowhere", "bad%20name"):
                reply = await api.call(
                    method, f"/api/releases/{slug}/environments/{env}/deployments", json=body
                )
                problem_ok(reply, 404, "environment_not_found", "Release environment not found")
            for version, status, code, error in (
                ("v1.0.0-rc2", 404, "release_not_found", "Release not found"),
                ("v2.0.0-rc1", 404, "release_not_found", "Release not found"),
                (
                    "v1.0.0",
                    400,
                    "invalid_release_candidate_version",
                    "Invalid release candidate version",
                ),
            ):
                reply = await api.call(
                    method, path, json={**body, "release_candidate_version": version}
                )
                problem_ok(reply, status, code, error)
        for body in (
            {"release_candidate_version": "v1.0.0-rc1", "status": "done"},
            {"release_candidate_version": "v1.0.0-rc1"},
            {"status": "success"},
        ):
            reply = await api.call("PATCH", path, json=body)
            assert reply.status == 422, (body, reply.body)
        empty_reason = await api.call(
            "POST",
            path,
            json={"release_candidate_version": "v1.0.0-rc1", "override": {"reason": ""}},
        )
        assert empty_reason.status == 422
        listing = await api.call("GET", f"/api/releases/{slug}/environments/nowhere/deployments")
        problem_ok(listing, 404, "environment_not_found", "Release environment not found")
        bad_status = await api.call("GET", f"{path}?status=done")
        assert bad_status.status == 422
        assert await stream_count(api.runtime) == before, "nothing was written"


async def test_status_reports_of_one_environment_are_serialised(
    start_service: StartService,
) -> None:
    async with candidates_stack(start_service) as api:
        slug = await new_project(api)
        await api.call("PUT", f"/api/releases/{slug}/environments/prod", json={})
        versions = [f"v1.0.{n}-rc1" for n in range(6)]
        await _cut(api, slug, *((v, f"{n:x}" * 40) for n, v in enumerate(versions)))
        path = f"/api/releases/{slug}/environments/prod/deployments"
        for version in versions:
            await api.call("POST", path, json={"release_candidate_version": version})
        replies = await asyncio.gather(
            *(
                api.call("PATCH", path, json={"release_candidate_version": v, "status": "success"})
                for v in versions
            )
        )
        assert all(r.status == 200 for r in replies)
        # Whatever the order the reports were taken in, the newest deployment is live (nothing
        # newer can supersede it), and every superseded deployment was announced exactly once.
        listing = (await api.call("GET", path)).body["items"]
        assert listing[0]["release_candidate_version"] == versions[-1]
        assert listing[0]["status"] == "success"
        changes = [e.payload for e in await events_of(api.runtime, "deployment.status-changed")]
        superseded = [p.deployment_id for p in changes if p.cause == "superseded"]
        assert len(superseded) == len(set(superseded))
        assert sum(d["status"] == "inactive" for d in listing) == len(superseded)
