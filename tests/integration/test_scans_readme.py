"""The examples of the "Scans" section of services/scanner/README.md run, in order, against a
real scanner and gateway."""

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
    section = README.read_text().split("\n## Scans\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) >= 4, "the Scans section has its examples"
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
            # python3 in the examples is this interpreter.
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
