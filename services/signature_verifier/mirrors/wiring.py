"""Registers the mirrors part on the signature-verifier's runtime: the ``mirrors``
projection, ``svc.signature-verifier.mirror_*``, the ``fetch`` job worker and the timer
that queues a fetch of every mirror each ``git_fetch_interval_seconds``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid

import pygit2

from contracts.rpc import signatures as rpc
from services.signature_verifier.mirrors import store
from services.signature_verifier.mirrors.fetcher import MirrorFetcher
from services.signature_verifier.mirrors.handlers import MirrorHandlers
from services.signature_verifier.mirrors.projection import FETCH_JOB, MirrorsProjection
from shared import jobs
from shared.logging import get_logger
from shared.outbound import parse_cidrs, parse_credentials
from shared.projection import ProjectionRunner
from shared.service import Runtime
from shared.settings import Settings

log = get_logger(__name__)

PROJECTION = "mirrors"
WORKER_KEY = "mirrors.worker"
TIMER_KEY = "mirrors.timer"
# libgit2's own bounds on a silent server (per connect, per read), in milliseconds; the
# whole fetch is bounded by git_fetch_timeout_seconds on top.
CONNECT_TIMEOUT_MS = 30_000
READ_TIMEOUT_MS = 120_000


def _check_settings(settings: Settings) -> None:
    """Fail at start-up, naming the variable, rather than on the first fetch."""
    try:
        parse_cidrs(settings.outbound_allow_cidrs)
    except ValueError as exc:
        raise ValueError(f"GATEHOUSE_OUTBOUND_ALLOW_CIDRS: {exc}") from None
    parse_credentials(settings.git_credentials)


def _bound_libgit2(settings: Settings) -> None:
    timeout_ms = int(settings.git_fetch_timeout_seconds * 1000)
    pygit2.settings.server_connect_timeout = min(timeout_ms, CONNECT_TIMEOUT_MS)
    pygit2.settings.server_timeout = min(timeout_ms, READ_TIMEOUT_MS)


async def queue_every_mirror(runtime: Runtime, runner: ProjectionRunner, *, slot: int) -> int:
    """Queue a fetch of every mirror that has none waiting (the id names the interval, so
    replicas queue each once); returns how many were queued."""
    queued = 0
    async with runtime.pool.acquire() as conn:
        for key in await store.all_mirror_keys(conn):
            if await store.has_pending_fetch(conn, key):
                continue
            async with conn.transaction():
                queued += await jobs.enqueue(
                    conn,
                    store.JOBS_TABLE,
                    job_id=f"interval:{key}:{slot}",
                    kind=FETCH_JOB,
                    payload={"repo_key": key},
                    sequence=runner.checkpoint,
                )
    return queued


async def _interval(runtime: Runtime, runner: ProjectionRunner, every: float) -> None:
    while True:
        await asyncio.sleep(every - (time.time() % every))
        try:
            await queue_every_mirror(runtime, runner, slot=int(time.time() // every))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is away: the next interval tries again
            log.warning("mirrors_interval_failed", error=f"{type(exc).__name__}: {exc}")


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    _check_settings(settings)
    _bound_libgit2(settings)
    runner = runtime.add_projection(MirrorsProjection(name=PROJECTION))
    handlers = MirrorHandlers(pool=runtime.pool, bus=runtime.bus, runner=runner, settings=settings)
    runtime.rpc.add(rpc.MIRROR_PUT, rpc.MirrorPutRequest, handlers.put)
    runtime.rpc.add(rpc.MIRROR_GET, rpc.MirrorRequest, handlers.get)
    runtime.rpc.add(rpc.MIRROR_DELETE, rpc.MirrorRequest, handlers.delete)
    runtime.rpc.add(rpc.MIRROR_SYNC, rpc.MirrorRequest, handlers.sync)

    fetcher = MirrorFetcher(pool=runtime.pool, bus=runtime.bus, settings=settings)
    worker = jobs.JobWorker(
        name="mirrors",
        pool=runtime.pool,
        database_url=settings.database_url,
        table=store.JOBS_TABLE,
        kinds=(FETCH_JOB,),
        handler=fetcher.run,
        caught_up=lambda: jobs.projection_caught_up(runtime.bus, runner),
        wait_progress=jobs.progress_waiter(runner),
        owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
        lease_seconds=settings.job_lease_seconds,
        max_attempts=settings.job_max_attempts,
        bus=runtime.bus,
    )
    runtime.state[WORKER_KEY] = worker

    async def started() -> None:
        worker.start()
        if settings.git_fetch_interval_seconds > 0:
            runtime.state[TIMER_KEY] = asyncio.create_task(
                _interval(runtime, runner, float(settings.git_fetch_interval_seconds)),
                name="mirrors:interval",
            )

    async def stopping() -> None:
        timer = runtime.state.pop(TIMER_KEY, None)
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        await worker.stop()

    runtime.on_started.append(started)
    runtime.on_stopping.append(stopping)
