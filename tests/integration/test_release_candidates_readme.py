"""The examples of the "Release candidates and deployments" section of
services/release_decision/README.md run, in order, against a real release-decision and
gateway, and print what the guide says they print."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "services" / "release_decision" / "README.md"
SECTION = "Release candidates and deployments"


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    blocks = sh_blocks(README, SECTION)
    assert len(blocks) == 3, "the section has its three examples"
    await start_service("release-decision")
    async with gateway_api(start_service) as api:
        output = await run_examples("\n".join(blocks), base=api.base, token=api.admin, cwd=tmp_path)
    assert output.splitlines() == [
        '{"version":"v1.4.0-rc1","release_version":"v1.4.0","rc_number":1}',
        '["v1.4.0-rc1","v1.4.0-rc2"]',
        '{"status":400,"code":"invalid_release_candidate_version",'
        '"error":"Invalid release candidate version"}',
        '{"status":400,"code":"invalid_commit_hash","error":"Invalid commit hash"}',
        '{"name":"staging","protected":false,"version":1}',
        "v1.4.0-rc1 pending",
        "v1.4.0-rc2 pending",
        "v1.4.0-rc2 success",
        "v1.4.0-rc1 inactive",
        '{"status":404,"error":"Release environment not found"}',
        '{"status":409,"code":"release_blocked","blockers":["no_evidence"]}',
        '{"status":"pending","decision":"NO_SHIP","reason":"INC-42: hotfix, scan pending"}',
    ]
