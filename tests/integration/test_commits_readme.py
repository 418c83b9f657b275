"""The example of README.md's "Commits API" section runs against signature-verifier and the
gateway (over a mirror built with the git CLI) and prints what the README says it prints."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from services.signature_verifier.mirrors.paths import mirror_path
from tests.conftest import ROOT, StartService
from tests.integration.test_commits_support import add_mirror, build_history, mirror_into
from tests.integration.test_gateway_support import gateway_api
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "README.md"
SECTION = "Commits API"


def _printed() -> list[str]:
    text = README.read_text().split(f"\n## {SECTION}\n", 1)[1].split("\n## ", 1)[0]
    return [
        line
        for block in re.findall(r"```text\n(.*?)```", text, re.S)
        for line in block.splitlines()
    ]


async def test_commits_readme_example(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    blocks = sh_blocks(README, SECTION)
    assert len(blocks) == 1
    source = Path(tempfile.mkdtemp(prefix="gatehouse-commits-")) / "work"
    build_history(source)
    verifier = await start_service("signature-verifier", data_dir=tempfile.mkdtemp())
    mirror_into(source, mirror_path(verifier.settings, "acme/widgets"))
    await add_mirror(verifier.settings, "acme/widgets")
    async with gateway_api(start_service) as api:
        await api.new_project(repos=["acme/widgets"])
        output = await run_examples(blocks[0], base=api.base, token=api.admin, cwd=tmp_path)
    expected = [line.replace("$GATEHOUSE", api.base) for line in _printed()]
    # HTTP header names are case-insensitive; the server sends its own spelling.
    got = [re.sub(r"^link:", "Link:", line, flags=re.I) for line in output.splitlines()]
    assert got == expected
