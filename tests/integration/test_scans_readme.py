"""The examples of the "Scans" section of services/scanner/README.md run, in order, against a
real scanner and gateway."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "services" / "scanner" / "README.md"


def _examples() -> str:
    blocks = sh_blocks(README, "Scans")
    assert len(blocks) >= 4, "the Scans section has its examples"
    return "\n".join(blocks)


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    await start_service("scanner")
    async with gateway_api(start_service) as api:
        output = await run_examples(_examples(), base=api.base, token=api.admin, cwd=tmp_path)
    lines = output.splitlines()
    assert '"added":1' in lines[0], output
    assert (
        '{"status":"succeeded","format":"cyclonedx-json","counts":{"CRITICAL":1,"HIGH":0,'
        '"MEDIUM":0,"LOW":0,"UNKNOWN":0},"blocking":1}'
    ) in lines
    assert re.search(r"^scan.queued: queued: sbom cyclonedx-json, \d+ bytes$", output, re.M)
    assert any(line.startswith("scan.completed: succeeded: 2 components") for line in lines)
    assert "pkg:pypi/django@3.2.0 direct=true findings=1" in lines
    assert "pkg:pypi/sqlparse@0.4.4 direct=false findings=0" in lines
    assert "CVE-2024-0001 CRITICAL PyPI:django 3.2.0 new" in lines
    assert lines[-2:] == ["pkg:pypi/flask@2.0.0", "pkg:pypi/requests@2.31.0"]
