"""The examples of the "Triage and VEX" section of services/scanner/README.md run, in order,
against a real scanner and gateway."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api

README = ROOT / "services" / "scanner" / "README.md"


def _examples() -> str:
    section = README.read_text().split("\n## Triage and VEX\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) >= 5, "the Triage and VEX section has its examples"
    return "\n".join(blocks)


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    for tool in ("curl", "jq", "bash"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    await start_service("scanner")
    async with gateway_api(start_service) as api:
        env = {
            **os.environ,
            "GATEHOUSE": api.base,
            "TOKEN": api.admin,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            _examples(),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        output = out.decode()
        assert proc.returncode == 0, err.decode() + output
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
