"""The examples of the README's "Registry repositories, blocks and quarantine" section run,
in order, against a real scanner and gateway (the two uploads the quarantine examples start
from are registered over RPC, as the PyPI upload route does)."""

from __future__ import annotations

from pathlib import Path

from contracts.rpc import registry as rpc
from tests.conftest import ROOT, StartService
from tests.integration.registry_meta_support import MISSING_SBOM, registry
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "README.md"
SECTION = "Registry repositories, blocks and quarantine"


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    blocks = sh_blocks(README, SECTION, subsection="")
    assert len(blocks) == 5, "the section has its examples"
    async with registry(start_service) as r:
        before = await run_examples(
            "\n".join(blocks[:3]), base=r.api.base, token=r.api.admin, cwd=tmp_path
        )
        repo = await r.ask(
            rpc.REPOSITORY_LIST, rpc.RepositoryListRequest(slug="pypi"), rpc.RepositoryPage
        )
        for version in ("1.0", "1.1"):
            await r.register(
                repo.items[0].id,
                f"demo-{version}-py3-none-any.whl",
                name="demo",
                version=version,
                size=1024,
                # A missing SBOM fails their scan on upload: they stay in quarantine.
                sbom_digests=[MISSING_SBOM],
            )
        await r.settled()
        after = await run_examples(
            "\n".join(blocks[3:]), base=r.api.base, token=r.api.admin, cwd=tmp_path
        )
    printed = before.splitlines() + after.splitlines()
    expected = [
        line.removeprefix("# ")
        for block in blocks
        for line in block.splitlines()
        if line.startswith("# ") and line[2:3] in ("{", "[", "4", "2", "d")
    ]
    assert len(expected) == 12 and printed == expected
