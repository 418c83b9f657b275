"""The examples of the README's "Git mirrors" section run, in order, against a real
gateway and signature-verifier."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, StartService
from tests.integration.git_mirrors_support import mirror_stack
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "README.md"


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    blocks = sh_blocks(README, "Git mirrors")
    assert len(blocks) >= 4, "the section has its examples"
    async with mirror_stack(start_service) as (api, _verifier):
        output = await run_examples(
            "\n".join(blocks), base=api.base, token=api.admin, cwd=tmp_path, timeout=60
        )
    assert output.splitlines() == [
        "201",
        '{"branch":"main","state":"ok","last_error":null}',
        "202",
        "mirrored 2 commits",
        '{"status":422,"code":"clone_url_refused","reason":"address"}',
    ]
