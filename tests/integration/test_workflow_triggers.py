"""Workflow triggers end to end (NATS, PostgreSQL, gateway, release-decision, webhook-fanout
and a local receiver): a deployment request reaches the environment's workflow signed and the
deployment becomes queued; a workflow failing to exhaustion makes it error; the GitHub
dispatch shapes; the build workflow; the secret shown once; bad input refused."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from standardwebhooks import Webhook

from tests.conftest import StartService, wait_until
from tests.integration.release_candidates_support import SHA_A, events_of, new_project
from tests.integration.test_gateway_support import Api, gateway_api
from tests.integration.webhook_delivery_support import (
    FANOUT_SETTINGS,
    Receiver,
    receiver,
    statuses,
)


@asynccontextmanager
async def stack(start_service: StartService) -> AsyncIterator[tuple[Api, Receiver]]:
    await start_service("release-decision")
    await start_service("webhook-fanout", **FANOUT_SETTINGS)
    async with gateway_api(start_service, **FANOUT_SETTINGS) as api, receiver() as rec:
        yield api, rec


async def _env(api: Api, slug: str, url: str | None, name: str = "staging") -> None:
    reply = await api.call(
        "PUT", f"/api/releases/{slug}/environments/{name}", json={"workflow_url": url}
    )
    assert reply.status == 201, reply.body


async def _candidate(api: Api, slug: str, version: str = "v1.0.0-rc1", **more: Any) -> Any:
    reply = await api.call(
        "POST",
        f"/api/releases/{slug}/releases/{version}",
        json={"repo": "acme/api", "commit": SHA_A, **more},
    )
    assert reply.status == 201, reply.body
    return reply.body


async def _deploy(api: Api, slug: str, name: str = "staging") -> Any:
    reply = await api.call(
        "POST",
        f"/api/releases/{slug}/environments/{name}/deployments",
        json={"release_candidate_version": "v1.0.0-rc1"},
    )
    assert reply.status == 201, reply.body
    return reply.body


async def _status(api: Api, slug: str, name: str = "staging") -> str:
    reply = await api.call("GET", f"/api/releases/{slug}/environments/{name}/deployments")
    return str(reply.body["items"][0]["status"])


async def test_a_deployment_request_reaches_the_workflow_signed_and_is_queued(
    start_service: StartService,
) -> None:
    async with stack(start_service) as (api, rec):
        slug = await new_project(api)
        await _env(api, slug, rec.url("deploy"))
        shown = await api.call(
            "POST", f"/api/releases/{slug}/environments/staging/workflow-secret", json={}
        )
        assert shown.status == 200, shown.body
        secret = shown.body["secret"]
        assert secret.startswith("whsec_")
        assert shown.headers["Cache-Control"] == "no-store"
        read = await api.call("GET", f"/api/releases/{slug}/environments/staging/workflow")
        assert read.status == 200 and "secret" not in read.body, read.body
        await _candidate(api, slug)
        deployment = await _deploy(api, slug)
        assert deployment["status"] == "pending"

        async def queued() -> bool:
            return await _status(api, slug) == "queued"

        await wait_until(queued, timeout=20)
        [got] = rec.at("deploy")
        event = Webhook(secret).verify(got.body, got.headers)
        assert event["type"] == "deployment.requested"
        assert event["data"]["deployment_id"] == deployment["id"]
        changes = [
            e.payload
            for e in await events_of(api.runtime, "deployment.status-changed")
            if e.payload.deployment_id == deployment["id"]
        ]
        assert [(c.status, c.previous_status, c.cause) for c in changes] == [
            ("queued", "pending", "workflow")
        ]
        # Its delivery log is the fan-out's own.
        log = await api.call("GET", f"/api/admin/webhooks/{read.body['id']}/deliveries")
        assert log.status == 200 and log.body["items"][0]["status"] == "succeeded", log.body


async def test_a_workflow_failing_to_exhaustion_makes_the_deployment_error(
    start_service: StartService,
) -> None:
    async with stack(start_service) as (api, rec):
        rec.script["broken"] = statuses(then=500)
        slug = await new_project(api)
        await _env(api, slug, rec.url("broken"))
        await _candidate(api, slug)
        deployment = await _deploy(api, slug)

        async def errored() -> bool:
            return await _status(api, slug) == "error"

        await wait_until(errored, timeout=30)
        assert len(rec.at("broken")) == 10
        [outcome] = [
            e.payload
            for e in await events_of(api.runtime, "webhook.workflow-triggered")
            if e.payload.deployment_id == deployment["id"]
        ]
        assert (outcome.outcome, outcome.status, outcome.kind) == ("failed", 500, "deployment")


async def test_github_dispatch_shapes(start_service: StartService) -> None:
    async with stack(start_service) as (api, rec):
        rec.script["repo-dispatch"] = statuses(then=204)
        rec.script["wf-dispatch"] = statuses(then=204)
        slug = await new_project(api)
        await _env(api, slug, rec.url("repo-dispatch"), name="staging")
        await _env(api, slug, rec.url("wf-dispatch"), name="production")
        token = "ghp_" + "x" * 36
        reply = await api.call(
            "PUT",
            f"/api/releases/{slug}/environments/staging/workflow",
            json={
                "format": "github_repository_dispatch",
                "dispatch_event_type": "deploy",
                "github_token": token,
            },
        )
        assert reply.status == 200 and reply.body["has_github_token"], reply.body
        assert token not in json.dumps(reply.body)
        reply = await api.call(
            "PUT",
            f"/api/releases/{slug}/environments/production/workflow",
            json={"format": "github_workflow_dispatch", "ref": "main", "github_token": token},
        )
        assert reply.status == 200, reply.body
        await _candidate(api, slug)
        await _deploy(api, slug, "staging")
        await _deploy(api, slug, "production")

        async def both() -> bool:
            return bool(rec.at("repo-dispatch") and rec.at("wf-dispatch"))

        await wait_until(both, timeout=20)
        got = rec.at("repo-dispatch")[0]
        assert got.headers["Authorization"] == f"Bearer {token}"
        body = json.loads(got.body)
        assert body["event_type"] == "deploy"
        assert body["client_payload"]["event_type"] == "deployment.requested"
        assert body["client_payload"]["data"]["environment"] == "staging"
        got = rec.at("wf-dispatch")[0]
        assert got.headers["Authorization"] == f"Bearer {token}"
        body = json.loads(got.body)
        assert body["ref"] == "main"
        inputs = body["inputs"]
        assert all(isinstance(v, str) for v in inputs.values())
        assert inputs["environment"] == "production"
        assert inputs["release_candidate_version"] == "v1.0.0-rc1"
        assert inputs["gatehouse_event"] == "deployment.requested"

        async def both_queued() -> bool:
            return (
                await _status(api, slug, "staging")
                == await _status(api, slug, "production")
                == "queued"
            )

        await wait_until(both_queued, timeout=20)
        # The token is never in the delivery log.
        wid = (await api.call("GET", f"/api/releases/{slug}/environments/staging/workflow")).body
        log = await api.call("GET", f"/api/admin/webhooks/{wid['id']}/deliveries")
        assert token not in json.dumps(log.body)


async def test_the_build_workflow_is_triggered_for_a_candidate(
    start_service: StartService,
) -> None:
    async with stack(start_service) as (api, rec):
        slug = await new_project(api)
        missing = await api.call("POST", f"/api/releases/{slug}/build-workflow/secret", json={})
        assert missing.status == 404, missing.body
        configured = await api.call(
            "PUT", f"/api/releases/{slug}/build-workflow", json={"url": rec.url("build")}
        )
        assert configured.status == 200, configured.body
        secret = (
            await api.call("POST", f"/api/releases/{slug}/build-workflow/secret", json={})
        ).body["secret"]
        cand = await _candidate(api, slug, trigger_build_workflow=True)
        assert cand["build_status"] == "requested"
        plain = await _candidate(api, slug, "v1.0.0-rc2")
        assert plain["build_status"] == "not_requested"

        async def triggered() -> bool:
            reply = await api.call("GET", f"/api/releases/{slug}/releases/v1.0.0")
            return reply.body["candidates"][0]["build_status"] == "triggered"

        await wait_until(triggered, timeout=20)
        [got] = rec.at("build")
        event = Webhook(secret).verify(got.body, got.headers)
        assert event["type"] == "release.candidate-created"
        assert event["data"]["release_candidate_id"] == cand["id"]


async def test_bad_input_is_refused_and_publishes_nothing(start_service: StartService) -> None:
    async with stack(start_service) as (api, rec):
        slug = await new_project(api)
        await _env(api, slug, rec.url("deploy"))
        before = len(await events_of(api.runtime, "webhook.>"))
        env = f"/api/releases/{slug}/environments/staging/workflow"
        for path, body in (
            (env, {"format": "github_workflow_dispatch", "github_token": "t" * 20}),  # no ref
            (env, {"format": "github_repository_dispatch"}),  # no token
            (env, {"format": "standard", "github_token": "t" * 20}),
            (env, {"format": "nope"}),
            (env, {"format": "standard\x00"}),
            (env, {"ref": "a" * 10_000, "format": "github_workflow_dispatch"}),
            (env, {"format": "standard", "extra": [[[[[[[[[[[]]]]]]]]]]]}),
            (
                f"/api/releases/{slug}/environments/staging/workflow-secret",
                {"grace_seconds": 2**70},
            ),
            (f"/api/releases/{slug}/environments/staging/workflow-secret", {"grace_seconds": -1}),
            (f"/api/releases/{slug}/build-workflow", {"url": "ftp://example.com/x"}),
            (f"/api/releases/{slug}/build-workflow", {"url": "http://169.254.169.254/x"}),
            (f"/api/releases/{slug}/build-workflow", {"url": "http://u:p@127.0.0.1/x"}),
            (f"/api/releases/{slug}/build-workflow", {"url": "http://127.0.0.1/\x00"}),
        ):
            method = "POST" if path.endswith("secret") else "PUT"
            reply = await api.call(method, path, json=body)
            assert 400 <= reply.status < 500, (path, body, reply.status, reply.body)
        missing = await api.call("PUT", f"/api/releases/{slug}/environments/nope/workflow", json={})
        assert missing.status == 404, missing.body
        huge = await api.call(
            "PUT",
            env,
            data=b"{" + b" " * (20 * 1024 * 1024) + b"}",
            headers={"Content-Type": "application/json"},
        )
        assert huge.status in (400, 413, 422), huge.status
        assert len(await events_of(api.runtime, "webhook.>")) == before
