"""The examples of the "Triage and VEX" section of services/scanner/README.md run, in order,
against a real scanner and gateway."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "services" / "scanner" / "README.md"


def _examples() -> str:
    blocks = sh_blocks(README, "Triage and VEX")
    assert len(blocks) >= 5, "the Triage and VEX section has its examples"
    return "\n".join(blocks)


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    await start_service("scanner")
    async with gateway_api(start_service) as api:
        output = await run_examples(_examples(), base=api.base, token=api.admin, cwd=tmp_path)
    assert output.splitlines() == [
        '{"state":"not_affected","justification":"code_not_reachable","version":2,'
        '"effective":false}',
        '{"status":412,"code":"precondition_failed","current_etag":"\\"v2\\""}',
        "PyPI:sqlparse updated 200 -",
        "00000000-0000-0000-0000-000000000000 failed 404 finding_not_found",
        "CVE-2024-0101 not_affected effective=false",
        "CVE-2024-0102 exploitable effective=true",
        "CVE-2024-0101 not_affected vulnerable_code_not_in_execute_path",
        "CVE-2024-0102 affected -",
        '{"format":"openvex","applied":1,"unchanged":0,"refused":0,"unmatched":1,'
        '"changes":["PyPI:sqlparse exploitable->fixed"]}',
    ], output
