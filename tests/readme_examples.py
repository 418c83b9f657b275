"""Running a README's shell examples: its ```sh blocks, in order, as one bash script
(``set -euo pipefail``) against a running gateway, with curl, jq and this interpreter."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

import pytest


def sh_blocks(
    readme: Path, section: str | None = None, *, subsection: str | None = None
) -> list[str]:
    """The ```sh blocks of ``readme``, or of its ``## <section>`` only; ``subsection``:
    of that section's ``### <subsection>`` only, or (``""``) of the section's text before
    its first ``###``."""
    # A leading newline: a section may open the file.
    text = "\n" + readme.read_text()
    if section is not None:
        text = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    if subsection == "":
        text = text.split("\n### ", 1)[0]
    elif subsection is not None:
        text = text.split(f"\n### {subsection}\n", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def require_tools(*extra: str) -> None:
    """Skip the test where the examples' tools (curl, jq, bash and ``extra``) are not
    installed, naming the one missing."""
    for tool in ("curl", "jq", "bash", *extra):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (the README's examples run it)")


async def run_examples(
    script: str,
    *,
    base: str,
    token: str,
    cwd: Path,
    timeout: float = 60,  # noqa: ASYNC109 - how long the whole script may take
) -> str:
    """Run ``script`` with ``$GATEHOUSE`` and ``$TOKEN`` set; assert it succeeded and
    return what it printed."""
    env = {
        **os.environ,
        "GATEHOUSE": base,
        "TOKEN": token,
        # python3 in the examples is this interpreter.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        script,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout)
    output = out.decode()
    assert proc.returncode == 0, err.decode() + output
    return output
