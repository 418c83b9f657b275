"""The walkthrough of README.md's "Signing keys and verification" section runs, in order,
against a real gateway, signature-verifier and release-decision, with real GnuPG, ssh-keygen
and git signing the commits, and prints what the README says it prints (its ``# …`` lines)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, StartService
from tests.integration.git_mirrors_support import mirror_stack
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "README.md"
SECTION = "Signing keys and verification"


def printed(blocks: list[str]) -> list[str]:
    """What the blocks say they print: their ``# `` lines (the section keeps prose out of
    its shell blocks)."""
    return [m for block in blocks for m in re.findall(r"^# (.*)$", block, re.M)]


@pytest.fixture
def isolated_signers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A throwaway GnuPG keyring (a short path: gpg-agent's socket path is bounded) whose
    agent is stopped afterwards, and a git reading neither the machine's nor the user's
    configuration."""
    require_tools("git", "gpg", "gpgconf", "ssh-keygen")
    monkeypatch.setenv("GNUPGHOME", tempfile.mkdtemp(prefix="gh-gpg-"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    yield
    subprocess.run(["gpgconf", "--kill", "all"], check=False, capture_output=True)


@pytest.mark.usefixtures("isolated_signers")
async def test_signatures_walkthrough(start_service: StartService, tmp_path: Path) -> None:
    blocks = sh_blocks(README, SECTION)
    assert len(blocks) == 6, "the walkthrough's steps"
    expected = printed(blocks)
    assert '{"subject":"Signed with SSH","verified":true,"reason":"valid"}' in expected
    assert '{"outcome":"SHIP","exit_code":0,"blockers":[]}' in expected
    await start_service("release-decision")
    async with mirror_stack(start_service) as (api, _verifier):
        output = await run_examples(
            "\n".join(blocks), base=api.base, token=api.admin, cwd=tmp_path, timeout=90
        )
    assert output.splitlines() == expected
