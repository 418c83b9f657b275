"""The examples of the "Workflow triggers" section of services/release_decision/README.md
run against a real release-decision, webhook-fanout, gateway and a local receiver, and print
what the guide says they print."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api
from tests.integration.webhook_delivery_support import FANOUT_SETTINGS, receiver
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "services" / "release_decision" / "README.md"


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    [block] = sh_blocks(README, "Workflow triggers")
    await start_service("release-decision")
    await start_service("webhook-fanout", **FANOUT_SETTINGS)
    async with gateway_api(start_service) as api, receiver() as rec:
        script = f"RECEIVER=http://127.0.0.1:{rec.port}\n{block}"
        output = await run_examples(script, base=api.base, token=api.admin, cwd=tmp_path)
        assert len(rec.at("deploy")) == 1
    assert output.splitlines() == ['{"format":"standard","whsec":true}', "pending", "queued"]
