"""The examples of the "GitHub and GitLab" section of services/release_decision/README.md
run, in order, against a real release-decision service and gateway, posting to the
stand-in GitHub."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, StartService, wait_until
from tests.integration.test_github_support import GITLAB_TOKEN, SECRET, scm_stack
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "services" / "release_decision" / "README.md"
HEAD = "3f786850e387550fdab836ed7e6dc881de23001b"


async def test_readme_examples_work(
    start_service: StartService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tools()
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    blocks = sh_blocks(README, "GitHub and GitLab")
    assert len(blocks) == 3
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("GITLAB_WEBHOOK_TOKEN", GITLAB_TOKEN)
    async with scm_stack(start_service) as stack:
        output = await run_examples(
            "\n".join(blocks), base=stack.api.base, token=stack.api.admin, cwd=tmp_path
        )
        assert output.splitlines() == [
            '{"status":"recorded","published":1}',
            '{"status":"duplicate","published":0}',
            '{"status":401,"code":"invalid_signature"}',
            '{"status":"recorded","action":"opened"}',
            '{"status":"recorded","published":1}',
        ]

        async def posted() -> bool:
            return bool(stack.github.comments_on("my-org/my-repo", 42))

        await wait_until(posted)
        await stack.settle()
        [run] = stack.github.check_runs_on("my-org/my-repo", HEAD)
        assert run["conclusion"] == "failure"
        [comment] = stack.github.comments_on("my-org/my-repo", 42)
        assert comment["body"].startswith("<!-- gatehouse-decision -->")
