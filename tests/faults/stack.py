"""A whole Gatehouse stack for the fault ring: NATS (one node or a cluster), a private
PostgreSQL and every service as a real process (``python -m services.cli serve <name>``),
each on a free port, configured by ``GATEHOUSE_*`` variables as an operator would.

A service can be killed with SIGKILL and started again on the same port; the servers can be
killed or restarted under the running services.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from services.registry import SERVICES
from shared.embedded import EmbeddedPostgres, die_with_parent, free_port
from tests.conftest import ROOT
from tests.faults.servers import NatsServers

ADMIN_TOKEN = "gh_faults_bootstrap_admin_token_0123456789abcdef"
STREAM = "GATEHOUSE"
# A scan worker killed mid-job is replaced after its lease: short, so that a kill of the
# scanner costs the ring seconds, not the default half minute.
JOB_LEASE_SECONDS = 4
START_TIMEOUT = 120.0


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "serve", self.name],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Stack:
    folder: Path
    nats: NatsServers
    postgres: EmbeddedPostgres
    replicas: int
    services: dict[str, ServiceProcess] = field(default_factory=dict)
    _owns_folder: bool = False

    @classmethod
    def create(cls, *, nats_nodes: int, folder: Path | None = None) -> Stack:
        owns = folder is None
        folder = folder or Path(tempfile.mkdtemp(prefix="gatehouse-faults-"))
        return cls(
            folder=folder,
            nats=NatsServers.create(folder / "nats", size=nats_nodes),
            postgres=EmbeddedPostgres(folder / "pg", port=free_port()),
            replicas=min(nats_nodes, 3),
            _owns_folder=owns,
        )

    @property
    def gateway(self) -> str:
        return self.services["gateway"].base

    def env_for(self, name: str, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
        settings: dict[str, Any] = {
            "service": name,
            "nats_url": self.nats.url,
            "database_url": self.postgres.url("gatehouse"),
            "http_host": "127.0.0.1",
            "http_port": port,
            "data_dir": self.folder / "data",
            "stream_replicas": self.replicas,
            "bootstrap_token": ADMIN_TOKEN,
            "rate_limit_per_token": 100_000,
            "rate_limit_per_ip": 100_000,
            "rate_limit_burst": 100_000,
            "job_lease_seconds": JOB_LEASE_SECONDS,
            "log_level": "warning",
        }
        env.update({f"GATEHOUSE_{k.upper()}": str(v) for k, v in settings.items()})
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def start(self) -> None:
        await asyncio.to_thread(self.nats.start)
        await self.nats.wait_jetstream()
        await asyncio.to_thread(self.postgres.start)
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            port = free_port()
            self.services[name] = ServiceProcess(
                name, port, self.env_for(name, port), logs / f"{name}.log"
            )
        # The owners of the stream and the schemas first, as `gatehouse up` does.
        for service in self.services.values():
            service.spawn()
        await self.wait_ready(list(self.services), timeout=START_TIMEOUT)

    async def ready(self, session: aiohttp.ClientSession, name: str) -> dict[str, Any] | None:
        """The service's readiness document when it answers 200, else None."""
        service = self.services[name]
        try:
            async with session.get(
                service.base + "/health/ready", timeout=aiohttp.ClientTimeout(total=3)
            ) as response:
                if response.status != 200:
                    return None
                body: dict[str, Any] = await response.json()
                return body
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def wait_ready(self, names: list[str], *, timeout: float) -> None:  # noqa: ASYNC109
        deadline = asyncio.get_running_loop().time() + timeout
        pending = list(names)
        async with aiohttp.ClientSession() as session:
            while pending:
                for name in list(pending):
                    proc = self.services[name].proc
                    if proc is not None and proc.poll() is not None:
                        raise AssertionError(
                            f"{name} exited with {proc.returncode}:\n"
                            f"{self.services[name].log_tail()}"
                        )
                    if await self.ready(session, name) is not None:
                        pending.remove(name)
                if pending:
                    if asyncio.get_running_loop().time() > deadline:
                        tails = "\n".join(
                            f"--- {n}\n{self.services[n].log_tail()}" for n in pending
                        )
                        raise AssertionError(f"not ready in {timeout:g}s: {pending}\n{tails}")
                    await asyncio.sleep(0.2)

    async def restart_service(self, name: str) -> None:
        self.services[name].spawn()

    def stop(self) -> None:
        # The edge first, then the owners, then the servers they use.
        for service in reversed(list(self.services.values())):
            service.stop()
        self.postgres.stop()
        self.nats.stop()
        if self._owns_folder:
            shutil.rmtree(self.folder, ignore_errors=True)
