"""The examples of the README's "Python packages (pip, twine)" and "Generic artifacts"
sections run, in order, against a real gateway and scanner, with the real build, twine
and pip."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, Infra
from tests.integration.packages_support import package_stack
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "README.md"


async def test_readme_examples_work(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    require_tools("sha256sum")
    blocks = sh_blocks(README, "Python packages (pip, twine)") + sh_blocks(
        README, "Generic artifacts"
    )
    assert len(blocks) >= 4, "the sections have their examples"
    async with package_stack(infra, tmp_path_factory.mktemp("data")) as stack:
        output = await run_examples(
            "\n".join(blocks), base=stack.base, token=stack.api.admin, cwd=tmp_path, timeout=120
        )
    assert output.splitlines() == [
        "uploaded",
        "hi",
        '{"versions":["1.0"],"files":[{"filename":"hello_gatehouse-1.0-py3-none-any.whl",'
        '"requires-python":">=3.9"},{"filename":"hello_gatehouse-1.0.tar.gz",'
        '"requires-python":">=3.9"}]}',
        "refused",
        '{"path":"tools/linux/tool-1.0.txt","size":13,"purl":"pkg:generic/tool-1.0.txt"}',
        "hello",
        'ETag: "<sha256>"',
        '{"status":400,"code":"digest_mismatch"}',
        '{"status":400,"code":"invalid_artifact_path"}',
        "204",
    ]
