"""The examples of the "Trust badge" and "Attestations" sections of
services/release_decision/README.md run, in order, against a real scanner,
release-decision and gateway, and print what the guide says they print."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "services" / "release_decision" / "README.md"
SECTIONS = ("Trust badge", "Attestations")


def _printed(section: str) -> list[str]:
    """The ```text blocks of a section: what its examples print, as the guide shows it."""
    text = README.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [
        line
        for block in re.findall(r"```text\n(.*?)```", text, re.S)
        for line in block.splitlines()
    ]


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    blocks = [block for section in SECTIONS for block in sh_blocks(README, section)]
    assert len(blocks) == 3, "each section has its examples"
    await start_service("scanner")
    await start_service("release-decision")
    async with gateway_api(start_service) as api:
        output = await run_examples(
            "\n".join(blocks), base=api.base, token=api.admin, cwd=tmp_path, timeout=90
        )
    assert output.splitlines() == [line for s in SECTIONS for line in _printed(s)]
