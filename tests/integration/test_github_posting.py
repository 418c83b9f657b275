"""Posting decisions back to GitHub (against the stand-in server): a check run and ONE pull
request comment per PR, updated in place as ``release.decided`` changes, never duplicated;
rate limits and server errors are waited out; a replay rebuilds the scm tables and posts
nothing again."""

from __future__ import annotations

import uuid

from contracts.events.releases import Blocker
from services.registry import definition
from services.release_decision.scm import wiring
from services.release_decision.scm.domain.render import MARKER
from services.release_decision.scm.store import PROJECTION_TABLES
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, table_digest, wait_until
from tests.integration.test_github_support import (
    ScmStack,
    check_run_payload,
    events_of,
    pull_payload,
    repo_name,
    scm_stack,
    sha,
)

VULN = Blocker(code="vulnerability", message="CVE-2026-0001 in pkg:pypi/django (HIGH)", ref="f-1")
LICENSE = Blocker(code="forbidden_license", message="1 forbidden license", ref="scan-1")


def _comment_writes(stack: ScmStack) -> list[tuple[str, str]]:
    return [(c.method, c.path) for c in stack.github.writes() if "/comments" in c.path]


async def _open_pr(stack: ScmStack, repo: str, number: int, head: str, **kw: str) -> None:
    reply = await stack.deliver("pull_request", pull_payload(repo, number, head, **kw))
    assert reply.status == 200 and reply.body["status"] == "recorded", reply.body
    await stack.settle()


async def test_one_comment_updated_as_the_decision_changes(start_service: StartService) -> None:
    async with scm_stack(start_service) as stack:
        repo, head = repo_name(), sha("head-1")
        await _open_pr(stack, repo, 7, head)
        # No decision yet: NO_SHIP, no evidence.
        [comment] = stack.github.comments_on(repo, 7)
        assert comment["body"].startswith(MARKER) and "NO_SHIP" in comment["body"]
        assert "no_evidence" in comment["body"]
        [run] = stack.github.check_runs_on(repo, head)
        assert run["conclusion"] == "failure" and run["name"] == "Gatehouse release gate"
        assert run["status"] == "completed"

        await stack.decide(repo, head, revision=1, blockers=[VULN, LICENSE])
        await wait_until(lambda: _has(stack, repo, 7, "CVE-2026-0001"))
        await stack.settle()
        [comment] = stack.github.comments_on(repo, 7)
        assert "NO_SHIP: 2 blockers" in comment["body"] and "forbidden_license" in comment["body"]

        await stack.decide(repo, head, revision=2)
        await wait_until(lambda: _has(stack, repo, 7, "SHIP", absent="NO_SHIP"))
        await stack.settle()
        [comment] = stack.github.comments_on(repo, 7)
        [run] = stack.github.check_runs_on(repo, head)
        assert run["conclusion"] == "success" and run["output"]["title"] == "SHIP"

        # An older revision arriving late changes nothing.
        writes = len(stack.github.writes())
        seq = await stack.decide(repo, head, revision=1, blockers=[VULN])
        await stack.settle(seq)
        assert len(stack.github.writes()) == writes

        assert _comment_writes(stack) == [
            ("POST", f"/repos/{repo}/issues/7/comments"),
            ("PATCH", f"/repos/{repo}/issues/comments/{comment['id']}"),
            ("PATCH", f"/repos/{repo}/issues/comments/{comment['id']}"),
        ]
        # Only the first post looked for an existing comment and check run; the ids were
        # stored after that.
        lists = [c for c in stack.github.calls if c.method == "GET" and "comments" in c.path]
        assert len(lists) == 1 and lists[0].query["per_page"] == "100"
        runs = [c for c in stack.github.calls if c.method == "GET" and "check-runs" in c.path]
        assert len(runs) == 1 and runs[0].query["check_name"] == "Gatehouse release gate"

        # A push to the pull request: the new head's decision, in the same comment.
        new_head = sha("head-2")
        await stack.decide(repo, new_head, revision=1, blockers=[VULN])
        await _open_pr(stack, repo, 7, new_head, action="synchronize")
        [comment] = stack.github.comments_on(repo, 7)
        assert new_head[:12] in comment["body"] and "NO_SHIP: 1 blocker" in comment["body"]
        assert stack.github.check_runs_on(repo, new_head)[0]["conclusion"] == "failure"
        # The old head's decision changing does not touch the pull request any more.
        writes, posted = (
            len(stack.github.writes()),
            len(await events_of(stack, "scm.decision-posted")),
        )
        seq = await stack.decide(repo, head, revision=3, blockers=[LICENSE])
        await stack.settle(seq)
        assert len(stack.github.writes()) == writes
        assert len(await events_of(stack, "scm.decision-posted")) == posted


async def _has(stack: ScmStack, repo: str, number: int, text: str, absent: str = "") -> bool:
    found = stack.github.comments_on(repo, number)
    return (
        bool(found) and text in found[0]["body"] and (not absent or absent not in found[0]["body"])
    )


async def test_closed_pull_requests_and_rerequested_checks(start_service: StartService) -> None:
    async with scm_stack(start_service) as stack:
        repo, head = repo_name(), sha("rr")
        await _open_pr(stack, repo, 3, head)
        await _open_pr(stack, repo, 4, head)  # two pull requests, one head: two comments
        assert len(stack.github.comments_on(repo, 3)) == len(stack.github.comments_on(repo, 4)) == 1
        await _open_pr(stack, repo, 4, head, action="closed", state="closed")

        name = "Gatehouse release gate"
        reply = await stack.deliver("check_run", check_run_payload(repo, head, [3, 4], name=name))
        assert reply.status == 200 and reply.body["status"] == "recorded"
        await stack.settle()
        assert len(stack.github.check_runs_on(repo, head)) == 2  # a new run, as GitHub expects
        assert len(stack.github.comments_on(repo, 3)) == 1

        seq = await stack.decide(repo, head, revision=1, blockers=[VULN])
        await stack.settle(seq)
        assert "CVE-2026-0001" in stack.github.comments_on(repo, 3)[0]["body"]
        assert "CVE-2026-0001" not in stack.github.comments_on(repo, 4)[0]["body"]  # closed


async def test_rate_limits_and_server_errors_are_waited_out(start_service: StartService) -> None:
    async with scm_stack(start_service) as stack:
        repo, head = repo_name(), sha("rl")
        stack.github.rate_limit_next(primary=False, seconds=1)  # 429 Retry-After: 1
        stack.github.fail_next(2, status=502)
        stack.github.rate_limit_next(primary=True, seconds=0)  # 403, remaining 0, reset
        await _open_pr(stack, repo, 9, head)
        assert len(stack.github.comments_on(repo, 9)) == 1
        assert len(stack.github.check_runs_on(repo, head)) == 1
        # The first call, the (idempotent) look for an existing check run, is refused four
        # times and waited out; each POST then goes out once.
        lookups = [c for c in stack.github.calls if c.method == "GET" and "check-runs" in c.path]
        assert len(lookups) == 1 + 4
        assert [c.method for c in stack.github.calls].count("POST") == 2


async def test_a_comment_github_made_before_failing_is_not_made_twice(
    start_service: StartService,
) -> None:
    """GitHub makes the comment, then answers 502: the POST is not sent again; the job's
    next attempt finds the comment by its marker and keeps it."""
    async with scm_stack(start_service) as stack:
        repo, head = repo_name(), sha("made-then-failed")
        stack.github.fail_after_next(1, method="POST", path_contains="/comments")
        reply = await stack.deliver("pull_request", pull_payload(repo, 8, head))
        assert reply.status == 200, reply.body
        await stack.settle(timeout=30.0)
        [comment] = stack.github.comments_on(repo, 8)
        rows = await stack.fetch("SELECT comment_id FROM release_decision.scm_comments")
        assert [r["comment_id"] for r in rows] == [comment["id"]]
        posts = [c for c in stack.github.calls if c.method == "POST" and "comments" in c.path]
        assert len(posts) == 1


async def test_a_check_run_made_before_a_failure_is_adopted_not_made_twice(
    start_service: StartService,
) -> None:
    """GitHub makes the check run, then answers 502: the POST is not sent again; the job's
    next attempt finds the run on the commit and updates it."""
    async with scm_stack(start_service) as stack:
        repo, head = repo_name(), sha("run-made-then-failed")
        stack.github.fail_after_next(1, method="POST", path_contains="/check-runs")
        reply = await stack.deliver("pull_request", pull_payload(repo, 9, head))
        assert reply.status == 200, reply.body
        await stack.settle(timeout=30.0)
        [run] = stack.github.check_runs_on(repo, head)
        rows = await stack.fetch("SELECT check_run_id FROM release_decision.scm_check_runs")
        assert [r["check_run_id"] for r in rows] == [run["id"]]
        posts = [c for c in stack.github.calls if c.method == "POST" and "check-runs" in c.path]
        assert len(posts) == 1


async def test_a_pull_request_change_delivered_late_does_not_move_the_head_back(
    start_service: StartService,
) -> None:
    """GitHub does not promise delivery order: a synchronize older (by GitHub's updated_at)
    than the one recorded is recorded as a delivery but leaves the head, and nothing of
    the older head is posted to the pull request."""
    async with scm_stack(start_service) as stack:
        repo, old_head, new_head = repo_name(), sha("late-old"), sha("late-new")
        await stack.decide(repo, old_head, revision=1)  # SHIP
        await stack.decide(repo, new_head, revision=1, blockers=[VULN])  # NO_SHIP
        newer = pull_payload(repo, 6, new_head, action="synchronize")
        newer["pull_request"]["updated_at"] = "2026-11-25T12:00:10Z"
        older = pull_payload(repo, 6, old_head, action="synchronize")
        older["pull_request"]["updated_at"] = "2026-11-25T12:00:05Z"
        assert (await stack.deliver("pull_request", newer)).status == 200
        await stack.settle()
        late = await stack.deliver("pull_request", older)
        assert late.status == 200 and late.body["status"] == "recorded"
        await stack.settle()
        rows = await stack.fetch("SELECT head_sha FROM release_decision.scm_pull_requests")
        assert [r["head_sha"] for r in rows] == [new_head]
        [comment] = stack.github.comments_on(repo, 6)
        assert "CVE-2026-0001" in comment["body"]
        assert stack.github.check_runs_on(repo, old_head) == []


async def test_an_existing_marker_comment_is_adopted(start_service: StartService) -> None:
    """A post that crashed after GitHub created the comment left no id behind: the next
    post finds the comment by its marker instead of adding a second one."""
    async with scm_stack(start_service) as stack:
        repo, head = repo_name(), sha("adopt")
        stack.github.comments[5] = {"id": 5, "body": "LGTM", "repo": repo, "number": 2}
        stack.github.comments[6] = {
            "id": 6,
            "body": f"{MARKER}\nold text",
            "repo": repo,
            "number": 2,
        }
        await _open_pr(stack, repo, 2, head)
        assert [c["id"] for c in stack.github.comments_on(repo, 2)] == [5, 6]
        assert stack.github.comments[6]["body"].startswith(MARKER + "\n### ⛔")
        rows = await stack.fetch("SELECT comment_id FROM release_decision.scm_comments")
        assert [r["comment_id"] for r in rows] == [6]


async def test_without_a_token_nothing_is_posted(start_service: StartService) -> None:
    async with scm_stack(start_service, github_token="") as stack:
        repo = repo_name()
        await _open_pr(stack, repo, 1, sha("nt"))
        assert stack.github.calls == []
        rows = await stack.fetch("SELECT status FROM release_decision.scm_jobs")
        assert [r["status"] for r in rows] == ["done"]


async def test_replay_rebuilds_identical_scm_tables(
    start_service: StartService, settings: Settings
) -> None:
    async with scm_stack(start_service) as stack:
        repo, head = repo_name(), sha("rp")
        await _open_pr(stack, repo, 11, head)
        await stack.decide(repo, head, revision=1, blockers=[VULN])
        await stack.deliver(
            "check_run", check_run_payload(repo, head, [11], name="Gatehouse release gate")
        )
        await stack.decide(repo, head, revision=2)
        await stack.deliver("push", {"zen": 1}, delivery=str(uuid.uuid4()))  # 422, nothing
        await stack.deliver("ping", {"zen": "z"})
        await stack.settle()
        calls = len(stack.github.calls)
        await stack.service.stop()

        tables = [t for t in PROJECTION_TABLES if t != "scm_jobs"]
        before = await table_digest(settings.database_url, "release_decision", tables)
        jobs_before = await stack.fetch_jobs(settings)

        runtime = Runtime(
            definition("release-decision"), settings.with_(service="release-decision")
        )
        await runtime.start(serve=False)
        try:
            applied = await runtime.runners["scm"].replay()
        finally:
            await runtime.stop()
        assert applied > 0
        assert await table_digest(settings.database_url, "release_decision", tables) == before
        assert await stack.fetch_jobs(settings) == jobs_before
        assert all(status == "done" for _, status in jobs_before)
        assert len(stack.github.calls) == calls


async def test_a_pull_request_that_moved_on_gets_only_its_new_head(
    start_service: StartService,
) -> None:
    """Jobs queued while no worker runs: the post for the old head is skipped (superseded),
    the new head's is posted; a comment deleted on GitHub is made again."""
    async with scm_stack(start_service) as stack:
        runtime = stack.service
        await runtime.state[wiring.WORKER_KEY].stop()
        repo, old, new = repo_name(), sha("old"), sha("new")
        await stack.deliver("pull_request", pull_payload(repo, 5, old))
        await stack.deliver("pull_request", pull_payload(repo, 5, new, action="synchronize"))
        worker = runtime.state[wiring.WORKER_KEY] = wiring.post_worker(
            runtime, runtime.state[wiring.POSTER_KEY]
        )
        worker.start()
        await stack.settle()
        posted = await events_of(stack, "scm.decision-posted")
        assert [(p.commit, p.outcome, p.reason) for p in posted] == [
            (old, "skipped", "superseded"),
            (new, "posted", None),
        ]
        assert stack.github.check_runs_on(repo, old) == []
        [comment] = stack.github.comments_on(repo, 5)
        assert new[:12] in comment["body"]

        del stack.github.comments[comment["id"]]
        await stack.decide(repo, new, revision=1, blockers=[VULN])
        await wait_until(lambda: _has(stack, repo, 5, "CVE-2026-0001"))
        [again] = stack.github.comments_on(repo, 5)
        assert again["id"] != comment["id"]
