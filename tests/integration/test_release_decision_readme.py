"""The examples of the "Decisions", "Decision policy", "Promotions" and "Health" sections
of services/release_decision/README.md run, in order, against a real scanner,
release-decision and gateway, and print what the guide says they print."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "services" / "release_decision" / "README.md"
SECTIONS = ("Decisions", "Decision policy", "Promotions", "Health")


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    blocks = [block for section in SECTIONS for block in sh_blocks(README, section)]
    assert len(blocks) == 5, "each section has its examples"
    await start_service("scanner")
    await start_service("release-decision")
    async with gateway_api(start_service) as api:
        output = await run_examples(
            "\n".join(blocks), base=api.base, token=api.admin, cwd=tmp_path, timeout=90
        )
    assert output.splitlines() == [
        '{"decision":"NO_SHIP","revision":0,"blockers":["no_evidence"]}',
        '{"decision":"NO_SHIP","blockers":[{"code":"vulnerability",'
        '"message":"CVE-2024-0002 in PyPI:django (CRITICAL)"}]}',
        "3 SHIP finding.triaged",
        "2 NO_SHIP scan.completed",
        "1 NO_SHIP scan.queued",
        '{"decision":"NO_SHIP","revision":0}',
        '{"version":0,"block":["CRITICAL","HIGH"]}',
        '{"version":1,"document":["CRITICAL","HIGH","MEDIUM"]}',
        "the same If-Match again: 412",
        '{"scope":"project","version":1,"signed":true}',
        '{"decision":"NO_SHIP","policy_version":1,"blockers":["unsigned_commit"]}',
        '{"decision":"SHIP","policy_version":2}',
        '{"status":"production","label":"v2.0.0","decision":"SHIP","metadata":{"ticket":"REL-1"}}',
        '{"status":409,"code":"already_promoted"}',
        '{"snapshot_id":true,"commit_sha":"3f2a9c1e5b7d4a6c8e0f2a4b6c8d0e1f3a5b7c9d"}',
        "production v2.0.0 SHIP",
        '{"ok":true,"bus":true,"scanner":"answering","fresh":true,"missing":[]}',
    ]
