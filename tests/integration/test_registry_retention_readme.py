"""The examples of the README's "Retention and who pulled" section run, in order, against a
real scanner and gateway (the four uploads are registered over RPC, as the PyPI upload route
does, and the two downloads recorded as the download routes record them)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from contracts.rpc import registry as rpc
from tests.conftest import ROOT, StartService
from tests.integration.registry_meta_support import registry
from tests.integration.retention_support import pulls_applied, record_download
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "README.md"
SECTION = "Retention and who pulled"


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    blocks = sh_blocks(README, SECTION)
    assert len(blocks) == 4, "the section has its examples"
    async with registry(start_service) as r:
        printed = await run_examples(blocks[0], base=r.api.base, token=r.api.admin, cwd=tmp_path)
        repo = await r.ask(
            rpc.REPOSITORY_LIST, rpc.RepositoryListRequest(slug="wheels"), rpc.RepositoryPage
        )
        uploaded = {
            version: await r.register(
                repo.items[0].id,
                f"demo-{version}-py3-none-any.whl",
                name="demo",
                version=version,
                size=1024,
            )
            for version in ("1.0", "1.1", "1.2", "1.3")
        }
        now = dt.datetime.now(dt.UTC)
        await record_download(
            r, uploaded["1.1"], principal="serviceaccount:sa_ci", at=now - dt.timedelta(hours=1)
        )
        last = await record_download(r, uploaded["1.3"], address="192.0.2.10", at=now)
        await pulls_applied(r, last)
        printed += await run_examples(
            "\n".join(blocks[1:]), base=r.api.base, token=r.api.admin, cwd=tmp_path
        )
    expected = [
        line.removeprefix("# ")
        for block in blocks
        for line in block.splitlines()
        if line.startswith(("# {", "# ["))
    ]
    assert len(expected) == 10 and printed.splitlines() == expected
