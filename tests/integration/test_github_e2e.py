"""End to end, with the real decisions: a pull request's head commit is scanned (an SBOM
with a known-vulnerable package) and GitHub gets a failing check run and a comment naming
the vulnerability; triaging it away turns the same check run green and edits the same
comment to SHIP."""

from __future__ import annotations

from tests.conftest import StartService, wait_until
from tests.integration.test_github_support import (
    GITLAB_TOKEN,
    SECRET,
    ScmStack,
    pull_payload,
)
from tests.integration.test_release_decision_support import gate_stack, sha
from tests.stand_ins.github import StandInGithub


async def test_scan_and_triage_update_the_pull_request(start_service: StartService) -> None:
    github = await StandInGithub().start()
    try:
        async with gate_stack(
            start_service,
            github_webhook_secret=SECRET,
            gitlab_webhook_token=GITLAB_TOKEN,
            github_api_url=github.url,
            github_token=github.token,
        ) as g:
            stack = ScmStack(api=g.s.api, service=g.decisions, github=github)
            repo, commit = "acme/web", sha()
            project = await g.project(repo)
            opened = await stack.deliver("pull_request", pull_payload(repo, 21, commit))
            assert opened.status == 200, opened.body

            def body() -> str:
                found = github.comments_on(repo, 21)
                return str(found[0]["body"]) if found else ""

            async def says(*texts: str, absent: str = "") -> bool:
                text = body()
                return all(t in text for t in texts) and not (absent and absent in text)

            await wait_until(lambda: says("no_evidence"), timeout=20)

            scan = await g.scan(project["slug"], repo, commit)
            assert scan["status"] == "succeeded", scan
            view = await g.decided(repo, commit, decision="NO_SHIP")
            [blocker] = view["blockers"]
            await wait_until(lambda: says("CVE-2020-0001", "NO_SHIP: 1 blocker"), timeout=20)
            runs = github.check_runs_on(repo, commit)
            assert len(runs) == 1 and runs[0]["conclusion"] == "failure"

            reply = await g.call(
                "PATCH",
                f"/api/v1/findings/{blocker['ref']}",
                json={"state": "not_affected", "justification": "code_not_reachable"},
                headers={"If-Match": '"v1"'},
            )
            assert reply.status == 200, reply.body
            await g.decided(repo, commit, decision="SHIP")
            await wait_until(lambda: says("SHIP", absent="NO_SHIP"), timeout=20)
            await stack.settle()

            [comment] = github.comments_on(repo, 21)
            assert "No blockers." in comment["body"]
            [run] = github.check_runs_on(repo, commit)
            assert run["conclusion"] == "success" and run["output"]["title"] == "SHIP"
            comment_writes = [(c.method, c.path) for c in github.writes() if "/comments" in c.path]
            assert comment_writes[0] == ("POST", f"/repos/{repo}/issues/21/comments")
            assert {w for w in comment_writes[1:]} == {
                ("PATCH", f"/repos/{repo}/issues/comments/{comment['id']}")
            }
    finally:
        await github.stop()
