"""Helpers of the package-protocol tests (no tests here): one gateway + scanner per test
module on a real NATS and PostgreSQL, real distributions built with ``build``, and the
real clients — ``twine`` and ``pip`` — run as subprocesses against the gateway's port."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from shared.db import with_database
from shared.service import Runtime
from shared.settings import Settings, load_settings
from tests.conftest import Infra, _reset_stream
from tests.integration.test_gateway_support import Api

BOOTSTRAP = "gh_test_bootstrap_admin_token_0123456789abcdef"
PYTHON = sys.executable
# Subprocess clients: no user config, no cache, no prompts, no keyring, no proxies.
CLIENT_ENV = {
    "PIP_NO_INPUT": "1",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_NO_PYTHON_VERSION_WARNING": "1",
    "TWINE_NON_INTERACTIVE": "1",
    "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    "NO_PROXY": "*",
}


@dataclass
class Stack:
    gateway: Runtime
    owner: Runtime
    api: Api
    settings: Settings
    project: dict[str, Any]

    @property
    def base(self) -> str:
        return self.api.base

    @property
    def blob_root(self) -> Path:
        return Path(self.settings.data_dir) / "artifacts"

    def blob_files(self) -> set[str]:
        """Every stored artifact blob (committed ones, not staging files)."""
        root = self.blob_root / "sha256"
        return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()

    def staging_files(self) -> list[Path]:
        root = self.blob_root / "staging"
        return [p for p in root.iterdir()] if root.exists() else []

    async def event_count(self, subject: str) -> int:
        info = await self.gateway.bus.js.stream_info(
            self.gateway.bus.stream, subjects_filter=subject
        )
        return sum((info.state.subjects or {}).values()) if info.state.subjects else 0

    async def last_event(self, subject: str) -> dict[str, Any]:
        msg = await self.gateway.bus.js.get_last_msg(self.gateway.bus.stream, subject)
        return dict(json.loads(msg.data))

    async def new_repository(
        self,
        fmt: str,
        *,
        visibility: str = "public",
        quarantine_new: bool = False,
        quota_artifacts: int | None = None,
        slug: str | None = None,
        project: str | None = None,
    ) -> str:
        """A repository (of the stack's project unless told), through ``POST
        /api/v1/repos``; returns its slug."""
        body: dict[str, Any] = {
            "project_id": project or self.project["id"],
            "slug": slug or f"{fmt}-{uuid.uuid4().hex[:8]}",
            "format": fmt,
            "visibility": visibility,
            "quarantine_new": quarantine_new,
        }
        if quota_artifacts is not None:
            body["quota_artifacts"] = quota_artifacts
        reply = await self.api.call("POST", "/api/v1/repos", json=body)
        assert reply.status == 201, reply.body
        return str(reply.body["slug"])

    async def block(self, **fields: Any) -> str:
        """A block, through ``POST /api/admin/security``; returns its id."""
        reply = await self.api.call("POST", "/api/admin/security", json=fields)
        assert reply.status == 201, reply.body
        return str(reply.body["id"])

    def pypi_url(self, slug: str, *, token: str | None = None) -> str:
        base = self.base
        if token is not None:
            base = base.replace("http://", f"http://__token__:{token}@")
        return f"{base}/pypi/{self.project['slug']}/{slug}"


async def start_registry_owner(settings: Settings) -> Runtime:
    """The scanner, which owns artifact metadata (its registry RPCs)."""
    from services.registry import definition

    runtime = Runtime(definition("scanner"), settings.with_(service="scanner"))
    await runtime.start()
    return runtime


@asynccontextmanager
async def package_stack(
    infra: Infra, data_dir: Path, *, gateway_settings: dict[str, Any] | None = None
) -> AsyncIterator[Stack]:
    """A fresh database and stream, the gateway (``gateway_settings`` over the common ones)
    and the scanner, an admin and a project."""
    from services.registry import definition

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(infra.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await _reset_stream(infra.nats_url, "GATEHOUSE")
    settings = load_settings(
        {},
        nats_url=infra.nats_url,
        database_url=with_database(infra.database_url, name),
        http_port=0,
        bootstrap_token=BOOTSTRAP,
        rate_limit_per_token=10_000.0,
        rate_limit_per_ip=10_000.0,
        rate_limit_burst=100_000,
        auth_failure_burst=100_000,
        data_dir=str(data_dir),
    )
    gateway = Runtime(
        definition("gateway"), settings.with_(service="gateway", **(gateway_settings or {}))
    )
    await gateway.start()
    owner = await start_registry_owner(settings)
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(runtime=gateway, http=http, admin=BOOTSTRAP)
            project = await api.new_project()
            yield Stack(gateway=gateway, owner=owner, api=api, settings=settings, project=project)
    finally:
        await owner.stop()
        await gateway.stop()
        admin = await asyncpg.connect(infra.database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# ---- distributions --------------------------------------------------------------------------
@dataclass(frozen=True)
class Built:
    wheel: Path
    sdist: Path


async def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """A subprocess to its end: (exit code, stdout and stderr together)."""
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env={**os.environ, **CLIENT_ENV, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=180)
    return process.returncode or 0, out.decode(errors="replace")


async def build_distribution(
    folder: Path, name: str, version: str, *, requires_python: str = ">=3.9"
) -> Built:
    """A wheel and an sdist of a one-module project, built by ``python -m build`` with the
    venv's setuptools (no isolation: the machine may be offline)."""
    module = name.replace("-", "_").lower()
    project = folder / f"{module}-{version}"
    (project / module).mkdir(parents=True)
    (project / module / "__init__.py").write_text(f'VERSION = "{version}"\n')
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=70"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "{version}"
            description = "A test package of Gatehouse"
            requires-python = "{requires_python}"

            [tool.setuptools]
            packages = ["{module}"]
            """
        )
    )
    code, out = await run(
        PYTHON,
        "-m",
        "build",
        "--no-isolation",
        "--sdist",
        "--wheel",
        "--outdir",
        "dist",
        ".",
        cwd=project,
    )
    assert code == 0, out
    dist = project / "dist"
    return Built(wheel=next(dist.glob("*.whl")), sdist=next(dist.glob("*.tar.gz")))


async def twine_upload(
    url: str, token: str, *files: Path, extra: tuple[str, ...] = ()
) -> tuple[int, str]:
    return await run(
        PYTHON,
        "-m",
        "twine",
        "upload",
        "--disable-progress-bar",
        "--repository-url",
        url,
        "-u",
        "__token__",
        "-p",
        token,
        *extra,
        *(str(f) for f in files),
    )


async def pip_download(index_url: str, spec: str, dest: Path) -> tuple[int, str]:
    return await run(
        PYTHON,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--index-url",
        index_url,
        "-d",
        str(dest),
        spec,
    )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
