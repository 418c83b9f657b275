"""Helpers of the git mirror tests (no tests here): a source repository built with the git
CLI, the gateway plus the signature-verifier, and waiting for a fetch to end."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from contracts.events.commits import CommitPushed
from shared.service import Runtime
from tests.conftest import StartService, wait_until
from tests.integration.release_candidates_support import events_of
from tests.integration.test_gateway_support import Api, gateway_api

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


class SourceRepo:
    """A non-bare repository the mirror fetches from (``file://`` URL)."""

    def __init__(self, path: Path, *, branch: str = "main") -> None:
        self.path = path
        self.branch = branch
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", branch)

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT_ENV}
        done = subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    def commit(self, message: str) -> str:
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    @property
    def url(self) -> str:
        return f"file://{self.path}"


def new_source(*, branch: str = "main") -> SourceRepo:
    return SourceRepo(Path(tempfile.mkdtemp(prefix="gatehouse-src-")) / "repo", branch=branch)


@asynccontextmanager
async def mirror_stack(
    start_service: StartService, *, gateway: dict[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[tuple[Api, Runtime]]:
    """The gateway and a signature-verifier with its own data dir (file URLs allowed unless
    overridden, no interval)."""
    settings: dict[str, Any] = {
        "data_dir": tempfile.mkdtemp(prefix="gatehouse-mirrors-"),
        "git_allow_file_urls": True,
        "git_fetch_interval_seconds": 0,
        "git_fetch_timeout_seconds": 30.0,
        **overrides,
    }
    verifier = await start_service("signature-verifier", **settings)
    async with gateway_api(start_service, **(gateway or {})) as api:
        yield api, verifier


async def new_repo_project(api: Api, *repos: str) -> dict[str, Any]:
    return await api.new_project(f"p-{uuid.uuid4().hex[:10]}", repos=list(repos))


async def fetched(api: Api, repo: str, *, after: str | None = None) -> dict[str, Any]:
    """The mirror once a fetch finished after ``after`` (a ``finished_at`` seen before)."""
    found: dict[str, Any] = {}

    async def done() -> bool:
        reply = await api.call("GET", f"/api/v1/repos/{repo}/git")
        assert reply.status == 200, reply.body
        found.update(reply.body)
        status = reply.body["status"]
        return status["state"] in ("ok", "failed") and status["finished_at"] != after

    await wait_until(done, timeout=20)
    return found


async def git_pushes(runtime: Runtime, repo: str) -> list[CommitPushed]:
    return [
        e.payload
        for e in await events_of(runtime, "commit.pushed")
        if e.payload.source == "git" and e.payload.repo.lower() == repo.lower()
    ]
