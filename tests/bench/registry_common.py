"""What the registry bench's figures share: titles, targets, parameters, the stack under test
(a gateway and a scanner) and running a client subprocess."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.bench import report
from tests.bench.harness import (
    BOOTSTRAP_TOKEN,
    ChildProcess,
    HarnessError,
)

PIP_TITLE = "(o) pip download of 50 wheels through the simple index vs pypiserver"
QUARANTINE_TITLE = (
    "(p) upload -> scanned -> downloadable (first 200) in a quarantine_new repository"
)
STREAM_TITLE = "(q) streaming a 2 GiB generic upload + download: the gateway's RSS growth"
PIP_RATIO_MIN = 1.0
QUARANTINE_P99_MS_MAX = 1000.0
STREAM_RSS_MIB_MAX = 64.0
FIGURES = ("pip", "quarantine", "streaming")
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
CLIENT_ENV = {
    "PIP_NO_INPUT": "1",
    "PIP_CONFIG_FILE": os.devnull,
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_NO_PYTHON_VERSION_WARNING": "1",
    "TWINE_NON_INTERACTIVE": "1",
    "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    "NO_PROXY": "*",
}
CLIENT_TIMEOUT_SECONDS = 300.0
# How long an upload may wait for its scan before the figure says scan on upload is missing.
SCAN_WAIT_SECONDS = 20.0
RSS_SAMPLE_SECONDS = 0.02
STREAM_CHUNK_BYTES = 1024 * 1024
MIB = 1024 * 1024


def pip_targets(ratio: float | None = None) -> list[report.Target]:
    return [
        report.check(
            "wheels/s vs pypiserver", op=">=", threshold=PIP_RATIO_MIN, actual=ratio, unit="x"
        )
    ]


def quarantine_targets(p99_ms: float | None = None) -> list[report.Target]:
    return [report.check("p99", op="<=", threshold=QUARANTINE_P99_MS_MAX, actual=p99_ms, unit="ms")]


def stream_targets(growth_mib: float | None = None) -> list[report.Target]:
    return [
        report.check(
            "gateway RSS growth (largest, upload or download)",
            op="<=",
            threshold=STREAM_RSS_MIB_MAX,
            actual=growth_mib,
            unit="MiB",
        )
    ]


_TITLES: dict[str, tuple[str, str, Callable[[], list[report.Target]]]] = {
    "pip": ("pip_download", PIP_TITLE, pip_targets),
    "quarantine": ("quarantine_release", QUARANTINE_TITLE, quarantine_targets),
    "streaming": ("streaming", STREAM_TITLE, stream_targets),
}


def unmeasured(figure: str, reason: str) -> report.Figure:
    key, title, targets = _TITLES[figure]
    return report.not_measured(key, title, reason=reason, targets=targets())


@dataclass
class RegistryParameters:
    wheels: int = 50
    # Where pip keeps its temporary files (TMPDIR), for both contenders: "auto" is a folder
    # on /dev/shm (tmpfs) when there is one, "" the system's default. See pip_tmpdir().
    pip_tmpdir: str = "auto"
    # (o)'s rounds (four pip runs each, a few seconds); None: twice the bench's --rounds, as
    # the ratio of two runs of a few seconds each on a shared machine is noisy.
    pip_rounds: int | None = None
    uploads: int = 100  # (p) samples
    advisories: int = 10_000  # (p) synthetic advisories in the vulnerability database
    stream_bytes: int = 2 * 1024**3
    stream_rounds: int = 2


# ---- the stack ---------------------------------------------------------------------------------
@dataclass
class Stack:
    http: aiohttp.ClientSession
    gateway: ChildProcess
    scanner: ChildProcess
    work_dir: Path
    project: str = ""

    @property
    def base(self) -> str:
        return self.gateway.base_url

    async def api(self, method: str, path: str, body: Any) -> dict[str, Any]:
        async with self.http.request(method, self.base + path, json=body, headers=AUTH) as r:
            answer = await r.json(content_type=None)
            if r.status >= 300:
                raise HarnessError(f"{method} {path} answered {r.status}: {answer}")
            return dict(answer)

    async def new_repository(self, fmt: str, *, quarantine_new: bool = False) -> str:
        slug = f"{fmt}-{uuid.uuid4().hex[:8]}"
        body = {
            "project_id": self.project,
            "slug": slug,
            "format": fmt,
            "visibility": "public",
            "quarantine_new": quarantine_new,
        }
        await self.api("POST", "/api/v1/repos", body)
        return slug

    def pypi_url(self, slug: str) -> str:
        return f"{self.base}/pypi/{self.project}/{slug}"


async def run_client(*args: str, env: dict[str, str] | None = None) -> str:
    """A client subprocess to its end; its output, or HarnessError with its tail."""
    process = await asyncio.create_subprocess_exec(
        *args,
        env={**os.environ, **CLIENT_ENV, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=CLIENT_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise HarnessError(f"{' '.join(args[:4])} … ran over {CLIENT_TIMEOUT_SECONDS:g}s") from None
    text = out.decode(errors="replace")
    if process.returncode:
        raise HarnessError(
            f"{' '.join(args[1:4])} exited {process.returncode}: {text[-1500:].strip()}"
        )
    return text
