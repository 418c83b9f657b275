"""``gatehouse vulndb import|epss`` against a running scanner, ``gatehouse replay scanner``
rebuilding the identical vulnerability database, and the real OSV data imported."""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
from pathlib import Path
from typing import Any

from shared.settings import Settings
from tests.bench.synthetic_osv import folder_bundle
from tests.conftest import StartService, shared_data
from tests.integration.audit_support import CLI, CLI_CWD, cli_env
from tests.integration.test_gateway_support import gateway_api
from tests.integration.test_vulndb_support import (
    EPSS_CSV,
    T1,
    ZIP,
    fetch,
    first_bundle,
    memory_of,
    osv,
    row_counts,
    vulndb_api,
    vulndb_digest,
    zip_of,
)


async def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [*CLI, *args],
        cwd=CLI_CWD,
        env=cli_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _write_folder(root: Path, files: dict[str, Any]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return root


async def test_cli_imports_folders_zips_and_epss_files(
    start_service: StartService, settings: Settings, tmp_path: Path
) -> None:
    async with vulndb_api(start_service) as api:
        folder = _write_folder(tmp_path / "osv", first_bundle())
        done = await _cli(settings, "vulndb", "import", str(folder))
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert (summary["format"], summary["name"]) == ("folder", "osv")
        assert summary["counts"]["added"] == 3 and summary["counts"]["rejected"] == 2
        assert summary["skipped_files"] == 0  # the CLI zips only the *.json files

        second = tmp_path / "second.zip"
        second.write_bytes(zip_of({"a.json": osv("PYSEC-2024-1", modified=T1, withdrawn=T1)}))
        done = await _cli(settings, "vulndb", "import", str(second))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["counts"]["withdrawn"] == 1

        scores = tmp_path / "epss.csv.gz"
        scores.write_bytes(gzip.compress(EPSS_CSV.encode()))
        done = await _cli(settings, "vulndb", "epss", str(scores))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["format"] == "csv.gz"

        bad = tmp_path / "bad.csv"
        bad.write_text(EPSS_CSV + "not,a,row\n")
        done = await _cli(settings, "vulndb", "epss", str(bad))
        assert done.returncode == 2 and "line 5" in done.stderr and not done.stdout
        done = await _cli(settings, "vulndb", "import", str(tmp_path / "missing"))
        assert done.returncode == 2 and "no such file" in done.stderr
        not_zip = tmp_path / "x.zip"
        not_zip.write_text("plain")
        done = await _cli(settings, "vulndb", "import", str(not_zip))
        assert done.returncode == 2 and "not a readable zip" in done.stderr

        status = (await api.call("GET", "/api/v1/vulndb/status")).body
        assert status["last_import"]["actor"].startswith("cli")
        assert (status["advisories"], status["withdrawn"], status["epss"]["count"]) == (2, 2, 2)
        via_api = await api.call(
            "POST", "/api/v1/vulndb/import", data=zip_of(first_bundle()), headers=ZIP
        )
        assert via_api.body["counts"]["unchanged"] == 4  # the same bundle a second time


async def test_replay_rebuilds_the_identical_database(
    start_service: StartService, settings: Settings
) -> None:
    scanner = await start_service("scanner")
    async with gateway_api(start_service) as api:
        await api.call("POST", "/api/v1/vulndb/import", data=zip_of(first_bundle()), headers=ZIP)
        second = zip_of(
            {
                "a.json": osv("PYSEC-2024-1", modified=T1, withdrawn=T1),
                "b.json": osv("GHSA-zzzz", aliases=("CVE-2024-1000", "PYSEC-2024-9")),
            }
        )
        await api.call("POST", "/api/v1/vulndb/import", data=second, headers=ZIP)
        await api.call(
            "POST",
            "/api/v1/vulndb/epss",
            data=EPSS_CSV.encode(),
            headers={"Content-Type": "text/csv"},
        )
    await scanner.stop()
    before = await vulndb_digest(settings)
    assert (await row_counts(settings))["advisories"] == 5
    done = await _cli(settings, "replay", "scanner")
    assert done.returncode == 0, done.stderr
    assert "scanner.vulndb: rebuilt from sequence 0 (3 events)" in done.stdout
    assert await vulndb_digest(settings) == before


async def test_the_real_pypi_and_go_advisories_import(
    start_service: StartService, settings: Settings
) -> None:
    pypi, go = shared_data("osv", "PyPI"), shared_data("osv", "Go")
    scanner = await start_service("scanner")
    async with gateway_api(start_service) as api:
        data = await asyncio.to_thread(folder_bundle, pypi.parent)
        reply = await api.call("POST", "/api/v1/vulndb/import", data=data, headers=ZIP)
        assert reply.status == 200, reply.body
        files = {"PyPI": len(list(pypi.glob("*.json"))), "Go": len(list(go.glob("*.json")))}
        counts = reply.body["counts"]
        assert counts["rejected"] == 0, reply.body["rejected"][:3]
        assert counts["added"] + counts["withdrawn"] == files["PyPI"] + files["Go"]
        by_eco = reply.body["counts_by_ecosystem"]
        assert by_eco["PyPI"]["added"] + by_eco["PyPI"]["withdrawn"] == files["PyPI"]
        # The data is pinned (../shared/data/README.md): 1,328 PyPI and 2,133 Go files.
        assert files == {"PyPI": 1328, "Go": 2133}
        assert (counts["added"], counts["withdrawn"]) == (3447, 14)
        assert (by_eco["PyPI"]["added"], by_eco["PyPI"]["withdrawn"]) == (1325, 3)
        assert (by_eco["Go"]["added"], by_eco["Go"]["withdrawn"]) == (2122, 11)
        status = (await api.call("GET", "/api/v1/vulndb/status")).body
        assert status["advisories"] + status["withdrawn"] == files["PyPI"] + files["Go"]
        assert status["by_ecosystem"]["PyPI"] + status["by_ecosystem"]["Go"] == status["advisories"]
        assert reply.body["rematch_all"] is True  # thousands of advisories: re-match everything

        memory = memory_of(scanner)
        assert len(memory.index) == status["advisories"]
        # The table's alias groups are the matcher's.
        groups = await fetch(settings, "SELECT member, group_id FROM scanner.alias_groups")
        assert len(groups) > status["advisories"]
        assert all(memory.index.group_of(r["member"]) == r["group_id"] for r in groups)
