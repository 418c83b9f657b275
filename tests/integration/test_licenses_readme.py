"""The examples of the "Licenses" and "Reports" sections of services/scanner/README.md run,
in order, against a real scanner and gateway."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, StartService
from tests.integration.test_gateway_support import gateway_api
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "services" / "scanner" / "README.md"


def _examples() -> str:
    licenses, reports = sh_blocks(README, "Licenses"), sh_blocks(README, "Reports")
    assert len(licenses) >= 4 and len(reports) >= 2, "both sections have their examples"
    return "\n".join(licenses + reports)


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    await start_service("scanner")
    async with gateway_api(start_service) as api:
        output = await run_examples(
            _examples(), base=api.base, token=api.admin, cwd=tmp_path, timeout=90
        )
    lines = output.splitlines()
    assert lines[0].startswith(
        '{"status":422,"code":"license_policy_invalid","errors":["$.allowed[1]:'
    )
    assert "did you mean 'Apache-2.0'?" in lines[0] and '"$.forbidden[0]: ' in lines[0]
    assert lines[1] == '{"version":1,"conditional":["LGPL-2.1-or-later"]}'
    assert lines[2] == "the same If-Match again: 412"
    assert lines[3] == '{"forbidden":1}'
    assert lines[4:9] == [
        "forbidden GPL-3.0-only x1",
        "conditional (none declared) x1",
        "allowed Apache-2.0 x1",
        "allowed BSD-3-Clause x1",
        "allowed LGPL-2.1-or-later OR MIT x1",
    ]
    assert lines[9] == "fail"
    assert lines[10] == (
        "1 component with a forbidden license: readline (GPL-3.0-only); "
        "1 component with a conditional license: vendored-utils (none declared)"
    )
    assert lines[11] == '{"status":"active","license":"GPL-3.0-only","purl":"pkg:pypi/readline"}'
    assert lines[12] == "warn"
    assert lines[13] == "1 component with a conditional license: vendored-utils (none declared)"
    assert "waived by waiver" in lines[14] and "LEGAL-42" in lines[14]
    assert lines[15].startswith("licenses evaluated again (waiver granted): 1 changed category")
    assert lines[16] == (
        '{"gate":"warn","high_cve_count":1,"critical_cve_count":0,'
        '"forbidden_license_count":0,"epss_threshold":0.1}'
    )
    assert lines[17] == (
        '{"components_added":0,"components_removed":1,"components_changed":1,'
        '"vulnerabilities_new":0,"vulnerabilities_resolved":0}'
    )
    assert lines[18] == "django 3.2.0 -> 4.2.0"
    assert lines[19] == "warn"
    assert lines[20] == "CycloneDX 1.6: 4 components, vulnerabilities CVE-2024-0009"
    assert lines[21] == "SPDX-2.3: 5 packages"
    assert lines[22].lower() == "content-type: text/markdown; charset=utf-8"
    assert "4 components, 4 license groups" in lines[23]
