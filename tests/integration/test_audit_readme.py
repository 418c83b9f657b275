"""The curl examples of services/audit/README.md run, in order, against a real gateway and
audit service."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api

README = ROOT / "services" / "audit" / "README.md"


def _examples() -> str:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 6, "the README has its examples"
    return "\n".join(blocks)


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    for tool in ("curl", "jq", "bash"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    await start_service("audit")
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
        assert "chain intact, head" in output
        assert '"ok":true' in output.replace(" ", "")
        assert "x-export-truncated: false" in output.lower()
        with (tmp_path / "audit.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        assert "project.created" in {row["type"] for row in rows}
        assert len(rows) == await api.runtime.bus.last_sequence()
