"""Registers the scm part on the release-decision runtime: the ``scm`` projection, the
``svc.release-decision.github_webhook`` / ``gitlab_webhook`` endpoints and the ``post`` job
worker with its GitHub client (its HTTP session opens when the service starts)."""

from __future__ import annotations

import os
import socket
import uuid

import aiohttp

from contracts.rpc import scm_webhooks as rpc
from services.release_decision.scm import store
from services.release_decision.scm.adapters.github_client import GithubClient
from services.release_decision.scm.handlers import WebhookHandlers
from services.release_decision.scm.poster import DecisionPoster
from services.release_decision.scm.projection import POST_JOB, ScmProjection
from shared import jobs
from shared.service import Runtime

PROJECTION = "scm"
WORKER_KEY = "scm.worker"
POSTER_KEY = "scm.poster"


def post_worker(runtime: Runtime, poster: DecisionPoster) -> jobs.JobWorker:
    """The worker running ``post`` jobs (not started)."""
    runner = runtime.runners[PROJECTION]
    return jobs.JobWorker(
        name="scm",
        pool=runtime.pool,
        database_url=runtime.settings.database_url,
        table=store.JOBS_TABLE,
        kinds=(POST_JOB,),
        handler=poster.run,
        caught_up=lambda: jobs.projection_caught_up(runtime.bus, runner),
        wait_progress=jobs.progress_waiter(runner),
        owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        lease_seconds=runtime.settings.job_lease_seconds,
        max_attempts=runtime.settings.job_max_attempts,
        bus=runtime.bus,
        give_up=poster.give_up,
    )


async def setup(runtime: Runtime) -> None:
    runner = runtime.add_projection(ScmProjection(name=PROJECTION))
    handlers = WebhookHandlers(
        pool=runtime.pool, bus=runtime.bus, runner=runner, settings=runtime.settings
    )
    runtime.rpc.add(rpc.GITHUB_WEBHOOK, rpc.GithubWebhookRequest, handlers.github)
    runtime.rpc.add(rpc.GITLAB_WEBHOOK, rpc.GitlabWebhookRequest, handlers.gitlab)

    session: aiohttp.ClientSession | None = None

    async def started() -> None:
        nonlocal session
        session = aiohttp.ClientSession()
        github = GithubClient(
            base_url=runtime.settings.github_api_url,
            token=runtime.settings.github_token,
            session=session,
        )
        poster = DecisionPoster(pool=runtime.pool, bus=runtime.bus, runner=runner, github=github)
        runtime.state[POSTER_KEY] = poster
        worker = runtime.state[WORKER_KEY] = post_worker(runtime, poster)
        worker.start()

    async def stopping() -> None:
        worker = runtime.state.pop(WORKER_KEY, None)
        if worker is not None:
            await worker.stop()
        if session is not None:
            await session.close()

    runtime.on_started.append(started)
    runtime.on_stopping.append(stopping)
