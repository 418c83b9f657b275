"""Helpers for the GitHub / GitLab webhook tests (no tests here): the release-decision
service and the gateway wired to a stand-in GitHub, signed deliveries, payload builders."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from contracts.envelope import decode_event
from contracts.events.releases import Blocker, ReleaseDecided
from shared import jobs
from shared.service import Runtime
from tests.conftest import StartService, wait_until
from tests.integration.test_gateway_support import NO_TOKEN, Api, Reply, gateway_api
from tests.stand_ins.github import StandInGithub

SECRET = "whsec-test-0123456789"
GITLAB_TOKEN = "gltok-test-0123456789"
GITHUB_PATH = "/api/v1/releases/github-webhook"
GITLAB_PATH = "/api/v1/releases/gitlab-webhook"


def sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


def repo_name() -> str:
    return f"acme/r-{uuid.uuid4().hex[:8]}"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class ScmStack:
    api: Api
    service: Runtime
    github: StandInGithub

    async def deliver(
        self,
        event: str,
        payload: Any,
        *,
        delivery: str | None = None,
        body: bytes | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        data = body if body is not None else json.dumps(payload).encode()
        sent = {
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": signature if signature is not None else sign(data),
            **(headers or {}),
        }
        return await self.api.call("POST", GITHUB_PATH, token=NO_TOKEN, data=data, headers=sent)

    async def gitlab(
        self,
        event: str,
        payload: Any,
        *,
        delivery: str | None = None,
        token: str | None = GITLAB_TOKEN,
    ) -> Reply:
        sent = {
            "Content-Type": "application/json",
            "X-Gitlab-Event": event,
            "X-Gitlab-Event-UUID": delivery or str(uuid.uuid4()),
        }
        if token is not None:
            sent["X-Gitlab-Token"] = token
        data = json.dumps(payload).encode()
        return await self.api.call("POST", GITLAB_PATH, token=NO_TOKEN, data=data, headers=sent)

    async def decide(
        self, repo: str, commit: str, *, revision: int, blockers: list[Blocker] | None = None
    ) -> int:
        """Publish a release.decided as the decisions part would; its stream sequence."""
        blockers = blockers or []
        _, seq = await self.service.bus.publish(
            ReleaseDecided(
                repo=repo,
                commit=commit,
                revision=revision,
                decision="NO_SHIP" if blockers else "SHIP",
                blockers=blockers,
                blocker_total=len(blockers),
                policy_version=0,
                evaluated_at=dt.datetime(2026, 11, 25, 12, 0, revision, tzinfo=dt.UTC),
            ),
            aggregate=f"commit:{repo}@{commit}",
            actor="system",
        )
        return seq

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.service.pool.acquire() as conn:
            return list(await conn.fetch(sql, *args))

    async def jobs_done(self) -> bool:
        runner = self.service.runners["scm"]
        if not await jobs.projection_caught_up(self.service.bus, runner):
            return False
        rows = await self.fetch(
            "SELECT count(*) AS open FROM release_decision.scm_jobs WHERE status <> 'done'"
        )
        return int(rows[0]["open"]) == 0

    @staticmethod
    async def fetch_jobs(settings: Any) -> list[tuple[str, str]]:
        """(id, status) of every posting job, read without the service's pool."""
        conn = await asyncpg.connect(settings.database_url)
        try:
            rows = await conn.fetch("SELECT id, status FROM release_decision.scm_jobs ORDER BY id")
        finally:
            await conn.close()
        return [(row["id"], row["status"]) for row in rows]

    async def settle(self, after: int = 0, timeout: float = 15.0) -> None:  # noqa: ASYNC109
        """Wait until the scm projection has applied stream sequence ``after`` (the consumer's
        pending count may lag a publish by a moment), has caught up, and every posting job
        is done."""
        await self.service.runners["scm"].wait_for(after, timeout=timeout)
        await wait_until(self.jobs_done, timeout=timeout)


async def events_of(stack: ScmStack, subject: str) -> list[Any]:
    """The payloads of every ``subject`` event on the stream so far."""
    js = stack.service.bus.js
    found = []
    sub = await js.pull_subscribe(subject, durable=None, stream=stack.service.bus.stream)
    try:
        while True:
            try:
                msgs = await sub.fetch(100, timeout=0.3)
            except TimeoutError:
                return found
            for msg in msgs:
                found.append(decode_event(msg.data, sequence=msg.metadata.sequence.stream).payload)
                await msg.ack()
    finally:
        await sub.unsubscribe()


@asynccontextmanager
async def scm_stack(start_service: StartService, **overrides: Any) -> AsyncIterator[ScmStack]:
    github = await StandInGithub().start()
    try:
        settings: dict[str, Any] = {
            "github_webhook_secret": SECRET,
            "gitlab_webhook_token": GITLAB_TOKEN,
            "github_api_url": github.url,
            "github_token": github.token,
            **overrides,
        }
        service = await start_service("release-decision", **settings)
        async with gateway_api(start_service, **settings) as api:
            yield ScmStack(api=api, service=service, github=github)
    finally:
        await github.stop()


def push_payload(
    repo: str, commits: list[str], *, ref: str = "refs/heads/main", after: str | None = None
) -> dict[str, Any]:
    after = after or (commits[-1] if commits else sha("none"))
    return {
        "ref": ref,
        "before": sha("before"),
        "after": after,
        "created": False,
        "deleted": False,
        "forced": False,
        "repository": {"full_name": repo, "default_branch": "main", "id": 1},
        "pusher": {"name": "ada"},
        "commits": [
            {
                "id": c,
                "message": f"commit {i}",
                "timestamp": "2026-11-25T12:00:00Z",
                "url": f"https://github.com/{repo}/commit/{c}",
                "author": {"name": "Ada", "email": "ada@example.org", "username": "ada"},
                "distinct": True,
            }
            for i, c in enumerate(commits)
        ],
        "head_commit": None,
    }


def pull_payload(
    repo: str, number: int, head: str, *, action: str = "opened", state: str = "open"
) -> dict[str, Any]:
    return {
        "action": action,
        "number": number,
        "pull_request": {
            "number": number,
            "state": state,
            "merged": False,
            "title": "Add a feature",
            "html_url": f"https://github.com/{repo}/pull/{number}",
            "head": {"sha": head, "ref": "feature"},
            "base": {"sha": sha("base"), "ref": "main"},
        },
        "repository": {"full_name": repo},
        "sender": {"login": "ada"},
    }


def check_run_payload(repo: str, head: str, numbers: list[int], *, name: str) -> dict[str, Any]:
    return {
        "action": "rerequested",
        "check_run": {
            "id": 77,
            "name": name,
            "head_sha": head,
            "pull_requests": [{"number": n, "head": {"sha": head}} for n in numbers],
        },
        "repository": {"full_name": repo},
    }
