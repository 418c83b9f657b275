"""The ``post`` job: show a commit's decision on GitHub, as a check run and as the one
Gatehouse comment of a pull request.

Posting is serialised per repo (a Postgres advisory lock held across the GitHub calls), and
each step looks at the read model first:

* the pull request moved on (another head) or closed → nothing is posted (``superseded``);
* the check run of the commit is created once and edited when the decision changes (a
  ``check_run`` re-run request creates a new one, as GitHub expects); without a stored id
  the commit's runs of that name are looked up first, so a run GitHub made before a crash
  or a 5xx is adopted, not made twice;
* the comment id is stored; without one, the pull request's comments are searched for
  :data:`~render.MARKER` before a comment is created, so a post that crashed after GitHub
  created the comment but before ``scm.decision-posted`` was recorded adopts it instead of
  adding a second; an unchanged body is not edited again.

The outcome is ``scm.decision-posted`` (its id derived from the job, so a re-run after a
crash publishes the same event), which stores the ids and finishes the job; the lock is
released only once the projection has applied it.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

import asyncpg
import msgspec

from contracts.events.scm import DecisionPosted
from services.release_decision.scm import store
from services.release_decision.scm.adapters.github_client import GithubClient, GithubError
from services.release_decision.scm.domain import render
from services.release_decision.scm.ids import job_event_id
from services.release_decision.scm.metrics import POSTS
from shared import jobs
from shared.bus import Bus
from shared.commands import advisory_locked
from shared.logging import get_logger
from shared.projection import ProjectionRunner

log = get_logger(__name__)
SYSTEM = "system"
WAIT_APPLIED_SECONDS = 10.0


@dataclass
class DecisionPoster:
    pool: asyncpg.Pool
    bus: Bus
    runner: ProjectionRunner
    github: GithubClient

    async def run(self, job: jobs.Job) -> None:
        repo, commit = str(job.payload["repo"]), str(job.payload["commit"])
        number = job.payload.get("number")
        number = int(number) if number is not None else None
        if not self.github.configured:
            log.warning("github_token_missing", repo=repo, commit=commit, number=number)
            await self._skipped(job, repo, commit, number, "no_token")
            return
        async with self._locked(repo) as conn:
            if number is not None:
                pull = await store.pull_request(conn, repo, number)
                if pull is None or pull["state"] != "open" or pull["head_sha"] != commit:
                    await self._skipped(job, repo, commit, number, "superseded")
                    return
            view = await store.decision_of(conn, repo, commit)
            check_run_id = await self._check_run(
                conn, view, new=bool(job.payload.get("new_check_run"))
            )
            comment_id, created, digest = None, False, None
            if number is not None:
                comment_id, created, digest = await self._comment(conn, view, number)
            _, seq = await self.bus.publish(
                DecisionPosted(
                    repo=repo,
                    number=number,
                    commit=commit,
                    job_id=job.id,
                    outcome="posted",
                    decision=view.decision,
                    revision=view.revision,
                    check_run_id=check_run_id,
                    comment_id=comment_id,
                    comment_created=created,
                    body_digest=digest,
                    posted_at=dt.datetime.now(dt.UTC),
                ),
                aggregate=f"repo:{repo}",
                actor=SYSTEM,
                event_id=job_event_id(job.id, "posted"),
            )
            # The next post of this repo must see these ids.
            await self.runner.wait_for(seq, timeout=WAIT_APPLIED_SECONDS)
        POSTS.labels("posted").inc()
        log.info(
            "decision_posted",
            repo=repo,
            commit=commit,
            number=number,
            decision=view.decision,
            revision=view.revision,
        )

    async def give_up(self, job: jobs.Job) -> None:
        """GitHub kept failing: record it (this finishes the job)."""
        number = job.payload.get("number")
        await self._skipped(
            job,
            str(job.payload["repo"]),
            str(job.payload["commit"]),
            int(number) if number is not None else None,
            "gave_up",
        )

    async def _check_run(
        self, conn: asyncpg.Connection, view: render.PostedDecision, *, new: bool
    ) -> int | None:
        body = msgspec.to_builtins(render.check_run(view))
        stored = await store.check_run(conn, view.repo, view.commit)
        if new:
            return await self.github.create_check_run(view.repo, body)
        if stored is None:
            # A crash (or a 5xx) after GitHub made the run leaves nothing stored: adopt it.
            found = await self.github.find_check_run(view.repo, view.commit, body["name"])
            if found is None:
                return await self.github.create_check_run(view.repo, body)
            return await self.github.update_check_run(view.repo, found, body)
        if stored["revision"] == view.revision and stored["decision"] == view.decision:
            return int(stored["check_run_id"])
        try:
            return await self.github.update_check_run(view.repo, stored["check_run_id"], body)
        except GithubError as exc:
            if exc.github_status != 404:
                raise
            return await self.github.create_check_run(view.repo, body)

    async def _comment(
        self, conn: asyncpg.Connection, view: render.PostedDecision, number: int
    ) -> tuple[int, bool, str]:
        body = render.comment_body(view)
        digest = render.body_digest(body)
        stored = await store.comment(conn, view.repo, number)
        if stored is not None:
            if stored["body_digest"] == digest:
                return int(stored["comment_id"]), False, digest
            try:
                comment_id = await self.github.update_comment(view.repo, stored["comment_id"], body)
                return comment_id, False, digest
            except GithubError as exc:
                if exc.github_status != 404:  # deleted by someone: make a new one
                    raise
        for existing in await self.github.issue_comments(view.repo, number):
            if render.is_gatehouse_comment(existing.get("body")):
                comment_id = int(existing["id"])
                if existing.get("body") != body:
                    await self.github.update_comment(view.repo, comment_id, body)
                return comment_id, False, digest
        return await self.github.create_comment(view.repo, number, body), True, digest

    async def _skipped(
        self, job: jobs.Job, repo: str, commit: str, number: int | None, reason: str
    ) -> None:
        POSTS.labels(reason).inc()
        await self.bus.publish(
            DecisionPosted(
                repo=repo,
                number=number,
                commit=commit,
                job_id=job.id,
                outcome="skipped",
                reason=reason,
                posted_at=dt.datetime.now(dt.UTC),
            ),
            aggregate=f"repo:{repo}",
            actor=SYSTEM,
            event_id=job_event_id(job.id, reason),
        )

    def _locked(self, repo: str) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return advisory_locked(self.pool, f"release_decision.scm:post:{repo}")
