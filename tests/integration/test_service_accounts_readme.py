"""The examples of the README's "Service accounts" section run, in order, against a real
gateway, and print what the README says they print."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "README.md"


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    [block] = sh_blocks(README, "Service accounts")
    # The printed lines are the comments right after each command: "# <output>".
    expected = re.findall(r"^# ([\[{0-9g].*)$", block, re.M)
    assert len(expected) == 7, expected
    async with gateway_api(start_service) as api:
        output = await run_examples(block, base=api.base, token=api.admin, cwd=tmp_path)
    assert output.splitlines() == expected
