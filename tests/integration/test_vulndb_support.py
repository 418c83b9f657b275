"""Helpers for the vulnerability database tests (no tests here): advisories written by hand,
zips, the scanner + gateway stack, the tables."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import msgspec

from services.scanner.vulndb.memory import VulnDb
from services.scanner.vulndb.store import TABLES
from shared.service import Runtime
from shared.settings import Settings
from tests.conftest import StartService, table_digest
from tests.integration.test_gateway_support import Api, gateway_api

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(days=30)
CVSS_CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
ZIP = {"Content-Type": "application/zip"}
CSV = {"Content-Type": "text/csv"}


def osv(
    advisory_id: str,
    *,
    modified: dt.datetime = T0,
    ecosystem: str = "PyPI",
    name: str = "demo",
    aliases: tuple[str, ...] = (),
    events: list[dict[str, str]] | None = None,
    range_type: str = "ECOSYSTEM",
    withdrawn: dt.datetime | None = None,
    **extra: Any,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": "1.6.0",
        "id": advisory_id,
        "modified": modified.isoformat(),
        "aliases": list(aliases),
        "summary": f"{advisory_id} in {name}",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [
                    {
                        "type": range_type,
                        "events": events or [{"introduced": "0"}, {"fixed": "1.2.0"}],
                    }
                ],
            }
        ],
        **extra,
    }
    if withdrawn is not None:
        doc["withdrawn"] = withdrawn.isoformat()
    return doc


def zip_of(files: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for path, content in files.items():
            data = content if isinstance(content, bytes) else msgspec.json.encode(content)
            out.writestr(path, data)
    return buffer.getvalue()


def first_bundle() -> dict[str, Any]:
    """Three advisories of one weakness (CVE-2024-1000 via GHSA and PYSEC), a Go one, a
    withdrawn one, a broken range, a file that is not JSON and one that is not an advisory."""
    return {
        "PyPI/PYSEC-2024-1.json": osv(
            "PYSEC-2024-1",
            aliases=("CVE-2024-1000", "GHSA-aaaa-bbbb-cccc"),
            severity=[{"type": "CVSS_V3", "score": CVSS_CRITICAL}],
        ),
        "PyPI/GHSA-aaaa-bbbb-cccc.json": osv(
            "GHSA-aaaa-bbbb-cccc",
            aliases=("CVE-2024-1000",),
            database_specific={"severity": "HIGH"},
        ),
        "Go/GO-2024-0001.json": osv(
            "GO-2024-0001",
            ecosystem="Go",
            name="golang.org/x/net",
            range_type="SEMVER",
            events=[{"introduced": "0"}, {"fixed": "0.17.0"}],
            aliases=("CVE-2024-2000",),
        ),
        "PyPI/PYSEC-2023-9.json": osv("PYSEC-2023-9", name="old", withdrawn=T0),
        "PyPI/PYSEC-2024-2.json": osv(
            "PYSEC-2024-2", events=[{"introduced": "0"}, {"fixed": "1.0", "last_affected": "2"}]
        ),
        "PyPI/garbage.json": b"{not json",
        "README.md": b"# advisories",
    }


EPSS_CSV = (
    "#model_version:v2023.03.01,score_date:2024-05-02T00:00:00+0000\n"
    "cve,epss,percentile\n"
    "CVE-2024-1000,0.97000,0.99900\n"
    "CVE-2024-2000,0.00100,0.12000\n"
)


@asynccontextmanager
async def vulndb_api(start_service: StartService, **overrides: Any) -> AsyncIterator[Api]:
    await start_service("scanner", **overrides)
    async with gateway_api(start_service, **overrides) as api:
        yield api


def memory_of(runtime: Runtime) -> VulnDb:
    found = runtime.state["vulndb"]
    assert isinstance(found, VulnDb)
    return found


async def fetch(settings: Settings, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def row_counts(settings: Settings) -> dict[str, int]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return {
            table: int(await conn.fetchval(f"SELECT count(*) FROM scanner.{table}"))
            for table in TABLES
        }
    finally:
        await conn.close()


async def vulndb_digest(settings: Settings) -> str:
    return await table_digest(settings.database_url, "scanner", list(TABLES))
