"""The benchmark's world: NATS + PostgreSQL, and the processes under test.

NATS and PostgreSQL are embedded (``shared.embedded``) in a temporary folder unless
``GATEHOUSE_NATS_URL`` / ``GATEHOUSE_DATABASE_URL`` name external servers. Services and the
baseline app run as child processes (``die_with_parent``: no orphans even on ``kill -9``),
each on a free port, logging to a file that is quoted when the process fails.

The bench uses a stream of its own (``GATEHOUSE_BENCH``) and databases named ``bench_*`` that
it drops afterwards, so pointing it at an external server never touches real data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import nats
import nats.js.errors

from shared.db import with_database
from shared.embedded import EmbeddedNats, EmbeddedPostgres, die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[2]
BENCH_STREAM = "GATEHOUSE_BENCH"
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 15.0


class HarnessError(RuntimeError):
    """The bench could not set up what it measures; the message says what and why."""


@dataclass
class Infra:
    nats_url: str
    admin_database_url: str  # the "postgres" maintenance database
    work_dir: Path
    nats: EmbeddedNats | None = None
    postgres: EmbeddedPostgres | None = None
    databases: list[str] = field(default_factory=list)

    @classmethod
    def start(cls) -> Infra:
        work_dir = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
        nats_url = os.environ.get("GATEHOUSE_NATS_URL", "")
        pg_url = os.environ.get("GATEHOUSE_DATABASE_URL", "")
        infra = cls(nats_url=nats_url, admin_database_url="", work_dir=work_dir)
        try:
            if not nats_url:
                infra.nats = EmbeddedNats(work_dir, port=free_port())
                infra.nats.start()
                infra.nats_url = infra.nats.url
            if not pg_url:
                infra.postgres = EmbeddedPostgres(work_dir, port=free_port())
                infra.postgres.start()
                pg_url = infra.postgres.url("postgres")
            infra.admin_database_url = with_database(pg_url, "postgres")
        except BaseException:
            infra.stop()
            raise
        return infra

    @property
    def embedded(self) -> bool:
        return self.nats is not None or self.postgres is not None

    async def fresh_database(self, label: str) -> str:
        name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(self.admin_database_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        self.databases.append(name)
        return with_database(self.admin_database_url, name)

    async def drop_databases(self) -> None:
        conn = await asyncpg.connect(self.admin_database_url)
        try:
            for name in self.databases:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
        self.databases.clear()

    async def reset_stream(self, stream: str = BENCH_STREAM) -> None:
        nc = await nats.connect(self.nats_url)
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await nc.jetstream().delete_stream(stream)
        finally:
            await nc.close()

    def stop(self) -> None:
        if self.postgres is not None:
            self.postgres.stop()
        if self.nats is not None:
            self.nats.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)


@dataclass
class ChildProcess:
    """One process under test, started with ``python -m <module> <args>`` from the repo root."""

    label: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def start(self) -> None:
        log_file = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )
        finally:
            log_file.close()

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the process has used (Linux ``/proc``; None elsewhere)."""
        return process_cpu_seconds(self.pid)

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:].strip()
        except OSError:
            return ""

    async def wait_ready(
        self, path: str = "/health/ready", within: float = READY_TIMEOUT_SECONDS
    ) -> None:
        deadline = time.monotonic() + within
        last = "no answer"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
            while time.monotonic() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    code = None if self.proc is None else self.proc.returncode
                    raise HarnessError(
                        f"{self.label} exited with code {code} before it was "
                        f"ready; log tail:\n{self.log_tail()}"
                    )
                try:
                    async with session.get(self.base_url + path) as response:
                        if response.status == 200:
                            return
                        last = f"HTTP {response.status}: {(await response.text())[:300]}"
                except (TimeoutError, aiohttp.ClientError) as exc:
                    last = type(exc).__name__
                await asyncio.sleep(0.1)
        raise HarnessError(
            f"{self.label} was not ready within {within:g}s (last: {last}); "
            f"log tail:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def process_cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    fields = stat.rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


BOOTSTRAP_TOKEN = "gh_bench_bootstrap_admin_token_" + "0123456789abcdef" * 2


def service_env(infra: Infra, *, service: str, database_url: str, port: int) -> dict[str, str]:
    """The environment of a service under test: our servers, our stream, no throttling."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(
        {
            "GATEHOUSE_SERVICE": service,
            "GATEHOUSE_NATS_URL": infra.nats_url,
            "GATEHOUSE_DATABASE_URL": database_url,
            "GATEHOUSE_HTTP_HOST": "127.0.0.1",
            "GATEHOUSE_HTTP_PORT": str(port),
            "GATEHOUSE_STREAM_NAME": BENCH_STREAM,
            "GATEHOUSE_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN,
            "GATEHOUSE_DATA_DIR": str(infra.work_dir / f"data-{service}"),
            "GATEHOUSE_LOG_LEVEL": "warning",
            # The limiter guards production; here it would measure itself, not the service.
            "GATEHOUSE_RATE_LIMIT_PER_TOKEN": "1000000000",
            "GATEHOUSE_RATE_LIMIT_PER_IP": "1000000000",
            "GATEHOUSE_RATE_LIMIT_BURST": "1000000000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def service_process(infra: Infra, service: str, *, database_url: str) -> ChildProcess:
    port = free_port()
    return ChildProcess(
        label=f"service {service}",
        argv=[sys.executable, "-m", "services.cli", "serve", service],
        env=service_env(infra, service=service, database_url=database_url, port=port),
        port=port,
        log_path=infra.work_dir / f"{service}-{uuid.uuid4().hex[:6]}.log",
    )


def baseline_process(infra: Infra, *, database_url: str, table: str, pool_max: int) -> ChildProcess:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(
        {
            "BENCH_BASELINE_DATABASE_URL": database_url,
            "BENCH_BASELINE_TABLE": table,
            "BENCH_BASELINE_PORT": str(port),
            "BENCH_BASELINE_POOL_MAX": str(pool_max),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return ChildProcess(
        label="baseline app",
        argv=[sys.executable, "-m", "tests.bench.baseline_app"],
        env=env,
        port=port,
        log_path=infra.work_dir / "baseline.log",
    )


def service_available(service: str) -> str | None:
    """None when the service's package can be imported, else the reason it cannot."""
    import importlib

    from services.registry import SERVICES

    module = SERVICES.get(service)
    if module is None:
        return f"service {service!r} is not registered"
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"{module} cannot be imported yet ({exc})"
    return None
