"""The curl examples of services/gateway/README.md run, in order, against a real gateway."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api

README = ROOT / "services" / "gateway" / "README.md"


def _examples() -> str:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 5, "the README has its examples"
    return "\n".join(blocks)


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    for tool in ("curl", "jq", "bash"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    async with gateway_api(start_service) as api:
        env = {**os.environ, "GATEHOUSE": api.base, "TOKEN": api.admin}
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
        assert proc.returncode == 0, err.decode() + out.decode()
        assert '"openapi":"3.1.0"' in (tmp_path / "openapi.json").read_text()
        user = await api.call("GET", "/api/v1/users/octocat")
        assert {e["email"]: e["verified"] for e in user.body["emails"]} == {
            "octocat@example.org": True,
            "cat@example.org": False,
        }
        project = await api.call("GET", "/api/v1/projects/web")
        assert project.body["description"] == "The storefront" and project.body["archived"]
        keys = await api.call("GET", "/api/v1/api-keys?include_revoked=true")
        ci = next(k for k in keys.body["items"] if k["name"] == "ci-web")
        assert ci["revoked_at"] is not None and ci["project_id"] == project.body["id"]
