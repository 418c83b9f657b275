"""GitLab webhooks over HTTP: X-Gitlab-Token, X-Gitlab-Event-UUID once, Push Hook →
commit.pushed, Merge Request Hook → the merge request's head recorded (nothing posted)."""

from __future__ import annotations

import uuid

from tests.conftest import StartService
from tests.integration.test_gateway_support import NO_TOKEN, stream_count
from tests.integration.test_github_support import (
    GITLAB_TOKEN,
    events_of,
    repo_name,
    scm_stack,
    sha,
)


def _push(repo: str, commits: list[str]) -> dict[str, object]:
    return {
        "object_kind": "push",
        "ref": "refs/heads/main",
        "before": sha("before"),
        "after": commits[-1],
        "checkout_sha": commits[-1],
        "project": {"path_with_namespace": repo, "default_branch": "main"},
        "commits": [{"id": c, "message": "m", "author": {"name": "Ada"}} for c in commits],
        "total_commits_count": len(commits),
    }


def _merge(repo: str, iid: int, head: str, *, state: str = "opened") -> dict[str, object]:
    return {
        "object_kind": "merge_request",
        "project": {"path_with_namespace": repo},
        "object_attributes": {
            "iid": iid,
            "state": state,
            "action": "open",
            "title": "Feature",
            "url": f"https://gitlab.example/{repo}/-/merge_requests/{iid}",
            "source_branch": "feature",
            "target_branch": "main",
            "last_commit": {"id": head},
        },
    }


async def test_push_and_merge_request_hooks(start_service: StartService) -> None:
    async with scm_stack(start_service) as stack:
        repo = repo_name()
        commits = [sha("g1"), sha("g2")]
        delivery = str(uuid.uuid4())
        reply = await stack.gitlab("Push Hook", _push(repo, commits), delivery=delivery)
        assert reply.status == 200 and reply.body["published"] == 2, reply.body
        again = await stack.gitlab("Push Hook", _push(repo, commits), delivery=delivery)
        assert again.status == 200 and again.body["duplicate"] is True
        # GitLab bodies carry no time: the same push again (the branch moved away and back)
        # under a new event id is a new delivery, not a replay as it would be from GitHub.
        back = await stack.gitlab("Push Hook", _push(repo, commits))
        assert back.status == 200 and back.body["status"] == "recorded"
        assert back.body["published"] == 2
        pushed = await events_of(stack, "commit.pushed")
        assert [(p.commit, p.head, p.source) for p in pushed] == [
            (commits[0], False, "gitlab"),
            (commits[1], True, "gitlab"),
        ] * 2

        merge = await stack.gitlab("Merge Request Hook", _merge(repo, 5, commits[1]))
        assert merge.status == 200 and merge.body["action"] == "open"
        rows = await stack.fetch(
            "SELECT provider, number, state, head_sha FROM release_decision.scm_pull_requests"
        )
        assert [tuple(r) for r in rows] == [("gitlab", 5, "open", commits[1])]
        await stack.settle(await stack.decide(repo, commits[1], revision=1))
        assert stack.github.calls == []  # GitLab merge requests get nothing posted

        tag = await stack.gitlab("Tag Push Hook", {"object_kind": "tag_push"})
        assert tag.status == 202 and tag.body["status"] == "ignored"


async def test_bad_gitlab_deliveries_record_nothing(start_service: StartService) -> None:
    async with scm_stack(start_service) as stack:
        repo = repo_name()
        before = await stream_count(stack.service)
        for token in ("wrong", None, ""):
            reply = await stack.gitlab("Push Hook", _push(repo, [sha("x")]), token=token)
            assert reply.status == 401 and reply.code == "invalid_token", token
        no_uuid = await stack.api.call(
            "POST",
            "/api/v1/releases/gitlab-webhook",
            token=NO_TOKEN,
            data=b"{}",
            headers={
                "Content-Type": "application/json",
                "X-Gitlab-Event": "Push Hook",
                "X-Gitlab-Token": GITLAB_TOKEN,
            },
        )
        assert no_uuid.status == 400 and no_uuid.code == "missing_header"
        bad = await stack.gitlab("Push Hook", {"ref": "refs/heads/main"})
        assert bad.status == 422 and bad.code == "invalid_payload"
        assert await stream_count(stack.service) == before


async def test_an_unconfigured_token_refuses_every_delivery(start_service: StartService) -> None:
    async with scm_stack(start_service, gitlab_webhook_token="") as stack:
        reply = await stack.gitlab("Push Hook", _push(repo_name(), [sha("y")]), token="")
        assert reply.status == 401 and reply.code == "invalid_token"
