"""Helpers for the registry gate tests (no tests here): OSV malicious-package advisories in
the OpenSSF format, imports, wheels carrying a PEP 770 SBOM, waiting for the scan on upload
and for decisions."""

from __future__ import annotations

import hashlib
import io
import zipfile
from typing import Any

from shared.blobs import BlobStore
from tests.conftest import wait_until
from tests.integration.registry_meta_support import Registry
from tests.integration.test_vulndb_support import ZIP, zip_of

ALL_VERSIONS = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]


def malicious(
    advisory_id: str,
    name: str,
    *,
    versions: list[str] | None = None,
    ranges: list[dict[str, Any]] | None = None,
    modified: str = "2024-10-24T01:01:57Z",
) -> dict[str, Any]:
    """A malicious-package advisory as github.com/ossf/malicious-packages publishes them
    (osv/malicious/pypi/<name>/MAL-….json): enumerated versions and/or ranges, and where
    the report came from in database_specific.malicious-packages-origins."""
    affected: dict[str, Any] = {"package": {"ecosystem": "PyPI", "name": name}}
    if versions is not None:
        affected["versions"] = versions
    if ranges is not None:
        affected["ranges"] = ranges
    return {
        "modified": modified,
        "published": "2024-06-25T13:32:02Z",
        "schema_version": "1.5.0",
        "id": advisory_id,
        "summary": f"Malicious code in {name} (PyPI)",
        "details": "\n---\n_-= Per source details. Do not edit below this line.=-_\n\n"
        f"## Source: ossf-package-analysis\nThe OpenSSF Package Analysis project identified "
        f"'{name}' (pypi) as malicious.\n",
        "affected": [affected],
        "credits": [{"name": "OpenSSF: Package Analysis", "type": "FINDER"}],
        "database_specific": {
            "malicious-packages-origins": [
                {
                    "import_time": "2024-10-27T14:05:09.316165759Z",
                    "modified_time": "2024-10-27T13:55:45Z",
                    "sha256": hashlib.sha256(name.encode()).hexdigest(),
                    "source": "ossf-package-analysis",
                    "versions": versions or [],
                }
            ]
        },
    }


async def import_osv(r: Registry, files: dict[str, Any]) -> dict[str, Any]:
    reply = await r.http("POST", "/api/v1/vulndb/import", data=zip_of(files), headers=ZIP)
    assert reply.status == 200, reply.body
    return dict(reply.body)


def wheel(name: str, version: str, *, sbom: bytes | None = None) -> bytes:
    """A small wheel; ``sbom``: carried as PEP 770 says (``.dist-info/sboms/``)."""
    dist = f"{name.replace('-', '_')}-{version}.dist-info"
    files = {
        f"{name.replace('-', '_')}/__init__.py": b"VALUE = 1\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    if sbom is not None:
        files[f"{dist}/sboms/bom.cdx.json"] = sbom
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for path, data in files.items():
            out.writestr(path, data)
        out.writestr(f"{dist}/RECORD", "")
    return buffer.getvalue()


async def stored_sboms(blobs: BlobStore, wheel_bytes: bytes) -> list[str]:
    """What the PyPI upload does with a wheel's PEP 770 SBOMs: each into the blob store."""
    with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as archive:
        found = [n for n in archive.namelist() if ".dist-info/sboms/" in n]
        return [await blobs.put(archive.read(n)) for n in found]


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def scanned(r: Registry, artifact_id: str, *, timeout: float = 20) -> dict[str, Any]:  # noqa: ASYNC109
    """The artifact once its scan on upload finished."""
    seen: dict[str, Any] = {}

    async def done() -> bool:
        reply = await r.http("GET", f"/api/v1/artifacts/{artifact_id}")
        assert reply.status == 200, reply.body
        seen.update(reply.body)
        return bool(reply.body["scan_status"] != "pending")

    await wait_until(done, timeout=timeout, interval=0.02)
    return seen


async def blocks_of(r: Registry) -> list[dict[str, Any]]:
    reply = await r.http("GET", "/api/admin/security?limit=500")
    assert reply.status == 200, reply.body
    return list(reply.body["items"])


async def artifact_decision(
    r: Registry, artifact_digest: str, *, decision: str, codes: list[str] | None = None
) -> dict[str, Any]:
    """Wait until the artifact's decision is ``decision`` (with these blocker codes)."""
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        reply = await r.http("GET", f"/api/v1/releases/decision?artifact={artifact_digest}")
        assert reply.status == 200, reply.body
        seen.clear()
        seen.update(reply.body)
        found = sorted({b["code"] for b in reply.body["blockers"]})
        return reply.body["decision"] == decision and (codes is None or found == sorted(codes))

    await wait_until(reached, timeout=20)
    return seen
