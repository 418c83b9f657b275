"""``gatehouse gate`` against a running stack: exit codes, waiting for pending evidence, the
github and json formats, errors; once through the real console entry point, and the
README's "Gate a CI pipeline" example."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from services.cli import build_parser
from services.gate.command import run
from tests.conftest import ROOT, StartService
from tests.integration.test_release_decision_support import CLEAN, VULNERABLE, Gate, gate_stack, sha
from tests.integration.test_scan_support import cyclonedx_json
from tests.readme_examples import require_tools, run_examples, sh_blocks


async def gate_cli(g: Gate, *argv: str, token: str | None = None) -> tuple[int, str, str]:
    args = build_parser().parse_args(
        ["gate", "--url", g.s.api.base, "--token", token or g.s.api.admin, *argv]
    )
    out, err = io.StringIO(), io.StringIO()
    code = await asyncio.to_thread(run, args, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def test_exit_codes_and_formats(
    start_service: StartService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    async with gate_stack(start_service) as g:
        project = await g.project("acme/ci")
        blocked, clean = sha(), sha()
        await g.scan(project["slug"], "acme/ci", blocked)
        await g.scan(project["slug"], "acme/ci", clean, pkgs=CLEAN)
        await g.decided("acme/ci", blocked, decision="NO_SHIP")
        await g.decided("acme/ci", clean, decision="SHIP")

        code, out, _ = await gate_cli(
            g, "--repo", "acme/ci", "--commit", blocked, "--format", "github"
        )
        assert code == 1, out
        [annotation] = [line for line in out.splitlines() if line.startswith("::error")]
        assert annotation.startswith("::error title=Gatehouse NO_SHIP%3A vulnerability::")
        assert "CVE-2020-0001" in annotation
        assert summary.read_text().startswith("### Gatehouse release gate: ⛔ NO_SHIP")

        code, out, _ = await gate_cli(g, "--repo", "acme/ci", "--commit", clean)
        assert code == 0 and out.startswith(f"SHIP acme/ci@{clean}"), out

        code, out, _ = await gate_cli(
            g, "--repo", "acme/ci", "--commit", blocked, "--format", "json"
        )
        document = json.loads(out)
        assert (code, document["outcome"], document["decision"]["blockers"][0]["code"]) == (
            1,
            "NO_SHIP",
            "vulnerability",
        )


async def test_waits_for_a_running_scan_and_fails_cleanly(start_service: StartService) -> None:
    async with gate_stack(start_service, scan_stage_pause_seconds=0.3) as g:
        project = await g.project("acme/wait")
        commit = sha()
        upload = await g.s.upload_sbom(
            project["slug"], cyclonedx_json(VULNERABLE), query=f"repo=acme/wait&commit={commit}"
        )
        assert upload.status == 202, upload.body
        code, out, err = await gate_cli(
            g, "--repo", "acme/wait", "--commit", commit, "--wait", "60", "--interval", "0.1"
        )
        assert code == 1, out + err
        assert "vulnerability:" in out
        assert "evidence_pending" in err or "no_evidence" in err  # it did wait

        code, out, _ = await gate_cli(
            g, "--repo", "acme/wait", "--commit", sha(), "--wait", "0.3", "--interval", "0.1"
        )
        assert code == 2 and "timeout" in out and "no_evidence" in out
        code, out, _ = await gate_cli(g, "--repo", "acme/nowhere", "--commit", sha())
        assert code == 2 and "404 repo_not_found" in out
        code, out, _ = await gate_cli(
            g, "--repo", "acme/wait", "--commit", commit, token="gh_not_a_valid_token_0123456789"
        )
        assert code == 2 and "HTTP 401" in out


async def test_console_entry_point_with_the_token_from_the_environment(
    start_service: StartService,
) -> None:
    async with gate_stack(start_service) as g:
        project = await g.project("acme/entry")
        commit = sha()
        await g.scan(project["slug"], "acme/entry", commit, pkgs=CLEAN)
        await g.decided("acme/entry", commit, decision="SHIP")
        env: dict[str, Any] = {**os.environ, "GATEHOUSE_TOKEN": g.s.api.admin}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "gate", "--url", g.s.api.base,
            "--repo", "acme/entry", "--commit", commit, "--format", "json",
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        assert json.loads(out)["decision"]["decision"] == "SHIP"


async def test_readme_example_works(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    [example] = sh_blocks(ROOT / "README.md", "Gate a CI pipeline")
    async with gate_stack(start_service) as g:
        output = await run_examples(example, base=g.s.api.base, token=g.s.api.admin, cwd=tmp_path)
    assert output.splitlines() == ['{"outcome":"SHIP","exit_code":0,"blockers":[]}']
