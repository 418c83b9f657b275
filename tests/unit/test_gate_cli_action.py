"""deploy/github-action/action.yml: a composite action whose gate step is a command line the
CLI accepts, whose inputs all exist, and whose scripts never interpolate inputs."""

from __future__ import annotations

import re
import shlex

import yaml

from services.cli import build_parser
from tests.conftest import ROOT

ACTION = ROOT / "deploy" / "github-action" / "action.yml"
SAMPLE = {
    "GATE_REPO": "acme/web",
    "GATE_COMMIT": "0123456789abcdef0123456789abcdef01234567",
    "GATE_WAIT": "300",
    "GATE_FORMAT": "github",
}


def test_action_runs_the_gate_with_its_inputs() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    assert {"url", "token"} <= {k for k, v in inputs.items() if v.get("required")}
    steps = action["runs"]["steps"]
    referenced = set(re.findall(r"\$\{\{\s*inputs\.([\w-]+)\s*\}\}", ACTION.read_text()))
    assert referenced <= set(inputs), referenced - set(inputs)
    for step in steps:
        assert "inputs." not in step.get("run", ""), "inputs reach scripts through env only"
    gate = next(s for s in steps if "gatehouse gate" in s.get("run", ""))
    assert gate["env"]["GATEHOUSE_TOKEN"] == "${{ inputs.token }}"
    command = gate["run"]
    for name, value in SAMPLE.items():
        command = command.replace(f'"${name}"', value)
    argv = shlex.split(command)
    assert argv[:2] == ["gatehouse", "gate"]
    args = build_parser().parse_args([*argv[1:], "--url", "http://x", "--token", "t"])
    assert (args.repo, args.commit, args.wait, args.format) == (
        "acme/web",
        SAMPLE["GATE_COMMIT"],
        300.0,
        "github",
    )
    assert inputs["format"]["default"] == "github"


def test_a_pull_request_is_gated_on_its_head_commit() -> None:
    """In a pull_request workflow github.sha is the merge commit GitHub made, which no SBOM
    job scanned: gating it would wait for evidence that never comes."""
    default = yaml.safe_load(ACTION.read_text())["inputs"]["commit"]["default"]
    assert default == "${{ github.event.pull_request.head.sha || github.sha }}"
