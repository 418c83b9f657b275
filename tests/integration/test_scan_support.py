"""Helpers for the scan tests (no tests here): SBOMs and source zips built in-test, the
scanner + gateway pair, waiting for a scan to finish, publishing events as a test."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

import asyncpg

from shared.service import Runtime
from tests.conftest import StartService, wait_until
from tests.integration.test_gateway_support import Api, Reply, gateway_api


@dataclass(frozen=True)
class Pkg:
    """One component of a test SBOM."""

    name: str
    version: str
    purl_type: str = "pypi"
    license: str | None = "MIT"
    scope: str | None = None
    deps: tuple[str, ...] = field(default=())

    @property
    def ref(self) -> str:
        return f"{self.purl_type}-{self.name}-{self.version}"

    @property
    def purl(self) -> str:
        return f"pkg:{self.purl_type}/{self.name}@{self.version}"


DEFAULT_PKGS = (
    Pkg("django", "2.2.0", deps=("pypi-sqlparse-0.2.4",)),
    Pkg("sqlparse", "0.2.4", license="BSD-3-Clause"),
    Pkg("pytest", "7.0.0", scope="optional", license=None),
)


def cyclonedx_json(pkgs: Sequence[Pkg] = DEFAULT_PKGS, *, spec: str = "1.5") -> bytes:
    direct = [p.ref for p in pkgs if not any(p.ref in q.deps for q in pkgs)]
    doc: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": spec,
        "version": 1,
        "metadata": {"component": {"bom-ref": "app", "type": "application", "name": "app"}},
        "components": [
            {
                "bom-ref": p.ref,
                "type": "library",
                "name": p.name,
                "version": p.version,
                "purl": p.purl,
                **({"scope": p.scope} if p.scope else {}),
                **({"licenses": [{"license": {"id": p.license}}]} if p.license else {}),
            }
            for p in pkgs
        ],
        "dependencies": [{"ref": "app", "dependsOn": direct}]
        + [{"ref": p.ref, "dependsOn": list(p.deps)} for p in pkgs],
    }
    return json.dumps(doc).encode()


def cyclonedx_xml(pkgs: Sequence[Pkg] = DEFAULT_PKGS) -> bytes:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>']
    parts.append('<bom xmlns="http://cyclonedx.org/schema/bom/1.4" version="1"><components>')
    for p in pkgs:
        licenses = (
            f"<licenses><license><id>{escape(p.license)}</id></license></licenses>"
            if p.license
            else ""
        )
        scope = f"<scope>{p.scope}</scope>" if p.scope else ""
        parts.append(
            f'<component type="library" bom-ref="{escape(p.ref)}"><name>{escape(p.name)}</name>'
            f"<version>{escape(p.version)}</version>{scope}{licenses}"
            f"<purl>{escape(p.purl)}</purl></component>"
        )
    parts.append("</components></bom>")
    return "".join(parts).encode()


def spdx_json(pkgs: Sequence[Pkg] = DEFAULT_PKGS) -> bytes:
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "app",
        "documentNamespace": f"https://example.com/spdx/{uuid.uuid4()}",
        "creationInfo": {"created": "2024-01-01T00:00:00Z", "creators": ["Tool: test"]},
        "packages": [
            {
                "SPDXID": f"SPDXRef-{i}",
                "name": p.name,
                "versionInfo": p.version,
                "downloadLocation": "NOASSERTION",
                "licenseConcluded": p.license or "NOASSERTION",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": p.purl,
                    }
                ],
            }
            for i, p in enumerate(pkgs)
        ],
    }
    return json.dumps(doc).encode()


def spdx_tag_value(pkgs: Sequence[Pkg] = DEFAULT_PKGS) -> bytes:
    lines = [
        "SPDXVersion: SPDX-2.2",
        "DataLicense: CC0-1.0",
        "SPDXID: SPDXRef-DOCUMENT",
        "DocumentName: app",
        f"DocumentNamespace: https://example.com/spdx/{uuid.uuid4()}",
        "Creator: Tool: test",
        "Created: 2024-01-01T00:00:00Z",
    ]
    for i, p in enumerate(pkgs):
        lines += [
            "",
            f"PackageName: {p.name}",
            f"SPDXID: SPDXRef-{i}",
            f"PackageVersion: {p.version}",
            "PackageDownloadLocation: NOASSERTION",
            f"PackageLicenseConcluded: {p.license or 'NOASSERTION'}",
            f"ExternalRef: PACKAGE-MANAGER purl {p.purl}",
        ]
    return ("\n".join(lines) + "\n").encode()


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@dataclass
class ScanApi:
    api: Api
    scanner: Runtime

    async def call(self, method: str, path: str, **kwargs: Any) -> Reply:
        return await self.api.call(method, path, **kwargs)

    async def upload_sbom(
        self,
        project: str,
        data: bytes,
        *,
        content_type: str = "application/json",
        query: str = "",
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sep = "?" if query else ""
        return await self.api.call(
            "POST",
            f"/api/v1/projects/{project}/sboms{sep}{query}",
            data=data,
            token=token,
            headers={"Content-Type": content_type, **(headers or {})},
        )

    async def upload_source(self, project: str, data: bytes, *, query: str = "") -> Reply:
        sep = "?" if query else ""
        return await self.api.call(
            "POST",
            f"/api/v1/projects/{project}/scans/upload{sep}{query}",
            data=data,
            headers={"Content-Type": "application/zip"},
        )

    async def finished(self, scan_id: str, *, timeout: float = 30.0) -> dict[str, Any]:  # noqa: ASYNC109
        """The scan once it is failed, cancelled, or succeeded with its findings announced
        (scan.findings-announced follows scan.completed)."""
        seen: dict[str, Any] = {}

        async def done() -> bool:
            reply = await self.api.call("GET", f"/api/v1/scans/{scan_id}")
            assert reply.status == 200, reply.body
            seen.update(reply.body)
            if reply.body["status"] in ("failed", "cancelled"):
                return True
            if reply.body["status"] != "succeeded":
                return False
            log = await self.api.call("GET", f"/api/v1/scans/{scan_id}/log?limit=500")
            return any(e["event"] == "scan.findings-announced" for e in log.body["items"])

        await wait_until(done, timeout=timeout, interval=0.05)
        return seen

    async def scan(self, project: str, data: bytes, **kwargs: Any) -> dict[str, Any]:
        """Upload an SBOM and wait for its scan to finish."""
        reply = await self.upload_sbom(project, data, **kwargs)
        assert reply.status == 202, reply.body
        return await self.finished(reply.body["scan_id"])


@asynccontextmanager
async def scan_api(start_service: StartService, **overrides: Any) -> AsyncIterator[ScanApi]:
    scanner = await start_service("scanner", **overrides)
    async with gateway_api(start_service, **overrides) as api:
        yield ScanApi(api=api, scanner=scanner)


async def fetch(runtime: Runtime, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(runtime.settings.database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def subject_counts(runtime: Runtime, subjects: str = ">") -> dict[str, int]:
    """How many events of each subject the stream holds."""
    info = await runtime.bus.js.stream_info(runtime.bus.stream, subjects_filter=subjects)
    return dict(info.state.subjects or {})
