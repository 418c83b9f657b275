"""The examples of the README's "Search" and "Findings across projects" sections run, in
order, against a real scanner and gateway, after the seeding their comments describe (a
project, an SBOM scan, an OSV import, an upload registered over RPC as the PyPI route does)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, StartService
from tests.integration.registry_meta_support import registry
from tests.integration.test_scan_support import Pkg, ScanApi, cyclonedx_json
from tests.integration.test_vulndb_support import ZIP, osv, zip_of
from tests.readme_examples import require_tools, run_examples, sh_blocks

README = ROOT / "README.md"
ADVISORIES = {
    "GHSA-j8r2-6x86-q33q.json": osv(
        "GHSA-j8r2-6x86-q33q",
        name="requests",
        aliases=("CVE-2023-32681",),
        events=[{"introduced": "2.3.0"}, {"fixed": "2.31.0"}],
        summary="Unintended leak of Proxy-Authorization header in requests",
        database_specific={"severity": "MODERATE"},
    ),
    "GHSA-v845-jxx5-vc9f.json": osv(
        "GHSA-v845-jxx5-vc9f",
        name="urllib3",
        aliases=("CVE-2023-43804",),
        events=[{"introduced": "0"}, {"fixed": "1.26.17"}],
        summary="Cookie HTTP header isn't stripped on cross-origin redirects",
        database_specific={"severity": "HIGH"},
    ),
}


async def test_readme_examples_work(start_service: StartService, tmp_path: Path) -> None:
    require_tools()
    blocks = sh_blocks(README, "Search") + sh_blocks(README, "Findings across projects")
    assert len(blocks) == 2, "each section has its example"
    async with registry(start_service) as r:
        scans = ScanApi(api=r.api, scanner=r.scanner)
        imported = await r.http(
            "POST", "/api/v1/vulndb/import", data=zip_of(ADVISORIES), headers=ZIP
        )
        assert imported.status == 200, imported.body
        await r.api.new_project("shop", name="Shop", repos=["acme/shop-web"])
        await scans.scan(
            "shop", cyclonedx_json([Pkg("requests", "2.19.1"), Pkg("urllib3", "1.26.0")])
        )
        pypi = await r.new_repo("shop", "pypi")
        await r.register(
            pypi["id"],
            "requests-2.31.0-py3-none-any.whl",
            name="requests",
            version="2.31.0",
            purl="pkg:pypi/requests@2.31.0",
        )
        printed = await run_examples(
            "\n".join(blocks), base=r.api.base, token=r.api.admin, cwd=tmp_path
        )
    expected = [
        line.removeprefix("# ")
        for block in blocks
        for line in block.splitlines()
        if line.startswith("# ") and line[2:3] in ("{", "[")
    ]
    assert len(expected) == 6 and printed.splitlines() == expected
