"""The examples of the README's "Scan on upload and malicious packages" and "Promotion"
subsections run, in order, against a real scanner, release-decision and gateway (after the
registry section's first example, which makes the shop project and its quarantined pypi
repository; the two uploads are registered over RPC, as the PyPI upload route does)."""

from __future__ import annotations

from pathlib import Path

from contracts.rpc import registry as rpc
from tests.conftest import ROOT, StartService
from tests.integration.registry_gate_support import scanned
from tests.integration.registry_meta_support import registry
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "README.md"
SECTION = "Registry repositories, blocks and quarantine"


def expected_lines(blocks: list[str]) -> list[str]:
    return [
        line.removeprefix("# ")
        for block in blocks
        for line in block.splitlines()
        if line.startswith("# ") and line[2:3] in ("{", "[")
    ]


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    setup = sh_blocks(README, SECTION, subsection="")[0]
    scan = sh_blocks(README, SECTION, subsection="Scan on upload and malicious packages")
    promotion = sh_blocks(README, SECTION, subsection="Promotion")
    assert (len(scan), len(promotion)) == (3, 1), "the subsections have their examples"
    await start_service("release-decision")
    async with registry(start_service) as r:

        async def run(script: str) -> list[str]:
            out = await run_examples(script, base=r.api.base, token=r.api.admin, cwd=tmp_path)
            return out.splitlines()

        await run(setup)
        printed = await run(scan[0])
        repo = await r.ask(
            rpc.REPOSITORY_LIST, rpc.RepositoryListRequest(slug="pypi"), rpc.RepositoryPage
        )
        repo_id = repo.items[0].id
        uploads = [
            await r.register(
                repo_id, "123bla-0.0.1.tar.gz", name="123bla", version="0.0.1", kind="sdist"
            ),
            await r.register(repo_id, "demo-2.0-py3-none-any.whl", name="demo", version="2.0"),
        ]
        for artifact in uploads:
            await scanned(r, artifact.id)
        await r.settled()
        printed += await run("\n".join(scan[1:]))
        printed += await run(promotion[0])
    assert printed == expected_lines([*scan, *promotion])
    assert len(printed) == 8
