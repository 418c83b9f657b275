"""What else fetches a mirror: a webhook's commit.pushed for the repo, and the interval."""

from __future__ import annotations

import datetime as dt

from contracts.events.commits import CommitPushed
from tests.conftest import StartService
from tests.integration.git_mirrors_support import (
    fetched,
    git_pushes,
    mirror_stack,
    new_repo_project,
    new_source,
)


async def test_a_webhook_push_fetches_the_mirror(start_service: StartService) -> None:
    source = new_source()
    source.commit("one")
    async with mirror_stack(start_service) as (api, verifier):
        await new_repo_project(api, "acme/hooked")
        await api.call("PUT", "/api/v1/repos/acme/hooked/git", json={"clone_url": source.url})
        mirror = await fetched(api, "acme/hooked")
        newer = source.commit("two")
        await verifier.bus.publish_acked(
            CommitPushed(
                repo="ACME/hooked",
                commit=newer,
                branch="main",
                source="github",
                head=True,
                pushed_at=dt.datetime.now(dt.UTC),
            ),
            aggregate="repo:acme/hooked",
            actor="system",
        )
        mirror = await fetched(api, "acme/hooked", after=mirror["status"]["finished_at"])
        assert mirror["status"]["head"] == newer
        # The fetch's own announcement (source git) does not fetch again: no loop.
        assert [p.commit for p in await git_pushes(verifier, "acme/hooked")][-1] == newer
        runner = verifier.runners["mirrors"]
        await runner.wait_for(
            await verifier.bus.last_sequence_of(runner.projection.subjects), timeout=5
        )
        jobs = await verifier.pool.fetch("SELECT id FROM signature_verifier.mirror_jobs")
        assert len(jobs) == 2, jobs  # mirror.configured and the webhook's push


async def test_the_interval_fetches_every_mirror(start_service: StartService) -> None:
    source = new_source()
    source.commit("one")
    async with mirror_stack(start_service, git_fetch_interval_seconds=1) as (api, _verifier):
        await new_repo_project(api, "acme/timed")
        await api.call("PUT", "/api/v1/repos/acme/timed/git", json={"clone_url": source.url})
        mirror = await fetched(api, "acme/timed")
        newer = source.commit("two")
        while mirror["status"]["head"] != newer:
            mirror = await fetched(api, "acme/timed", after=mirror["status"]["finished_at"])
