"""The curl examples of services/audit/README.md run, in order, against a real gateway and
audit service."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "services" / "audit" / "README.md"


def _examples() -> str:
    blocks = sh_blocks(README)
    assert len(blocks) >= 6, "the README has its examples"
    return "\n".join(blocks)


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    await start_service("audit")
    async with gateway_api(start_service) as api:
        output = await run_examples(_examples(), base=api.base, token=api.admin, cwd=tmp_path)
        assert "chain intact, head" in output
        assert '"ok":true' in output.replace(" ", "")
        assert "x-export-truncated: false" in output.lower()
        with (tmp_path / "audit.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert "project.created" in {row["type"] for row in rows}
        assert len(rows) == await api.runtime.bus.last_sequence()
