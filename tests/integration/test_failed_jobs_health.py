"""Failed jobs as an operator meets them on a running stack: release-decision's job that
publishes ``release.decided`` keeps failing (the bus refuses it, say), ends ``failed`` after
``GATEHOUSE_JOB_MAX_ATTEMPTS`` attempts, /health/ready and GET /api/v1/releases/health say
``degraded`` naming it (the commit and the revision never announced), the decision read
still answers the current decision (from the read model, not from the events that were not
published), and `gatehouse jobs` retries it (once the cause is fixed) or drops it."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import aiohttp

from services.release_decision.decisions.wiring import WORKER_KEY
from shared import jobs
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, wait_until
from tests.integration.audit_support import CLI, CLI_CWD, cli_env
from tests.integration.test_release_decision_support import (
    CLEAN,
    decided_count,
    gate_stack,
    sha,
)

TABLE = "release_decision.decision_jobs"


async def _ready(runtime: Runtime) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{runtime.http_port}/health/ready") as resp,
    ):
        return resp.status, await resp.json()


async def _gatehouse(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [*CLI, "jobs", *args],
        cwd=CLI_CWD,
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _jobs_of(runtime: Runtime, repo: str, commit: str) -> list[Any]:
    """The commit's decision jobs, newest revision first."""
    return list(
        await runtime.pool.fetch(
            f"SELECT id, status, attempts, last_error FROM {TABLE} "
            "WHERE payload->'event'->>'repo' = $1 AND payload->'event'->>'commit' = $2 "
            "ORDER BY (payload->'event'->>'revision')::int DESC",
            repo,
            commit,
        )
    )


async def _until_jobs(runtime: Runtime, repo: str, commit: str, status: str) -> list[Any]:
    async def reached() -> bool:
        rows = await _jobs_of(runtime, repo, commit)
        return bool(rows) and {r["status"] for r in rows} == {status}

    await wait_until(reached, timeout=20)
    return await _jobs_of(runtime, repo, commit)


async def test_a_decision_never_published_is_failed_degraded_and_answered(
    start_service: StartService, settings: Settings
) -> None:
    async with gate_stack(start_service, job_max_attempts=2) as g:
        decisions = g.decisions
        worker: jobs.JobWorker = decisions.state[WORKER_KEY]
        publish = worker.handler
        refusals: list[int] = []

        async def refused(job: jobs.Job) -> None:
            refusals.append(job.attempts)
            raise PermissionError("publish to release.decided refused")

        worker.handler = refused
        project = await g.project("acme/unannounced")
        commit = sha()
        await g.scan(project["slug"], "acme/unannounced", commit, CLEAN)
        # The decision read answers the read model's current decision, not an announcement:
        # what it says does not depend on the events that were never published.
        view = await g.decided("acme/unannounced", commit, decision="SHIP")
        rows = await _until_jobs(decisions, "acme/unannounced", commit, "failed")
        # One job per revision (the scan queued: pending evidence; then completed: SHIP).
        assert len(rows) == view["revision"] == 2
        assert sorted(refusals) == [1, 1, 2, 2]
        assert {r["attempts"] for r in rows} == {2}
        assert "PermissionError: publish to release.decided refused" in rows[0]["last_error"]
        assert await decided_count(decisions) == 0
        job_ref = f"release-decision:decision_jobs:{rows[0]['id']}"

        status, ready = await _ready(decisions)
        assert (status, ready["status"]) == (200, "degraded")
        detail = ready["checks"]["jobs"][TABLE]
        assert detail["failed"] == 2 and detail["newest"][0]["id"] == job_ref
        assert any("gatehouse jobs list" in reason for reason in ready["checks"]["degraded"])

        health = await g.call("GET", "/api/v1/releases/health")
        assert health.status == 200, health.body
        assert (health.body["status"], health.body["ok"]) == ("degraded", False)
        failed, older = health.body["failed_jobs"]
        assert older["revision"] == 1
        assert (failed["id"], failed["repo"], failed["commit"]) == (
            job_ref,
            "acme/unannounced",
            commit,
        )
        assert (failed["revision"], failed["decision"], failed["kind"]) == (
            2,
            "SHIP",
            "publish_decided",
        )

        listed = await _gatehouse(settings, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert {(j["id"], j["status"], j["attempts"]) for j in json.loads(listed.stdout)} == {
            (f"release-decision:decision_jobs:{r['id']}", "failed", 2) for r in rows
        }
        text = await _gatehouse(settings, "list", "--service", "release-decision")
        assert job_ref in text.stdout and "PermissionError" in text.stdout

        # The cause fixed, a retry publishes the decision: health is ok again.
        worker.handler = publish
        retried = await _gatehouse(settings, "retry", "--all", "--service", "release-decision")
        assert retried.returncode == 0, retried.stderr
        assert job_ref in retried.stdout
        await _until_jobs(decisions, "acme/unannounced", commit, "done")

        async def announced() -> bool:
            return await decided_count(decisions) == 2

        await wait_until(announced)
        assert (await _ready(decisions))[1]["status"] == "ok"
        health = await g.call("GET", "/api/v1/releases/health")
        assert (health.body["status"], health.body["failed_jobs"]) == ("ok", [])
        again = await _gatehouse(settings, "retry", job_ref)
        assert again.returncode == 2 and "not a failed or dropped job" in again.stderr

        # Another one failing, dropped: out of health, kept as dropped.
        worker.handler = refused
        other = sha()
        await g.scan(project["slug"], "acme/unannounced", other, CLEAN)
        await g.decided("acme/unannounced", other, decision="SHIP")
        rows = await _until_jobs(decisions, "acme/unannounced", other, "failed")
        other_refs = [f"release-decision:decision_jobs:{r['id']}" for r in rows]
        assert (await _ready(decisions))[1]["status"] == "degraded"
        dropped = await _gatehouse(settings, "drop", *other_refs)
        assert dropped.returncode == 0, dropped.stderr
        assert (await _ready(decisions))[1]["status"] == "ok"
        assert "no failed jobs" in (await _gatehouse(settings, "list")).stdout
        kept = json.loads((await _gatehouse(settings, "list", "--dropped", "--json")).stdout)
        assert {(j["id"], j["status"]) for j in kept} == {(r, "dropped") for r in other_refs}
        unknown = await _gatehouse(settings, "drop", "release-decision:nope:1")
        assert unknown.returncode == 2 and "no jobs table" in unknown.stderr
