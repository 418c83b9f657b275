"""The examples of the README's "Webhooks" section, and of the webhook-fanout README's
"Deliveries" section, run, in order, against a real gateway and webhook-fanout."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from tests.conftest import ROOT, StartService, wait_until
from tests.integration.webhook_delivery_support import receiver
from tests.integration.webhooks_support import stream_bytes, webhooks_stack
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "README.md"
SERVICE_README = ROOT / "services" / "webhook_fanout" / "README.md"


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    blocks = sh_blocks(README, "Webhooks")
    assert len(blocks) >= 4, "the section has its examples"
    async with webhooks_stack(start_service, outbound_allow_cidrs="127.0.0.0/8") as (api, fanout):
        output = await run_examples(
            "\n".join(blocks), base=api.base, token=api.admin, cwd=tmp_path, timeout=60
        )
        published = await stream_bytes(fanout)
    assert output.splitlines() == [
        '{"id":true,"secret":true}',
        '{"events":["release.decided","finding.*"],"enabled":true,"secret_version":1,'
        '"has_secret":false}',
        '{"events":["release.*"],"enabled":false,"disabled_reason":"manual","revision":2}',
        '{"secret_version":2,"new_secret":true}',
        '{"status":422,"code":"receiver_url_refused","reason":"address"}',
        '{"status":422,"code":"unknown_event_type"}',
        "204",
    ]
    secret = (tmp_path / "webhook.json").read_text().split('"secret":"', 1)[1].split('"')[0]
    assert secret.startswith("whsec_") and secret.encode() not in published


async def test_the_service_readme_delivery_examples_work(
    start_service: StartService, tmp_path: Path
) -> None:
    require_tools()
    blocks = sh_blocks(SERVICE_README, "Deliveries")
    assert len(blocks) >= 5, "the section has its examples"
    async with (
        receiver() as rec,
        webhooks_stack(start_service, outbound_allow_cidrs="127.0.0.0/8") as (api, _),
    ):
        script = f"RECEIVER={shlex.quote(rec.url('hook'))}\n" + "\n".join(blocks)
        output = await run_examples(
            script, base=api.base, token=api.admin, cwd=tmp_path, timeout=60
        )

        async def replayed() -> bool:
            return len(rec.at("hook")) == 4

        await wait_until(replayed)
    assert output.splitlines() == [
        '{"ok":true,"response_status":200,"error":null}',
        '{"event_type":"project.created","status":"succeeded","statuses":[200]}',
        "[]",
        "202",
        '{"queued":1}',
    ]
    # The test send, the delivery, its redelivery and its replay, in that order.
    assert [json.loads(r.body)["type"] for r in rec.at("hook")] == [
        "webhook.test",
        *["project.created"] * 3,
    ]
