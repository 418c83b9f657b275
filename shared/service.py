"""The one place a service process is wired: settings → DB → migrations → bus → projections →
request/reply endpoints → HTTP. Resources open in that order and close in reverse.

A service package describes itself with a :class:`ServiceDefinition`; its ``setup`` hook
registers projections, RPC endpoints, HTTP routes and background tasks on the
:class:`Runtime` before anything starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp import web

from contracts.rpc import dead_letters
from shared.bus import Bus
from shared.db import at_head, create_pool, ensure_database, load_migrations, migrate
from shared.http import SERVICE_KEY, add_health_routes, edge_middleware
from shared.jobs import FailedJob, failed_jobs
from shared.logging import configure_logging, get_logger
from shared.projection import (
    Projection,
    ProjectionRunner,
    dead_letters_view,
    outstanding_dead_letters,
)
from shared.rpc import RpcServer
from shared.settings import Settings

log = get_logger(__name__)

VERSION = "0.1.0"


@dataclass(frozen=True)
class ServiceDefinition:
    name: str
    schema: str
    migrations_dir: Path
    description: str
    setup: Callable[[Runtime], Awaitable[None]]
    # Tables of this schema that are state, not projections: no replay rebuilds them, so
    # `gatehouse backup` archives them (a test holds every table to be one or the other).
    unreplayable_tables: tuple[str, ...] = ()


Hook = Callable[[], Awaitable[None]]


@dataclass
class Runtime:
    definition: ServiceDefinition
    settings: Settings
    bus: Bus = field(init=False)
    pool: asyncpg.Pool = field(init=False)
    rpc: RpcServer = field(init=False)
    app: web.Application = field(init=False)
    runners: dict[str, ProjectionRunner] = field(default_factory=dict)
    on_started: list[Hook] = field(default_factory=list)
    on_stopping: list[Hook] = field(default_factory=list)
    readiness_checks: list[Callable[[], Awaitable[tuple[str, bool, Any]]]] = field(
        default_factory=list
    )
    state: dict[str, Any] = field(default_factory=dict)
    http_port: int = 0
    _runner: web.AppRunner | None = None
    _migrations_ok: bool = False
    _started: bool = False

    @property
    def name(self) -> str:
        return self.definition.name

    @functools.cached_property
    def instance(self) -> str:
        return self.settings.instance_id or uuid.uuid4().hex

    def add_projection(self, projection: Projection) -> ProjectionRunner:
        runner = ProjectionRunner(projection, bus=self.bus, pool=self.pool, settings=self.settings)
        self.runners[projection.name] = runner
        return runner

    def build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[edge_middleware], client_max_size=self.settings.max_body_bytes + 1
        )
        app[SERVICE_KEY] = self.name
        add_health_routes(app, self.readiness, instance=self.instance)
        return app

    async def migrate(self) -> list[int]:
        migrations = load_migrations(self.definition.migrations_dir)
        async with self.pool.acquire() as conn:
            applied = await migrate(conn, schema=self.definition.schema, migrations=migrations)
            self._migrations_ok = await at_head(
                conn, schema=self.definition.schema, migrations=migrations
            )
        return applied

    async def start(self, *, serve: bool = True) -> None:
        """Open resources and register the service; ``serve=False`` stops short of running
        projections, answering requests and serving HTTP (used by `gatehouse replay`)."""
        settings = self.settings
        await ensure_database(settings.database_url)
        self.pool = await create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
        )
        await self.migrate()
        self.bus = await Bus.connect(settings, name=f"gatehouse-{self.name}")
        await self.bus.ensure_stream()
        self.rpc = RpcServer(
            self.bus, service=self.name, version=VERSION, description=self.definition.description
        )
        self.app = self.build_app()
        self.rpc.add(dead_letters.OPERATION, dead_letters.DeadLettersRequest, self._dead_letters)
        await self.definition.setup(self)
        if not serve:
            return
        for runner in self.runners.values():
            runner.start()
        await self.rpc.start()
        for hook in self.on_started:
            await hook()
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site: web.BaseSite
        if settings.http_fd >= 0:
            # `gatehouse up` bound the port and holds it: serving on its socket, this process
            # can never end up without a port while another stack answers on it.
            site = web.SockSite(self._runner, socket.socket(fileno=settings.http_fd))
        else:
            site = web.TCPSite(
                self._runner, settings.http_host, settings.http_port, reuse_address=True
            )
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else settings.http_port
        self._started = True
        log.info("service_started", http_port=self.http_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for hook in reversed(self.on_stopping):
            with contextlib.suppress(Exception):
                await hook()
        if hasattr(self, "rpc"):
            await self.rpc.stop()
        for runner in self.runners.values():
            await runner.stop()
        if hasattr(self, "bus"):
            await self.bus.close()
        if hasattr(self, "pool"):
            await self.pool.close()
        self._started = False
        log.info("service_stopped")

    async def _dead_letters(
        self, _request: dead_letters.DeadLettersRequest, _ctx: object
    ) -> dead_letters.DeadLettersView:
        async with self.pool.acquire(timeout=2) as conn:
            found = await outstanding_dead_letters(conn, self.definition.schema)
        return dead_letters_view(self.name, found)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """``(ready, checks)``. Ready with ``checks["degraded"]`` non-empty is "degraded":
        events were dead-lettered, or jobs failed, and wait for an operator (`gatehouse
        deadletters`, `gatehouse jobs`). The
        service still answers, so the readiness probe passes (200): taking every replica
        out of service would turn one bad event into an outage, and a restart does not
        bring a dead letter back (nor a failed job). The reasons, event and job ids are in
        the body."""
        checks: dict[str, Any] = {}
        checks["bus"] = self.bus.connected if hasattr(self, "bus") else False
        found: dict[str, Any] = {}
        failed: list[FailedJob] = []
        try:
            async with self.pool.acquire(timeout=2) as conn:
                await conn.fetchval("SELECT 1")
                found = await outstanding_dead_letters(conn, self.definition.schema)
                failed = await failed_jobs(conn, self.definition.schema)
            checks["database"] = True
        except Exception:
            checks["database"] = False
        checks["migrations"] = self._migrations_ok
        projections: dict[str, Any] = {}
        ok_projections = True
        for name, runner in self.runners.items():
            healthy = runner.lag <= self.settings.max_ready_lag
            ok_projections &= healthy
            projections[name] = {
                "leader": runner.is_leader,
                "checkpoint": runner.checkpoint,
                "lag": runner.lag,
                "ok": healthy,
            }
        degraded: list[str] = []
        for letters in dead_letters_view(self.name, found).projections:
            projections.setdefault(letters.projection, {})["dead_letters"] = {
                "count": letters.count,
                "newest": letters.newest,
            }
            degraded.append(
                f"projection {letters.projection}: {letters.count} dead-lettered event(s) "
                f"(gatehouse deadletters list --service {self.name})"
            )
        checks["projections"] = projections
        checks["jobs"] = failed_jobs_check(self.name, failed)
        for table, detail in checks["jobs"].items():
            degraded.append(
                f"jobs {table}: {detail['failed']} failed job(s) "
                f"(gatehouse jobs list --service {self.name})"
            )
        checks["degraded"] = degraded
        extra_ok = True
        for check in self.readiness_checks:
            name, ok, detail = await check()
            checks[name] = detail
            extra_ok &= ok
        ok = (
            self._started
            and bool(checks["bus"])
            and bool(checks["database"])
            and self._migrations_ok
            and ok_projections
            and extra_ok
        )
        return ok, checks


# How many failed jobs readiness names per table.
FAILED_JOBS_NAMED = 5


def failed_jobs_check(service: str, failed: list[FailedJob]) -> dict[str, Any]:
    """Per jobs table with failed jobs: the count, and the newest ids as `gatehouse jobs`
    takes them (``<service>:<table>:<id>``) with their last error."""
    tables: dict[str, Any] = {}
    for job in sorted(failed, key=lambda j: j.enqueued_seq, reverse=True):
        name = job.table.split(".", 1)[1]
        detail = tables.setdefault(job.table, {"failed": 0, "newest": []})
        detail["failed"] += 1
        if len(detail["newest"]) < FAILED_JOBS_NAMED:
            detail["newest"].append(
                {
                    "id": f"{service}:{name}:{job.id}",
                    "kind": job.kind,
                    "attempts": job.attempts,
                    "last_error": (job.last_error or "")[:500],
                }
            )
    return tables


async def serve(definition: ServiceDefinition, settings: Settings) -> None:
    """Run one service until SIGTERM/SIGINT, then drain and stop in order."""
    configure_logging(service=definition.name, level=settings.log_level, fmt=settings.log_format)
    runtime = Runtime(definition, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await runtime.start()
    try:
        await stop.wait()
    finally:
        await runtime.stop()
